"""Third-party Python EPP clients against provisio-epp-test-server.

    python epp_clients.py epptools|pyepp

Run with the interpreter of the venv that holds both (scripts/vendor-clients
makes it). The registry comes from the environment the test server prints:
EPP_HOST, EPP_PORT, EPP_CLID and EPP_PW (a registrar), EPP_CLID_1 and EPP_PW_1
(a second one) and EPP_CA. Both clients connect to "localhost", a name the
server's certificate holds, and verify it against EPP_CA: epptools through
Config(ca_file=...); pyepp, which has no CA parameter, through SSL_CERT_FILE,
which must name EPP_CA when Python starts (scripts/vendor-clients sets it).

Each client takes a domain through its life with the library's own calls:
login, hello, a contact, two name servers (host objects), check, create, info,
renew by the current expiry date (and again with the stale one, refused), a
clientTransferProhibited lock, then a transfer asked for by the second
registrar (wrong authInfo, the lock, the right one), seen in the first
registrar's poll queue, acked and rejected, and logout; a wrong password is
refused too. Where a library has no call for a step, the frame is written here
and sent through the library's own raw-frame method (said at each place).
Every answer is checked, and a failed check prints the result code, message
and the XML the server answered.
"""

import os
import re
import secrets
import sys
import xml.etree.ElementTree as ET
from datetime import date

HOST = "localhost"  # the certificate is for localhost and 127.0.0.1; EPP_HOST is 127.0.0.1
PORT = int(os.environ["EPP_PORT"])
CLID, PW = os.environ["EPP_CLID"], os.environ["EPP_PW"]
CLID_1, PW_1 = os.environ["EPP_CLID_1"], os.environ["EPP_PW_1"]
CA = os.environ["EPP_CA"]
EPP_NS = "urn:ietf:params:xml:ns:epp-1.0"
DOMAIN_NS = "urn:ietf:params:xml:ns:domain-1.0"


class Failed(Exception):
    pass


class Answer:
    """An EPP answer as a library gave it: result code, message, and the XML when the library exposes it."""

    def __init__(self, code, msg, raw=None):
        self.code, self.msg = int(code) if code is not None else None, msg
        self.raw = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw

    def __str__(self):
        return f"code {self.code}, msg {self.msg!r}\n    xml: {self.raw[:3000] if self.raw else '(the library does not expose it)'}"


def check(ok, what, answer):
    """One expectation; a miss names it and shows what the server answered."""
    if not ok:
        raise Failed(f"{what}\n    answered: {answer}")
    print(f"  ok  {what}")


def local(tag):
    return tag.rsplit("}", 1)[-1]


def first_text(raw, name):
    """The text of the first element called `name` (any namespace) in an answer, or None."""
    for el in ET.fromstring(raw).iter():
        if local(el.tag) == name:
            return (el.text or "").strip()
    return None


def trn_data(raw):
    """The <domain:trnData> fields of an answer (for libraries that do not read them), or None."""
    for el in ET.fromstring(raw).iter(f"{{{DOMAIN_NS}}}trnData"):
        return {local(child.tag): (child.text or "").strip() for child in el}
    return None


def one_year_on(stamp):
    """The date part of an exDate a year later (29 February becomes the 28th, as the registry does)."""
    y, m, d = (int(p) for p in stamp[:10].split("-"))
    if (m, d) == (2, 29):
        d = 28
    return f"{y + 1:04d}-{m:02d}-{d:02d}"


