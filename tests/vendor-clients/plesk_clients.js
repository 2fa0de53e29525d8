// A third-party Node Plesk XML API client against provisio-plesk-test-server.
//
//   NODE_PATH=<dir with node_modules> NODE_EXTRA_CA_CERTS=$PLESK_CA node plesk_clients.js plesk-api-client
//
// scripts/vendor-clients installs the package (npm pack, checked against the
// integrity pinned in npm-pack.txt here) and sets the environment: PLESK_URL,
// PLESK_LOGIN, PLESK_PASSWORD, PLESK_KEY and, for HTTPS, PLESK_CA. The library
// takes no CA file; it uses Node's https with certificate checks on, so
// NODE_EXTRA_CA_CERTS (read at start-up) is how it trusts ours. It sends the
// XML string it is given and hands back the answer's text: the packets are
// hand-written in Plesk's element order, and the answers are parsed here.
'use strict';

const http = require('node:http');
const https = require('node:https');
const diagnostics = require('node:diagnostics_channel');

const { PLESK_URL: URL_, PLESK_LOGIN: LOGIN, PLESK_PASSWORD: PASSWORD, PLESK_KEY: KEY } = process.env;
const url = new URL(URL_);
const PROTOCOL = url.protocol === 'https:' ? 'https' : 'http';
const VERSION = '1.6.9.1'; // the protocol every hand-written packet names

class Failed extends Error {}

// One expectation; a miss names it and shows the server's answer.
function check(ok, what, answer) {
    if (!ok) {
        const shown = answer instanceof Answer ? answer.raw : JSON.stringify(answer);
        throw new Failed(`${what}\n    answered: ${shown?.slice(0, 2000)}`);
    }
    console.log(`  ok  ${what}`);
}

// A small strict XML reader for Plesk's answers (elements, text, entities;
// attributes are skipped): a node is { name, children, text }.
function parseXml(raw) {
    const entities = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
    const decode = (s) => s.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (m, e) => {
        if (e[0] === '#') return String.fromCodePoint(e[1].toLowerCase() === 'x' ? parseInt(e.slice(2), 16) : Number(e.slice(1)));
        if (!(e in entities)) throw new Error(`unknown entity ${m}`);
        return entities[e];
    });
    const top = { name: '#document', children: [], text: '' };
    const stack = [top];
    for (const [token] of raw.matchAll(/<!\[CDATA\[[\s\S]*?\]\]>|<!--[\s\S]*?-->|<[^>]*>|[^<]+/g)) {
        const open = stack[stack.length - 1];
        if (token.startsWith('<?') || token.startsWith('<!--')) continue;
        if (token.startsWith('<![CDATA[')) open.text += token.slice(9, -3);
        else if (token.startsWith('</')) {
            const name = token.slice(2, -1).trim();
            if (name !== open.name) throw new Error(`</${name}> closes <${open.name}>`);
            stack.pop();
        } else if (token.startsWith('<')) {
            const name = token.match(/^<([^\s/>]+)/)?.[1];
            if (!name) throw new Error(`bad tag ${token}`);
            const node = { name, children: [], text: '' };
            open.children.push(node);
            if (!token.endsWith('/>')) stack.push(node);
        } else if (stack.length > 1) open.text += decode(token);
        else if (token.trim()) throw new Error('text outside the root element');
    }
    if (stack.length !== 1 || top.children.length !== 1) throw new Error('unbalanced document');
    return top.children[0];
}

// Every node at a path of names below `node`.
function findAll(node, path) {
    return path.split('/').reduce((nodes, name) => nodes.flatMap((n) => n.children.filter((c) => c.name === name)), [node]);
}

// The text of the first node at a path below `node`, or undefined.
const textOf = (node, path) => findAll(node, path)[0]?.text.trim();

// A response packet: the text as it came, and its tree (root <packet>).
class Answer {
    constructor(raw) {
        this.raw = raw;
        try {
            this.root = parseXml(raw);
        } catch (err) {
            throw new Failed(`the answer is not XML (${err.message})\n    answered: ${JSON.stringify(String(raw).slice(0, 2000))}`);
        }
        if (this.root.name !== 'packet') throw new Failed(`the answer's root is <${this.root.name}>\n    answered: ${raw.slice(0, 2000)}`);
    }

    // The text of the first element at path (below <packet>), or undefined.
    text(path) {
        return textOf(this.root, path);
    }

    all(path) {
        return findAll(this.root, path);
    }
}

// The operations in the request packet on its way, for the trace.
let sending = '';

