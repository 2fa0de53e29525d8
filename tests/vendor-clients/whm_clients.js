// Third-party Node WHM API 1 clients against provisio-whm-test-server.
//
//   NODE_PATH=<dir with node_modules> NODE_EXTRA_CA_CERTS=$WHM_CA node whm_clients.js cpanel-lib|cpanel-rest-api
//
// scripts/vendor-clients installs the pinned packages (package-lock.json here)
// and sets the environment: WHM_URL, WHM_USER, WHM_TOKEN, WHM_PASSWORD, WHM_CA.
// Neither library takes a CA file; both use Node's https with certificate
// checks on, so NODE_EXTRA_CA_CERTS (read at start-up) is how they trust ours.
'use strict';

const http = require('node:http');
const https = require('node:https');
const diagnostics = require('node:diagnostics_channel');

const { WHM_URL: URL_, WHM_USER: USER, WHM_TOKEN: TOKEN } = process.env;
const url = new URL(URL_);
const HTTPS = url.protocol === 'https:';

class Failed extends Error {}

// One expectation; a miss names it and shows the server's answer.
function check(ok, what, answer) {
    if (!ok) throw new Failed(`${what}\n    answered: ${JSON.stringify(answer)?.slice(0, 2000)}`);
    console.log(`  ok  ${what}`);
}

// Every HTTP exchange, as the server saw it: the record of which calls each
// library made (both go through node:http/https). Secrets stay out of it.
diagnostics.subscribe('http.client.response.finish', ({ request, response }) => {
    const scheme = String(request.getHeader('authorization') || 'none').split(' ')[0];
    const path = request.path.replace(/(password|pass)=[^&]*/g, '$1=***');
    console.log(`  --> ${request.method} ${path} [auth ${scheme}] ${response.statusCode}`);
});

// One plain GET, no redirects followed: what a browser's first hop sees.
function get(target) {
    return new Promise((resolve, reject) => {
        (target.startsWith('https:') ? https : http)
            .get(target, (res) => {
                let body = '';
                res.on('data', (c) => (body += c));
                res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
            })
            .on('error', reject);
    });
}

// The create_user_session URL signs in once (302 and a cookie), then no more (401).
async function singleUseLogin(target) {
    const first = await get(target);
    check(first.status === 302 && String(first.headers['set-cookie']).includes('cpsession='),
        'session URL: first GET is a 302 with a cpsession cookie', { status: first.status, headers: first.headers });
    const second = await get(target);
    check(second.status === 401, 'session URL: second GET is a 401', { status: second.status, body: second.body.slice(0, 300) });
}

// The whole life of an account through call(function, params) -> API 1 envelope.
async function lifecycle(call, name, domain) {
    const ok = (r) => r?.metadata?.result === 1;
    const acct = (r) => r?.data?.acct?.[0] ?? {};
    let r = await call('version');
    check(ok(r) && r.data.version.startsWith('11.'), 'version', r);
    r = await call('listpkgs');
    const names = (r.data?.pkg ?? []).map((p) => p.name);
    check(ok(r) && names.includes('basic') && names.includes('standard'), 'listpkgs offers basic and standard',
        { packageNames: names, metadata: r.metadata });
    r = await call('verify_new_username', { user: name });
    check(ok(r), `verify_new_username ${name} is free`, r);

    r = await call('createacct', { username: name, domain, plan: 'basic', contactemail: `owner@${domain}`,
        password: 'Xk7-pw-for-panel-clients' });
    // cpanel-rest-api hands back only `data` when there is some, so metadata.output is not always visible.
    check(ok(r) && r.data.package === 'basic' && (r.dataOnly || typeof r.metadata.output?.raw === 'string'),
        'createacct plan=basic (data.package, metadata.output.raw where the library shows it)', r);
    r = await call('accountsummary', { user: name });
    let a = acct(r);
    check(ok(r) && a.user === name && a.domain === domain && a.plan === 'basic' && a.email === `owner@${domain}`
        && a.suspended === 0, 'accountsummary: user, domain, plan, email, not suspended', r);
    r = await call('listaccts', { searchtype: 'user', search: `^${name}$` });
    a = acct(r);
    check(ok(r) && r.data.acct.length === 1 && a.user === name && a.domain === domain && a.plan === 'basic',
        'listaccts finds exactly it', r);

    r = await call('suspendacct', { user: name, reason: 'unpaid invoice' });
    check(ok(r), 'suspendacct', r);
    r = await call('accountsummary', { user: name });
    check(acct(r).suspended === 1 && acct(r).suspendreason === 'unpaid invoice', 'accountsummary: suspended, with the reason', r);
    r = await call('create_user_session', { user: name, service: 'cpaneld' });
    check(!ok(r) && r.metadata.reason.includes('currently suspended'), 'create_user_session refused while suspended', r);
    r = await call('unsuspendacct', { user: name });
    check(ok(r), 'unsuspendacct', r);
    r = await call('accountsummary', { user: name });
    check(acct(r).suspended === 0, 'accountsummary: not suspended', r);

    r = await call('changepackage', { user: name, pkg: 'standard' });
    check(ok(r), 'changepackage pkg=standard', r);
    r = await call('accountsummary', { user: name });
    check(acct(r).plan === 'standard', 'accountsummary: plan standard', r);

    r = await call('create_user_session', { user: name, service: 'cpaneld' });
    check(ok(r) && r.data.url.startsWith(`${URL_}/cpsess`), 'create_user_session cpaneld', r);
    await singleUseLogin(r.data.url);

    r = await call('removeacct', { username: name });
    check(ok(r) && r.metadata.reason === `${name} account removed`, 'removeacct', r);
    r = await call('accountsummary', { user: name });
    check(!ok(r) && r.metadata.reason === 'Account does not exist.', 'accountsummary: Account does not exist.', r);
    r = await call('listaccts', { searchtype: 'user', search: `^${name}$` });
    check(ok(r) && !r.data.acct, 'listaccts: no match', r);
}