def summary(sent, got):
    """A trace line for one exchange: what the library sent, and the code it got."""
    sent = sent.decode("utf-8", "replace") if isinstance(sent, bytes) else sent
    got = got.decode("utf-8", "replace") if isinstance(got, bytes) else got
    if "<hello" in sent:
        what = "hello"
    else:
        verb = re.search(r"<command>\s*<(\w+)([^>]*)>", sent)
        obj = re.search(r"<(domain|contact|host):(\w+)", sent)
        what = (verb.group(1) if verb else "?") + (f" {obj.group(1)}" if obj else "")
        op = re.search(r'\bop="(\w+)"', verb.group(2)) if verb else None
        what += f" op={op.group(1)}" if op else ""
    code = re.search(r'<result code="(\d+)"', got)
    trid = "clTRID" if "<clTRID>" in sent else "no clTRID"
    tail = repr(sent[-2:]) if sent.endswith(("\r\n", "\n")) else ""
    return f"  --> {what} [{trid}{', ends ' + tail if tail else ''}] {code.group(1) if code else 'greeting' if '<greeting>' in got else '?'}"


def lifecycle(client, tag):
    """The whole story, through `client` (an adapter below; tag keeps its names apart from the other client's)."""
    suffix = secrets.token_hex(3)
    domain = f"{tag}-{suffix}.example"
    contact = f"{tag[:3]}-{suffix}"  # 10 characters (3-16)
    hosts = [f"ns{n}.{tag}-{suffix}-dns.example.net" for n in (1, 2)]  # outside the registry's domains: no addresses
    auth = f"Dom-{suffix}-pw"  # 6-16 characters, and no '&' or '<' (pyepp escapes twice)

    # A wrong password: 2200, on a session of its own.
    a = client.wrong_login(CLID, "Wrong-pw-" + suffix)
    check(a.code == 2200, "login with a wrong password is refused: 2200", a)

    a = client.login(CLID, PW)
    check(a.code == 1000, f"login as {CLID} over TLS to {HOST}:{PORT}: 1000", a)
    cert = client.peer_cert()
    names = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
    check("localhost" in names, f"the TLS session is verified against EPP_CA (peer certificate for {names})", Answer(None, None, str(cert)))

    greeting, raw = client.hello()
    check(greeting, "hello: a <greeting> answers", Answer(None, None, raw))

    a = client.contact_create(contact)
    check(a.code == 1000 and first_text(a.raw, "id") == contact, f"contact:create {contact}: 1000, creData id", a)

    for host in hosts:
        a = client.host_create(host)
        check(a.code == 1000 and first_text(a.raw, "name") == host, f"host:create {host} (no addresses): 1000", a)

    a, avail = client.domain_check(domain)
    check(a.code == 1000 and avail is True, f"domain:check {domain}: available", a)

    a = client.domain_create(domain, contact, hosts, auth)
    check(a.code == 1000 and first_text(a.raw, "name") == domain and first_text(a.raw, "exDate"),
          "domain:create (1 year, registrant, admin+tech, 2 hostObj, authInfo): 1000, creData exDate", a)
    created_exdate = first_text(a.raw, "exDate")

    a, info = client.domain_info(domain)
    check(a.code == 1000 and info["name"] == domain and info["registrant"] == contact
          and info["admin"] == contact and info["tech"] == contact,
          "domain:info: name, registrant, admin and tech contacts", a)
    check(sorted(info["ns"]) == sorted(hosts), "domain:info: the two hostObj name servers", a)
    check(bool(info["exDate"]) and info["exDate"] == created_exdate, "domain:info: exDate, as create gave it", a)
    check(info["auth"] == auth, "domain:info: authInfo (to the sponsor)", a)
    exdate = info["exDate"]

    a, renewed = client.domain_renew(domain, exdate)
    check(a.code == 1000 and renewed and renewed[:10] == one_year_on(exdate),
          f"domain:renew curExpDate {exdate[:10]} for 1 year: 1000, exDate {one_year_on(exdate)}", a)
    a, _ = client.domain_renew(domain, exdate)
    check(a.code == 2306, f"domain:renew again with the stale curExpDate {exdate[:10]}: 2306", a)
    a, info = client.domain_info(domain)
    check(a.code == 1000 and info["exDate"] == renewed, "domain:info: exDate is the renewed one (renewed once only)", a)

    a = client.domain_status(domain, add="clientTransferProhibited")
    check(a.code == 1000, "domain:update add status clientTransferProhibited: 1000", a)
    a, info = client.domain_info(domain)
    check(a.code == 1000 and "clientTransferProhibited" in info["statuses"],
          "domain:info: status clientTransferProhibited", a)

    # The second registrar asks for the domain.
    other = client.other()
    a = other.login(CLID_1, PW_1)
    check(a.code == 1000, f"login as {CLID_1} (a second session): 1000", a)
    a, _ = other.transfer_request(domain, "Wrong-auth-" + suffix[:4])
    check(a.code == 2202, "transfer op=request with the wrong authInfo: 2202", a)
    a, _ = other.transfer_request(domain, auth)
    check(a.code == 2304, "transfer op=request while clientTransferProhibited: 2304", a)

    a = client.domain_status(domain, rem="clientTransferProhibited")
    check(a.code == 1000, "domain:update rem status clientTransferProhibited: 1000", a)

    a, trn = other.transfer_request(domain, auth)
    check(a.code == 1001 and trn and trn.get("name") == domain and trn.get("trStatus") == "pending"
          and trn.get("reID") == CLID_1 and trn.get("acID") == CLID,
          f"transfer op=request with the right authInfo: 1001, trnData pending, reID {CLID_1}, acID {CLID}", a)

    # The first registrar hears of it in its poll queue, and says no.
    a, msg_id, trn = client.poll_req()
    check(a.code == 1301 and msg_id and trn and trn.get("name") == domain and trn.get("trStatus") == "pending",
          f"poll op=req as {CLID}: 1301, a msgQ id, trnData for {domain} pending", a)
    a = client.poll_ack(msg_id)
    check(a.code == 1000, f"poll op=ack msgID={msg_id}: 1000", a)
    a, _, _ = client.poll_req()
    check(a.code == 1300, "poll op=req again: 1300 (the queue is empty)", a)

    a, trn = client.transfer_reject(domain)
    check(a.code == 1000 and trn and trn.get("trStatus") == "clientRejected",
          "transfer op=reject: 1000, trnData clientRejected", a)
    a, info = client.domain_info(domain)
    check(a.code == 1000 and info["clID"] == CLID and "pendingTransfer" not in info["statuses"],
          f"domain:info: still sponsored by {CLID}, no pendingTransfer", a)

    a, msg_id, trn = other.poll_req()
    check(a.code == 1301 and msg_id and trn and trn.get("name") == domain and trn.get("trStatus") == "clientRejected",
          f"poll op=req as {CLID_1}: 1301, trnData for {domain} clientRejected", a)
    a = other.poll_ack(msg_id)
    check(a.code == 1000, f"poll op=ack msgID={msg_id} as {CLID_1}: 1000", a)

    a = other.logout()
    check(a.code == 1500, f"logout as {CLID_1}: 1500", a)
    a = client.logout()
    check(a.code == 1500, f"logout as {CLID}: 1500", a)