// Every HTTP exchange, as the server saw it (the library and our GETs both
// use node:http/https). The session ids in rsession_init.php URLs stay out of it.
diagnostics.subscribe('http.client.response.finish', ({ request, response }) => {
    const auth = request.getHeader('key') ? 'KEY' : request.getHeader('http_auth_login') ? 'HTTP_AUTH_LOGIN' : 'none';
    const path = request.path.replace(/SESSID=[^&]*/g, 'SESSID=***');
    console.log(`  --> ${request.method} ${path} [auth ${auth}] ${request.method === 'POST' ? sending : ''} ${response.statusCode}`);
});

// GET rsession_init.php as a browser's first hop (no redirect followed).
function sessionGet(sessionId, name) {
    const target = `${URL_}/enterprise/rsession_init.php?${name}=${sessionId}`;
    return new Promise((resolve, reject) => {
        (PROTOCOL === 'https' ? https : http)
            .get(target, (res) => {
                let body = '';
                res.on('data', (c) => (body += c));
                res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
            })
            .on('error', reject);
    });
}

// A create_session id opens the panel once (302 and a cookie), then no more (401).
async function singleUseLogin(sessionId, name) {
    const first = await sessionGet(sessionId, name);
    check(first.status === 302 && first.headers.location && String(first.headers['set-cookie']).includes('PLESKSESSID='),
        `rsession_init.php?${name}=…: first GET is a 302 with a Location and a PLESKSESSID cookie`,
        { status: first.status, headers: first.headers });
    const second = await sessionGet(sessionId, name);
    check(second.status === 401, `rsession_init.php?${name}=…: second GET is a 401`, { status: second.status, body: second.body.slice(0, 300) });
}

const packet = (body) => `<packet version="${VERSION}">${body}</packet>`;
const ok = (r, path) => r.text(`${path}/result/status`) === 'ok';
const errcode = (r, path) => r.text(`${path}/result/errcode`);