async function cpanelLib() {
    const lib = require('cpanel-lib');
    // ignoreCertError stays false: the CA comes from NODE_EXTRA_CA_CERTS.
    const client = (accessKey) => lib.createClient({ host: url.hostname, port: Number(url.port), secure: HTTPS,
        ignoreCertError: false, username: USER, accessKey });
    const c = client(TOKEN); // sends "Authorization: WHM root:TOKEN"
    const call = (fn, query = {}) => new Promise((resolve, reject) =>
        c.call(fn, query, (err, body) => (err ? reject(err) : resolve(body))));
    // The library adds no api.version: without it a call is API 0, where only applist answers.
    const apps = await call('applist');
    check(apps.app?.includes('createacct'), 'API 0 applist lists createacct', apps);
    await lifecycle((fn, params = {}) => call(fn, { ...params, 'api.version': 1 }), 'cljalice', 'clj-alice.example');
    // It ignores the HTTP status and parses the body: the 403's cpanelresult body.
    const denied = await new Promise((resolve, reject) => client('wrong-token')
        .call('version', { 'api.version': 1 }, (err, body) => (err ? reject(err) : resolve(body))));
    check(denied.cpanelresult?.error === 'Access denied', 'a wrong key is refused (cpanelresult Access denied)', denied);
}

async function cpanelRestApi() {
    const { WHM } = require('cpanel-rest-api');
    const whm = (accessKey) => new WHM({ host: url.hostname, port: Number(url.port), secure: HTTPS, username: USER, accessKey });
    const w = whm(TOKEN); // sends "Authorization: WHM root:TOKEN", adds api.version=1 itself
    // It returns `data` (or the whole body when there is none) and throws
    // Error(metadata.reason) on result 0: turn both back into an envelope.
    const call = async (action, params = {}) => {
        try {
            const out = await w.api({ action, params });
            return out.metadata ? out : { data: out, metadata: { result: 1 }, dataOnly: true };
        } catch (err) {
            if (err.config) throw err; // axios's own error (TLS, HTTP status): not an API 1 answer
            return { data: err.data, metadata: { result: 0, reason: err.message } };
        }
    };
    await lifecycle(call, 'crpalice', 'crp-alice.example');
    const status = await whm('wrong-token').api({ action: 'version' }).then(() => 200, (err) => err.response?.status);
    check(status === 403, 'a wrong key is refused (HTTP 403)', { status });
}

const CLIENTS = { 'cpanel-lib': cpanelLib, 'cpanel-rest-api': cpanelRestApi };
const client = process.argv[2];
if (!CLIENTS[client] || process.argv.length !== 3) {
    console.error(`usage: whm_clients.js ${Object.keys(CLIENTS).join('|')}`);
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