def epptools_client():
    """epptools (MIT): every step is one of its calls."""
    from epptools import Client, Config
    from epptools.exceptions import AuthenticationException, CommandException, ConnectionException
    from epptools.transport import Connection

    _write, _read = Connection.write_frame, Connection.read_frame

    def traced_write(self, xml):
        self._provisio_sent = xml
        return _write(self, xml)

    def traced_read(self):
        raw = _read(self)
        if getattr(self, "_provisio_sent", None):
            print(summary(self._provisio_sent, raw))
            self._provisio_sent = None
        return raw

    Connection.write_frame, Connection.read_frame = traced_write, traced_read

    def config(clid, pw, ca=CA):
        # login_security=False: the registry offers no RFC 8807 extension anyway, and the
        # greeting's objURIs and extURIs are what login declares.
        return Config(host=HOST, port=PORT, clid=clid, password=pw, ca_file=ca, login_security=False)

    def answer(r):
        return Answer(r.code(), r.message(), r.raw)

    # Verification is on: without EPP_CA (the system store only) the handshake is refused.
    try:
        Client(config(CLID, PW, ca=None)).connect()
        raise Failed("connecting without EPP_CA was not refused")
    except ConnectionException as err:
        check("CERTIFICATE_VERIFY_FAILED" in str(err), "without EPP_CA the handshake is refused (certificate verify failed)", str(err))

    class Adapter:
        def __init__(self):
            self.c = None

        def other(self):
            return Adapter()

        def wrong_login(self, clid, pw):
            c = Client(config(clid, pw))
            try:
                c.connect()
                r = c.login()
                return answer(r)  # not refused: the check shows it
            except AuthenticationException as err:  # login() raises this on 2200 only
                return answer(err.response)
            finally:
                c.disconnect()

        def login(self, clid, pw):
            self.c = Client(config(clid, pw))
            self.c.connect()
            check(self.c.greeting.is_greeting() and DOMAIN_NS in self.c.greeting.service_obj_uris(),
                  "a greeting on connect, offering domain-1.0", Answer(None, None, self.c.greeting.raw))
            self.c.throw_on_failure(False)  # the codes are checked here, not raised (login raises all the same)
            try:
                return answer(self.c.login())
            except CommandException as err:
                return answer(err.response)

        def peer_cert(self):
            return self.c._connection._sock.getpeercert()  # {} unless the chain was verified

        def hello(self):
            g = self.c.hello()
            return g.is_greeting(), g.raw

        def contact_create(self, cid):
            return answer(self.c.contact.create(
                cid, name="Test Person", street=["1 High Street"], city="Oxford", pc="OX1 1AA", cc="GB",
                voice="+44.1865000000", email="test.person@example.net", auth_info="Con-pw-123", type="loc"))

        def host_create(self, name):
            return answer(self.c.host.create(name))

        def domain_check(self, name):
            r = self.c.domain.check([name])
            return answer(r), r.is_available(name)

        def domain_create(self, name, contact, hosts, auth):
            return answer(self.c.domain.create(name, years=1, registrant=contact,
                                               contacts={"admin": contact, "tech": contact},
                                               nameservers=hosts, auth_info=auth))

        def domain_info(self, name):
            r = self.c.domain.info(name)
            if r.code() != 1000:
                return answer(r), {}
            return answer(r), {
                "name": r.object_name(), "registrant": r.registrant(), "admin": (r.admin_contacts() or [None])[0],
                "tech": (r.tech_contacts() or [None])[0], "ns": r.nameservers(), "exDate": r.expiry_date(),
                "auth": r.auth_info(), "statuses": r.statuses(), "clID": r.sponsor(),
            }

        def domain_renew(self, name, exdate):
            # renew() takes exDate as info gave it and sends its date part as curExpDate.
            r = self.c.domain.renew(name, exdate, years=1)
            return answer(r), r.expiry_date()

        def domain_status(self, name, add=None, rem=None):
            return answer(self.c.domain.update(name, add={"statuses": [add]} if add else None,
                                               rem={"statuses": [rem]} if rem else None))

        def transfer_request(self, name, auth):
            r = self.c.domain.transfer("request", name, auth_info=auth)
            return answer(r), self.trn(r)

        def transfer_reject(self, name):
            r = self.c.domain.transfer("reject", name)
            return answer(r), self.trn(r)

        @staticmethod
        def trn(r):
            t = r.transfer()
            if t is None:
                return None
            return {"name": r.object_name(), "trStatus": t["status"], "reID": t["requested_by"], "acID": t["acting_client"]}

        def poll_req(self):
            r = self.c.poll.request()
            return answer(r), r.message_id(), self.trn(r)

        def poll_ack(self, msg_id):
            return answer(self.c.poll.ack(msg_id))

        def logout(self):
            r = self.c.logout()
            self.c.disconnect()
            return answer(r)

    lifecycle(Adapter(), "epptools")