// A customer and its subscriptions through their whole life; call(xml) -> Answer.
async function lifecycle(call, tag) {
    const customer = `${tag}cust`, domain = `${tag}-site.example`, other = `${tag}-second.example`;
    const mark = `provisio:vendor-clients:${tag}`;

    let r = await call(packet('<server><get><gen_info/><stat/></get></server>'));
    check(ok(r, 'server/get') && r.text('server/get/result/gen_info/server_name')
        && r.text('server/get/result/gen_info/server_guid')?.length === 36
        && r.text('server/get/result/stat/version/plesk_version'),
    'server/get gen_info+stat: server_name, a 36-char server_guid, stat/version/plesk_version', r);

    r = await call(packet('<ip><get/></ip>'));
    const shared = r.all('ip/get/result/addresses/ip_info')
        .filter((i) => textOf(i, 'type') === 'shared').map((i) => textOf(i, 'ip_address'));
    check(ok(r, 'ip/get') && shared[0], 'ip/get lists a shared address', r);
    const ip = shared[0];

    r = await call(packet('<service-plan><get><filter><name>basic</name><name>standard</name></filter></get></service-plan>'));
    const plans = Object.fromEntries(r.all('service-plan/get/result')
        .filter((p) => textOf(p, 'status') === 'ok')
        .map((p) => [textOf(p, 'name'), textOf(p, 'guid')]));
    check(Object.keys(plans).sort().join() === 'basic,standard' && Object.values(plans).every((g) => g?.length === 36),
        'service-plan/get by name basic, standard: one result each, fields in <result>, 36-char guids', r);

    r = await call(packet(`<customer><add><gen_info><pname>Panel Clients ${tag}</pname><login>${customer}</login>`
        + `<passwd>Pc-${tag}-Passw0rd!</passwd><email>owner@${domain}</email>`
        + `<external-id>${mark}</external-id><description>made by scripts/vendor-clients</description>`
        + '</gen_info></add></customer>'));
    check(ok(r, 'customer/add') && r.text('customer/add/result/id') && r.text('customer/add/result/guid')?.length === 36,
        'customer/add with external-id: id, guid', r);
    const customerId = r.text('customer/add/result/id'), customerGuid = r.text('customer/add/result/guid');

    r = await call(packet(`<customer><get><filter><external-id>${mark}</external-id></filter>`
        + '<dataset><gen_info/></dataset></get></customer>'));
    let g = 'customer/get/result/data/gen_info';
    check(r.all('customer/get/result').length === 1 && ok(r, 'customer/get')
        && JSON.stringify([r.text('customer/get/result/id'), r.text(`${g}/login`), r.text(`${g}/email`), r.text(`${g}/status`),
            r.text(`${g}/guid`), r.text(`${g}/external-id`)])
        === JSON.stringify([customerId, customer, `owner@${domain}`, '0', customerGuid, mark]),
    'customer/get by external-id: id, login, email, status 0, guid, external-id', r);

    r = await call(packet(`<webspace><add><gen_setup><name>${domain}</name><owner-login>${customer}</owner-login>`
        + `<htype>vrt_hst</htype><ip_address>${ip}</ip_address></gen_setup>`
        + `<hosting><vrt_hst><property><name>ftp_login</name><value>${tag}ftp</value></property>`
        + `<property><name>ftp_password</name><value>Ftp-${tag}-Passw0rd!</value></property>`
        + `<ip_address>${ip}</ip_address></vrt_hst></hosting>`
        + '<plan-name>basic</plan-name></add></webspace>'));
    check(ok(r, 'webspace/add') && r.text('webspace/add/result/id') && r.text('webspace/add/result/guid')?.length === 36,
        'webspace/add on plan-name basic, owner-login, ftp_login/ftp_password: id, guid', r);
    const webspaceId = r.text('webspace/add/result/id');

    const webspace = (name, ...datasets) => call(packet(`<webspace><get><filter><name>${name}</name></filter>`
        + `<dataset>${datasets.map((d) => `<${d}/>`).join('')}</dataset></get></webspace>`));
    g = 'webspace/get/result/data/gen_info';
    const planGuid = 'webspace/get/result/data/subscriptions/subscription/plan/plan-guid';
    r = await webspace(domain, 'gen_info', 'subscriptions');
    check(ok(r, 'webspace/get') && r.text('webspace/get/result/id') === webspaceId
        && JSON.stringify([r.text(`${g}/name`), r.text(`${g}/status`), r.text(`${g}/owner-id`), r.text(`${g}/dns_ip_address`),
            r.text(planGuid)]) === JSON.stringify([domain, '0', customerId, ip, plans.basic]),
    'webspace/get gen_info+subscriptions: name, status 0, owner-id, dns_ip_address, plan-guid of basic', r);

    for (const status of ['16', '0']) {
        r = await call(packet(`<webspace><set><filter><name>${domain}</name></filter>`
            + `<values><gen_setup><status>${status}</status></gen_setup></values></set></webspace>`));
        check(ok(r, 'webspace/set') && r.text('webspace/set/result/id') === webspaceId, `webspace/set gen_setup/status ${status}`, r);
        r = await webspace(domain, 'gen_info');
        check(r.text(`${g}/status`) === status, `webspace/get: status ${status}`, r);
    }

    r = await call(packet(`<webspace><switch-subscription><filter><name>${domain}</name></filter>`
        + `<plan-guid>${plans.standard}</plan-guid></switch-subscription></webspace>`));
    check(ok(r, 'webspace/switch-subscription'), "webspace/switch-subscription to standard's guid", r);
    r = await webspace(domain, 'subscriptions');
    check(r.text(planGuid) === plans.standard, 'webspace/get subscriptions: plan-guid of standard', r);

    r = await call(packet(`<customer><set><filter><login>${customer}</login></filter>`
        + `<values><gen_info><passwd>Pc-${tag}-N3w-Passw0rd!</passwd></gen_info></values></set></customer>`));
    check(ok(r, 'customer/set') && r.text('customer/set/result/id') === customerId, 'customer/set gen_info/passwd', r);

    for (const name of ['PLESKSESSID', 'PHPSESSID']) {
        const userIp = Buffer.from('203.0.113.7').toString('base64');
        r = await call(packet(`<server><create_session><login>${customer}</login><data><user_ip>${userIp}</user_ip>`
            + '<source_server></source_server></data></create_session></server>'));
        const sessionId = r.text('server/create_session/result/id');
        check(ok(r, 'server/create_session') && sessionId, `server/create_session for ${customer}: an id`, r);
        await singleUseLogin(sessionId, name);
    }

    // A second subscription, by owner-id and plan-guid: it goes with its customer.
    r = await call(packet(`<webspace><add><gen_setup><name>${other}</name><owner-id>${customerId}</owner-id>`
        + `<htype>vrt_hst</htype><ip_address>${ip}</ip_address></gen_setup>`
        + `<hosting><vrt_hst><property><name>ftp_login</name><value>${tag}ftp2</value></property>`
        + `<property><name>ftp_password</name><value>Ftp-${tag}-Passw0rd!</value></property>`
        + `<ip_address>${ip}</ip_address></vrt_hst></hosting>`
        + `<plan-guid>${plans.basic}</plan-guid></add></webspace>`));
    check(ok(r, 'webspace/add'), 'webspace/add a second one on plan-guid basic, owner-id', r);

    r = await call(packet(`<webspace><del><filter><name>${domain}</name></filter></del></webspace>`));
    check(ok(r, 'webspace/del') && r.text('webspace/del/result/filter-id') === domain
        && r.text('webspace/del/result/id') === webspaceId, 'webspace/del by name: filter-id, id', r);
    r = await webspace(domain, 'gen_info');
    check(errcode(r, 'webspace/get') === '1013', 'webspace/get of the deleted one: errcode 1013', r);

    r = await call(packet(`<customer><del><filter><login>${customer}</login></filter></del></customer>`));
    check(ok(r, 'customer/del') && r.text('customer/del/result/id') === customerId, 'customer/del by login', r);
    r = await call(packet(`<customer><get><filter><login>${customer}</login></filter><dataset><gen_info/></dataset></get></customer>`));
    check(r.text('customer/get/result/status') === 'error' && errcode(r, 'customer/get') === '1013',
        'customer/get of the deleted customer: errcode 1013', r);
    r = await webspace(other, 'gen_info');
    check(errcode(r, 'webspace/get') === '1013', 'webspace/get of its second subscription: errcode 1013 (deleted with it)', r);

    // Checkup errors: the whole packet fails in <system>.
    r = await call('<packet version="1.6.10.0"><server><get_protos/></server></packet>');
    check(r.text('system/errcode') === '1005', 'a packet version above 1.6.9.1: <system> errcode 1005', r);
    r = await call(packet('<no-such-operator><get/></no-such-operator>'));
    check(r.text('system/errcode') === '1014', 'an unknown operator: <system> errcode 1014', r);
}