def pyepp_client():
    """pyepp (GPL-3.0, InternetNZ): its frames end in CRLF and login and logout carry no clTRID."""
    if os.path.realpath(os.environ.get("SSL_CERT_FILE", "")) != os.path.realpath(CA):
        raise Failed("pyepp trusts only the default store: run with SSL_CERT_FILE=$EPP_CA")
    from pyepp import Contact, ContactData, Domain, DomainData, EppCommunicator, EppCommunicatorException, Host, HostData, Poll
    from pyepp.command_templates import POLL_ACK_XML
    from pyepp.contact import AddressData, PostalInfoData

    _write, _read = EppCommunicator._write, EppCommunicator._read

    def traced_write(self, xml):
        self._provisio_sent = xml + "\r\n"  # what _write puts on the wire
        return _write(self, xml)

    def traced_read(self):
        raw = _read(self)
        if getattr(self, "_provisio_sent", None):
            print(summary(self._provisio_sent, raw or b""))
            self._provisio_sent = None
        return raw

    EppCommunicator._write, EppCommunicator._read = traced_write, traced_read

    def answer(r):
        return Answer(r.code, r.message, r.raw_response)

    def refused(err):
        # login() raises on anything but 1000, naming the code only in its message (and it
        # takes 2004, not 2200, for a wrong password); the answer's XML is not kept.
        code = re.search(r"Code: (\d+)", str(err))
        return Answer(code.group(1) if code else None, str(err))

    class Adapter:
        def __init__(self):
            self.epp = None

        def other(self):
            return Adapter()

        def wrong_login(self, clid, pw):
            epp = EppCommunicator(HOST, PORT)
            epp.connect()
            try:
                r = epp.login(clid, pw)
                return answer(r)  # not refused: the check shows it
            except EppCommunicatorException as err:
                return refused(err)
            finally:
                epp.disconnect()

        def login(self, clid, pw):
            self.epp = EppCommunicator(HOST, PORT)
            greeting = self.epp.connect()
            check(b"<greeting>" in greeting and DOMAIN_NS.encode() in greeting,
                  "a greeting on connect, offering domain-1.0", Answer(None, None, greeting))
            self.domain, self.contact, self.host, self.poll = Domain(self.epp), Contact(self.epp), Host(self.epp), Poll(self.epp)
            try:
                return answer(self.epp.login(clid, pw))
            except EppCommunicatorException as err:
                return refused(err)

        def peer_cert(self):
            return self.epp._ssl_socket.getpeercert()  # {} unless the chain was verified

        def hello(self):
            raw = self.epp.hello()
            return b"<greeting>" in raw, raw

        def contact_create(self, cid):
            return answer(self.contact.create(ContactData(
                id=cid, email="test.person@example.net", phone="+44.1865000000", password="Con-pw-123",
                postal_info=PostalInfoData(name="Test Person", type="loc", address=AddressData(
                    street_1="1 High Street", city="Oxford", postal_code="OX1 1AA", country_code="GB")))))

        def host_create(self, name):
            return answer(self.host.create(HostData(host_name=name)))

        def domain_check(self, name):
            r = self.domain.check([name])
            return answer(r), (r.result_data or {}).get(name, {}).get("avail")

        def domain_create(self, name, contact, hosts, auth):
            return answer(self.domain.create(DomainData(domain_name=name, period=1, registrant=contact,
                                                        admin=contact, tech=contact, host=hosts, password=auth)))

        def domain_info(self, name):
            r = self.domain.info(name)
            if r.code != 1000:
                return answer(r), {}
            d = r.result_data
            return answer(r), {
                "name": d.domain_name, "registrant": d.registrant, "admin": d.admin, "tech": d.tech,
                "ns": d.host or [], "exDate": d.expiry_date, "auth": d.password, "statuses": d.status,
                "clID": d.sponsoring_client_id,
            }

        def domain_renew(self, name, exdate):
            # renew() takes a date and sends it as curExpDate; it does not read renData.
            r = self.domain.renew(name, date.fromisoformat(exdate[:10]), period=1)
            return answer(r), first_text(r.raw_response, "exDate") if r.code == 1000 else None

        def domain_status(self, name, add=None, rem=None):
            # add_statuses are (status, description) pairs.
            return answer(self.domain.update(name, add_statuses=[(add, "set by vendor-clients")] if add else None,
                                             remove_statuses=[rem] if rem else None))

        def transfer_request(self, name, auth):
            # transfer() is op="request" only; it does not read trnData.
            r = self.domain.transfer(name, auth)
            return answer(r), trn_data(r.raw_response)

        def transfer_reject(self, name):
            # pyepp has no call for op="reject" (nor approve, cancel, query): the frame is
            # written here and sent through EppCommunicator.execute, its raw-frame method.
            r = self.epp.execute(
                f'<?xml version="1.0" encoding="UTF-8" standalone="no"?><epp xmlns="{EPP_NS}"><command>'
                f'<transfer op="reject"><domain:transfer xmlns:domain="{DOMAIN_NS}"><domain:name>{name}</domain:name>'
                f'</domain:transfer></transfer><clTRID>pyepp-reject-{secrets.token_hex(4)}</clTRID></command></epp>')
            return answer(r), trn_data(r.raw_response)

        def poll_req(self):
            r = self.poll.request()
            msg_id = r.result_data.message_id if r.code == 1301 and r.result_data else None
            return answer(r), msg_id, trn_data(r.raw_response) if r.code == 1301 else None

        def poll_ack(self, msg_id):
            # Poll.acknowledge() reads <msgQ> from every 1000 answer and raises AttributeError
            # when there is none, and RFC 5730 §2.6 says there is none once the queue is empty:
            # acking the last message always fails in the library, after the server acked it.
            # So the library's own POLL_ACK_XML goes through its execute(), which parses nothing.
            return answer(self.poll.execute(POLL_ACK_XML, message_id=msg_id))

        def logout(self):
            return answer(self.epp.logout())

    lifecycle(Adapter(), "pyepp")