async function pleskApiClient() {
    const { Client } = require('plesk-api-client');
    // The certificate names localhost (and 127.0.0.1); the library connects
    // to the host it is given, over https unless told 'http'.
    const client = (auth) => {
        const c = new Client('localhost', Number(url.port), PROTOCOL);
        if (auth.key) c.setSecretKey(auth.key); // the KEY header
        else c.setCredentials(auth.login, auth.password); // HTTP_AUTH_LOGIN / HTTP_AUTH_PASSWD
        return c;
    };
    const caller = (c) => async (xml) => {
        try {
            sending = parseXml(xml).children.flatMap((o) => o.children.map((op) => `${o.name}/${op.name}`)).join(',');
        } catch {
            sending = '(not XML)';
        }
        const raw = await c.request(xml);
        if (typeof raw !== 'string') throw new Failed(`no text answered to ${xml.slice(0, 300)}\n    answered: ${raw}`);
        return new Answer(raw);
    };

    await lifecycle(caller(client({ key: KEY })), `pac${PROTOCOL === 'https' ? 's' : 'p'}`);

    let call = caller(client({ login: LOGIN, password: PASSWORD }));
    let r = await call(packet('<server><get><gen_info/></get></server>'));
    check(ok(r, 'server/get') && r.text('server/get/result/gen_info/server_name'), 'server/get with login and password', r);
    r = await call(packet('<customer><get><filter/><dataset><gen_info/></dataset></get></customer>'));
    check(r.text('system/errcode') === undefined && r.all('customer/get/result/status').every((s) => s.text.trim() === 'ok'),
        'customer/get, empty filter, with login and password', r);

    r = await caller(client({ key: 'wrong-key' }))(packet('<server><get_protos/></server>'));
    check(r.text('system/errcode') === '11003', 'a wrong key is refused: <system> errcode 11003', r);
    r = await caller(client({ login: LOGIN, password: 'wrong-password' }))(packet('<server><get_protos/></server>'));
    check(r.text('system/errcode') === '1001', 'a wrong password is refused: <system> errcode 1001', r);
}

const CLIENTS = { 'plesk-api-client': pleskApiClient };
const client = process.argv[2];
if (!CLIENTS[client] || process.argv.length !== 3) {
    console.error(`usage: plesk_clients.js ${Object.keys(CLIENTS).join('|')}`);
    process.exit(2);
}
console.log(`${client} against ${URL_}`);
CLIENTS[client]().then(
    () => console.log(`${client}: passed`),
    (err) => {
        console.log(`  FAIL ${err instanceof Failed ? err.message : err.stack}`);
        process.exitCode = 1;
    },
);