NOMINET = "http://www.nominet.org.uk/epp/xml/"
CONTACT_NS = "urn:ietf:params:xml:ns:contact-1.0"


def epptools_nominet_client():
    """epptools against the registry in Nominet mode (--nominet --handshake-tag EPP_CLID_1): login by
    tag declaring what the greeting offers (Nominet's extensions among them), a contact with
    contact-nom-ext, a domain whose authInfo is ignored with a warning, then a release to the second
    tag, which must answer a handshake: it reads the case from its poll queue and accepts it, and the
    first tag hears that the domain left. epptools has no calls for Nominet's extensions: those
    frames are built with its Frame builder (Frame.ns) and sent with Client.request."""
    from epptools import Client, Config

    def config(clid, pw):
        return Config(host=HOST, port=PORT, clid=clid, password=pw, ca_file=CA, login_security=False)

    def answer(r):
        return Answer(r.code(), r.message(), r.raw)

    suffix = secrets.token_hex(3)
    domain, contact = f"epptools-{suffix}.co.uk", f"NOM-{suffix}"
    us, them = Client(config(CLID, PW)), Client(config(CLID_1, PW_1))
    for c in (us, them):
        c.connect()
        c.throw_on_failure(False)
    offered = us.greeting.service_ext_uris()
    check(all(f"{NOMINET}{e}" in offered for e in ("contact-nom-ext-1.0", "std-release-1.0", "std-handshake-1.0")),
          "the greeting offers Nominet's extensions", Answer(None, None, str(offered)))
    for c, tag in ((us, CLID), (them, CLID_1)):
        a = answer(c.login())
        check(a.code == 1000, f"login as tag {tag}, declaring the greeting's extensions: 1000", a)

    f = us.frame()
    create = f.ns(f.verb("create"), CONTACT_NS, "contact:create")
    f.ns(create, CONTACT_NS, "contact:id", contact)
    postal = f.ns(create, CONTACT_NS, "contact:postalInfo", attrs={"type": "loc"})
    f.ns(postal, CONTACT_NS, "contact:name", "Test Person")
    addr = f.ns(postal, CONTACT_NS, "contact:addr")
    for name, value in (("street", "1 High Street"), ("city", "Oxford"), ("pc", "OX1 1AA"), ("cc", "GB")):
        f.ns(addr, CONTACT_NS, f"contact:{name}", value)
    f.ns(create, CONTACT_NS, "contact:email", "test.person@example.net")
    f.ns(f.ns(create, CONTACT_NS, "contact:authInfo"), CONTACT_NS, "contact:pw", "Con-pw-123")
    ext = f.ns(f.extension(), f"{NOMINET}contact-nom-ext-1.0", "contact-nom-ext:create")
    f.ns(ext, f"{NOMINET}contact-nom-ext-1.0", "contact-nom-ext:type", "IND")
    a = answer(us.request(f))
    check(a.code == 1000, f"contact:create {contact} with contact-nom-ext type IND: 1000", a)

    a = answer(us.domain.create(domain, years=2, registrant=contact, auth_info="ignored-pw"))
    check(a.code == 1000 and "ignored-field" in a.raw, "domain:create: 1000, with Nominet's warning that authInfo was ignored", a)
    r = us.domain.info(domain)
    check(r.code() == 1000 and r.registrant() == contact and not r.auth_info(),
          "domain:info: our registrant, and no authInfo (.uk has none)", answer(r))

    f = us.frame()
    release = f.ns(f.verb("update"), f"{NOMINET}std-release-1.0", "r:release")
    f.ns(release, f"{NOMINET}std-release-1.0", "r:domainName", domain)
    f.ns(release, f"{NOMINET}std-release-1.0", "r:registrarTag", CLID_1)
    a = answer(us.request(f))
    check(a.code == 1001 and "releasePending" in a.raw, f"release to {CLID_1}, which handshakes: 1001 releasePending", a)

    r = them.poll.request()
    a = answer(r)
    case = first_text(a.raw, "caseId") if a.code == 1301 else None
    check(case and domain in a.raw and r.queue_message() == "Registrar Change Authorisation Request",
          f"poll as {CLID_1}: 1301, an authorisation request with a case id for {domain}", a)
    check(answer(them.poll.ack(r.message_id())).code == 1000, "poll op=ack: 1000", a)
    f = them.frame()
    accept = f.ns(f.verb("update"), f"{NOMINET}std-handshake-1.0", "h:accept")
    f.ns(accept, f"{NOMINET}std-handshake-1.0", "h:caseId", case)
    a = answer(them.request(f))
    check(a.code == 1000 and "hanData" in a.raw and domain in a.raw, f"handshake accept of case {case}: 1000, hanData", a)
    r = them.domain.info(domain)
    check(r.code() == 1000 and r.sponsor() == CLID_1, f"domain:info: now sponsored by {CLID_1}", answer(r))

    r = us.poll.request()
    a = answer(r)
    check(a.code == 1301 and 'moved="Y"' in a.raw and domain in a.raw and r.queue_message() == "Domains Released Notification",
          f"poll as {CLID}: the domains released notification, moved=Y", a)
    for c in (us, them):
        c.logout()
        c.disconnect()


CLIENTS = {"epptools": epptools_client, "pyepp": pyepp_client, "epptools-nominet": epptools_nominet_client}

if __name__ == "__main__":
    client = sys.argv[1] if len(sys.argv) == 2 else None
    if client not in CLIENTS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(CLIENTS)}")
    print(f"{client} against {HOST}:{PORT} (CA {CA})")
    try:
        CLIENTS[client]()
    except Failed as failure:
        print(f"  FAIL {failure}")
        sys.exit(1)
    print(f"{client}: passed")
