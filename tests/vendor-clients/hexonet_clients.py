"""Third-party Python Hexonet ISPAPI clients against provisio-hexonet-test-server.

    python hexonet_clients.py apiconnector|ispapi

Run with the interpreter of the venv that holds both (scripts/vendor-clients
makes it). The server comes from the environment the test server prints:
HEXONET_URL, HEXONET_ENTITY, HEXONET_LOGIN and HEXONET_PASSWORD (an account),
HEXONET_LOGIN_1 and HEXONET_PASSWORD_1 (a second one) and, over HTTPS,
HEXONET_CA. Both libraries open the URL with urllib's default TLS context and
have no CA parameter: they trust HEXONET_CA through SSL_CERT_FILE, which must
name it when Python starts (scripts/vendor-clients sets it).

- hexonet.apiconnector 4.0.2 (MIT, HEXONET's own SDK): APIClient().useOTESystem()
  (entity 1234), setURL, setCredentials, request({...}); lists are flattened to
  KEY0, KEY1... and the keys sorted by the library.
- ispapi 2.2.0 (BSD, retailify's clone of HEXONET's old ispapi): ispapi.connect(...)
  and call({...}); the keys go in dict order. It splits an answer on "\\n" only, so
  from a CRLF answer (the live form) every value it parses keeps a trailing "\\r"
  ("Command completed successfully\\r"): the adapter below strips it, and checks
  that it was there, so a server that stops sending CRLF is noticed too.

Each client takes a domain through its life with the library's own calls: a
wrong password, CheckDomains, AddContact (the same data again: the same handle),
StatusContact, AddDomain with that handle in all four roles and two name servers,
StatusDomain, ModifyDomain of the name servers and of TRANSFERLOCK (each read
back), RenewDomain naming the current expiry year (and again with the stale year,
refused), SetDomainRenewalMode AUTOEXPIRE (read back), an unknown command, then a
transfer of a domain the second account holds (wrong AUTH refused, the right one
pending) and StatusDomainTransfer. Every answer is checked, and a failed check
prints the code, description and body the server answered.
"""

import os
import re
import secrets
import subprocess
import sys
from datetime import datetime, timezone

URL = os.environ["HEXONET_URL"]
ENTITY = os.environ["HEXONET_ENTITY"]
LOGIN, PASSWORD = os.environ["HEXONET_LOGIN"], os.environ["HEXONET_PASSWORD"]
LOGIN_1, PASSWORD_1 = os.environ["HEXONET_LOGIN_1"], os.environ["HEXONET_PASSWORD_1"]
CA = os.environ.get("HEXONET_CA")  # absent on a --plain server
DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


class Failed(Exception):
    pass


class Answer:
    """An ISPAPI answer as a library gave it: code, description, PENDING, properties, body."""

    def __init__(self, code, description, pending, properties, raw):
        self.code, self.description, self.pending = code, description, pending
        self.properties, self.raw = properties, raw

    def one(self, name):
        """PROPERTY[name][0], or None."""
        values = self.properties.get(name)
        return values[0] if values else None

    def __str__(self):
        raw = self.raw.replace("\r\n", "\n").strip().replace("\n", "\n      ") if self.raw else "(none)"
        return f"code {self.code}, description {self.description!r}, pending {self.pending}\n    body:\n      {raw[:3000]}"


def check(ok, what, answer):
    """One expectation; a miss names it and shows what the server answered."""
    if not ok:
        raise Failed(f"{what}\n    answered: {answer}")
    print(f"  ok  {what}")


def one_year_on(stamp):
    """A "YYYY-MM-DD HH:MM:SS" date a year later (29 February becomes the 28th)."""
    y, m, d = int(stamp[:4]), int(stamp[5:7]), int(stamp[8:10])
    if (m, d) == (2, 29):
        d = 28
    return f"{y + 1:04d}-{m:02d}-{d:02d}{stamp[10:]}"


def lifecycle(client, tag):
    """The whole story, through `client` (an adapter below; tag keeps its names apart from the other client's)."""
    suffix = secrets.token_hex(3)
    domain = f"{tag}-{suffix}.com"
    other_domain = f"{tag}-{suffix}-other.net"
    ns = [f"ns{n}.{tag}-{suffix}-dns.net" for n in (1, 2)]
    ns_new = [f"ns{n}.{tag}-{suffix}-moved.org" for n in (1, 2)]
    person = {
        "FIRSTNAME": "Test", "LASTNAME": f"Person {suffix}", "STREET": "1 High Street", "CITY": "Oxford",
        "ZIP": "OX1 1AA", "COUNTRY": "GB", "PHONE": "+44.1865000000", "EMAIL": f"test.{suffix}@example.net",
    }

    a = client.call(LOGIN, "Wrong-pw-" + suffix, {"COMMAND": "CheckDomains", "DOMAIN": [domain]})
    check(a.code == 530, "a wrong password is refused: 530", a)

    a = client.call(LOGIN, PASSWORD, {"COMMAND": "CheckDomains", "DOMAIN": [domain]})
    check(a.code == 200 and len(a.properties.get("DOMAINCHECK", [])) == 1
          and a.one("DOMAINCHECK").startswith("210 "),
          f"CheckDomains DOMAIN0={domain}: 200, DOMAINCHECK[0] 210 (available)", a)

    a = client.call(LOGIN, PASSWORD, {"COMMAND": "AddContact", **person})
    handle = a.one("CONTACT")
    check(a.code == 200 and handle and a.one("NEW") == "1", f"AddContact: 200, CONTACT {handle}, NEW 1", a)
    a = client.call(LOGIN, PASSWORD, {"COMMAND": "AddContact", **person})
    check(a.code == 200 and a.one("CONTACT") == handle and a.one("NEW") == "0",
          f"AddContact with the same data again: 200, the same CONTACT {handle}, NEW 0", a)
    a = client.call(LOGIN, PASSWORD, {"COMMAND": "StatusContact", "CONTACT": handle})
    check(a.code == 200 and a.one("ID") == handle and a.one("EMAIL") == person["EMAIL"]
          and a.one("PHONE") == person["PHONE"] and a.one("USER") == LOGIN,
          "StatusContact: 200, ID, EMAIL, PHONE, USER", a)

    a = client.call(LOGIN, PASSWORD, {
        "COMMAND": "AddDomain", "DOMAIN": domain, "PERIOD": "1Y", "OWNERCONTACT0": handle,
        "ADMINCONTACT0": handle, "TECHCONTACT0": handle, "BILLINGCONTACT0": handle, "NAMESERVER": ns})
    check(a.code == 200 and a.one("STATUS") == "ACTIVE",
          f"AddDomain {domain} PERIOD=1Y, {handle} in all four roles, NAMESERVER0/1: 200, STATUS ACTIVE", a)
    a = client.call(LOGIN, PASSWORD, {"COMMAND": "CheckDomains", "DOMAIN": [domain]})
    check(a.code == 200 and a.one("DOMAINCHECK").startswith("211 "), "CheckDomains again: DOMAINCHECK[0] 211 (taken)", a)

    a = client.call(LOGIN, PASSWORD, {"COMMAND": "StatusDomain", "DOMAIN": domain})
    check(a.code == 200 and a.one("USER") == LOGIN, f"StatusDomain: 200, USER {LOGIN}", a)
    check(a.properties.get("NAMESERVER") == ns, "StatusDomain: NAMESERVER[0..1], the two name servers in order", a)
    check(all(a.one(role) == handle for role in ("OWNERCONTACT", "ADMINCONTACT", "TECHCONTACT", "BILLINGCONTACT")),
          "StatusDomain: the handle in OWNERCONTACT, ADMINCONTACT, TECHCONTACT, BILLINGCONTACT", a)
    expiry = a.one("EXPIRATIONDATE") or ""
    next_year = datetime.now(timezone.utc).year + 1
    check(DATE.match(expiry) and int(expiry[:4]) in (next_year - 1, next_year),
          f"StatusDomain: EXPIRATIONDATE {expiry!r}, about a year from now", a)
    check(bool(a.one("AUTH")), "StatusDomain: AUTH (the transfer code) is not empty", a)
    check(a.one("TRANSFERLOCK") == "0", "StatusDomain: TRANSFERLOCK 0", a)

    a = client.call(LOGIN, PASSWORD, {"COMMAND": "ModifyDomain", "DOMAIN": domain, "NAMESERVER": ns_new})
    check(a.code == 200, "ModifyDomain NAMESERVER0/1 (two others): 200", a)
    a = client.call(LOGIN, PASSWORD, {"COMMAND": "StatusDomain", "DOMAIN": domain})
    check(a.code == 200 and a.properties.get("NAMESERVER") == ns_new, "StatusDomain: NAMESERVER, the new two", a)

    a = client.call(LOGIN, PASSWORD, {"COMMAND": "ModifyDomain", "DOMAIN": domain, "TRANSFERLOCK": 1})
    check(a.code == 200, "ModifyDomain TRANSFERLOCK=1: 200", a)
    a = client.call(LOGIN, PASSWORD, {"COMMAND": "StatusDomain", "DOMAIN": domain})
    check(a.code == 200 and a.one("TRANSFERLOCK") == "1", "StatusDomain: TRANSFERLOCK 1", a)

    year = int(expiry[:4])
    a = client.call(LOGIN, PASSWORD, {"COMMAND": "RenewDomain", "DOMAIN": domain, "PERIOD": "1Y", "EXPIRATION": year})
    check(a.code == 200 and a.one("EXPIRATIONDATE") == one_year_on(expiry),
          f"RenewDomain PERIOD=1Y EXPIRATION={year}: 200, EXPIRATIONDATE {one_year_on(expiry)}", a)
    a = client.call(LOGIN, PASSWORD, {"COMMAND": "RenewDomain", "DOMAIN": domain, "PERIOD": "1Y", "EXPIRATION": year})
    check(a.code == 555, f"RenewDomain again with the stale EXPIRATION={year}: 555", a)
    a = client.call(LOGIN, PASSWORD, {"COMMAND": "StatusDomain", "DOMAIN": domain})
    check(a.code == 200 and a.one("EXPIRATIONDATE") == one_year_on(expiry),
          "StatusDomain: EXPIRATIONDATE is the renewed one (renewed once only)", a)

    a = client.call(LOGIN, PASSWORD, {"COMMAND": "SetDomainRenewalMode", "DOMAIN": domain, "RENEWALMODE": "AUTOEXPIRE"})
    check(a.code == 200, "SetDomainRenewalMode RENEWALMODE=AUTOEXPIRE: 200", a)
    a = client.call(LOGIN, PASSWORD, {"COMMAND": "StatusDomain", "DOMAIN": domain})
    check(a.code == 200 and a.one("RENEWALMODE") == "AUTOEXPIRE", "StatusDomain: RENEWALMODE AUTOEXPIRE", a)

    a = client.call(LOGIN, PASSWORD, {"COMMAND": "NoSuchCommand", "DOMAIN": domain})
    check(a.code == 500, "an unknown command: 500", a)

    # The second account holds a domain; the first asks for it.
    a = client.call(LOGIN_1, PASSWORD_1, {"COMMAND": "AddContact", **person, "EMAIL": f"other.{suffix}@example.net"})
    handle_1 = a.one("CONTACT")
    check(a.code == 200 and handle_1 and handle_1 != handle, f"AddContact as {LOGIN_1}: 200, CONTACT {handle_1}", a)
    a = client.call(LOGIN_1, PASSWORD_1, {
        "COMMAND": "AddDomain", "DOMAIN": other_domain, "PERIOD": "1Y", "OWNERCONTACT0": handle_1,
        "ADMINCONTACT0": handle_1, "TECHCONTACT0": handle_1, "BILLINGCONTACT0": handle_1, "NAMESERVER": ns})
    check(a.code == 200, f"AddDomain {other_domain} as {LOGIN_1}: 200", a)
    a = client.call(LOGIN_1, PASSWORD_1, {"COMMAND": "StatusDomain", "DOMAIN": other_domain})
    auth_1 = a.one("AUTH")
    check(a.code == 200 and a.one("USER") == LOGIN_1 and auth_1, f"StatusDomain as {LOGIN_1}: 200, USER {LOGIN_1}, AUTH", a)
    a = client.call(LOGIN, PASSWORD, {"COMMAND": "StatusDomain", "DOMAIN": other_domain})
    check(a.code == 545, f"StatusDomain {other_domain} as {LOGIN} (not its domain): 545", a)

    a = client.call(LOGIN, PASSWORD, {"COMMAND": "TransferDomain", "DOMAIN": other_domain, "AUTH": "Wrong-" + auth_1})
    check(a.code >= 500 and not a.pending, "TransferDomain with a wrong AUTH: refused (5xx), not pending", a)
    a = client.call(LOGIN, PASSWORD, {"COMMAND": "TransferDomain", "DOMAIN": other_domain, "AUTH": auth_1})
    check(a.code == 200 and a.pending and "domain transfer initiated" in a.description,
          "TransferDomain with the right AUTH: 200 \"...; domain transfer initiated\", PENDING=1", a)
    a = client.call(LOGIN, PASSWORD, {"COMMAND": "StatusDomainTransfer", "DOMAIN": other_domain})
    check(a.code == 200 and a.one("TRANSFERSTATUS") == "INITIATED" and a.one("TRANSFERTYPE") == "INCOMING",
          "StatusDomainTransfer: 200, TRANSFERSTATUS INITIATED, TRANSFERTYPE INCOMING", a)
    a = client.call(LOGIN_1, PASSWORD_1, {"COMMAND": "StatusDomain", "DOMAIN": other_domain})
    check(a.code == 200 and a.one("USER") == LOGIN_1, f"StatusDomain as {LOGIN_1}: still its domain while pending", a)


def trace(login, command, a):
    """A trace line for one exchange: the command, who sent it, and the code and description answered."""
    print(f"  --> {command['COMMAND']} as {login}: {a.code} {a.description}{' PENDING=1' if a.pending else ''}")


# Run by untrusted(): one call with the library, SSL_CERT_FILE unset (so the system store only).
UNTRUSTED = {
    "apiconnector": (
        "import os\n"
        "from hexonet.apiconnector.apiclient import APIClient\n"
        "class Log:\n"
        "    def log(self, post, r, error):\n"
        "        print('error:', error)\n"
        "cl = APIClient().useOTESystem().setURL(os.environ['HEXONET_URL'])\n"
        "cl.setCredentials(os.environ['HEXONET_LOGIN'], os.environ['HEXONET_PASSWORD'])\n"
        "cl.setCustomLogger(Log()).enableDebugMode()\n"
        "r = cl.request({'COMMAND': 'CheckDomains', 'DOMAIN': ['example.com']})\n"
        "print('code:', r.getCode(), r.getDescription())\n"
    ),
    "ispapi": (
        "import os, ispapi\n"
        "api = ispapi.connect(url=os.environ['HEXONET_URL'], entity=os.environ['HEXONET_ENTITY'],\n"
        "                     login=os.environ['HEXONET_LOGIN'], password=os.environ['HEXONET_PASSWORD'])\n"
        "api.call({'COMMAND': 'CheckDomains', 'DOMAIN': ['example.com']})\n"
    ),
}


def untrusted(name):
    """Over HTTPS, the same library without SSL_CERT_FILE is refused by the TLS check."""
    if not CA:
        return
    if os.path.realpath(os.environ.get("SSL_CERT_FILE", "")) != os.path.realpath(CA):
        raise Failed(f"{name} trusts only the default store: run with SSL_CERT_FILE=$HEXONET_CA")
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    done = subprocess.run([sys.executable, "-c", UNTRUSTED[name]], env=env, capture_output=True, text=True, timeout=60)
    out = done.stdout + done.stderr
    check("CERTIFICATE_VERIFY_FAILED" in out, "without SSL_CERT_FILE=$HEXONET_CA the call is refused (certificate verify failed)",
          out.strip()[-1500:])


def apiconnector_client():
    """hexonet.apiconnector 4.0.2: every step is APIClient.request."""
    from hexonet.apiconnector.apiclient import APIClient

    untrusted("apiconnector")

    class Log:
        """The library's debug hook: keeps the transport error behind a local 421 answer."""

        error = None

        def log(self, post, r, error):
            Log.error = error

    # useOTESystem() sets entity 1234 (and the OT&E URL, replaced here): the entity the server names.
    check(ENTITY == "1234", f"HEXONET_ENTITY {ENTITY} is the OT&E entity useOTESystem() sends", ENTITY)
    clients = {}

    class Adapter:
        def call(self, login, password, command):
            cl = clients.get((login, password))
            if cl is None:
                cl = APIClient().useOTESystem().setURL(URL)
                cl.setCredentials(login, password)
                cl.setCustomLogger(Log()).enableDebugMode()
                clients[(login, password)] = cl
            Log.error = None
            r = cl.request(dict(command))
            props = {key: r.getColumn(key).getData() for key in r.getColumnKeys()}
            a = Answer(r.getCode(), r.getDescription(), r.isPending(), props,
                       r.getPlain() + (f"\n(transport error: {Log.error})" if Log.error else ""))
            trace(login, command, a)
            return a

    lifecycle(Adapter(), "apiconnector")


def ispapi_client():
    """ispapi 2.2.0: every step is Connection.call; the '\\r' it leaves on values is stripped here."""
    import ispapi

    untrusted("ispapi")

    class Adapter:
        crlf_seen = False

        def call(self, login, password, command):
            api = ispapi.connect(url=URL, entity=ENTITY, login=login, password=password)
            r = api.call(command)
            h = r.as_hash()
            description = h.get("DESCRIPTION", "")
            # The CRLF bug: values end in "\r" (the answers are CRLF); noted once, then stripped.
            if description.endswith("\r") and not Adapter.crlf_seen:
                Adapter.crlf_seen = True
                print("  (ispapi left '\\r' at the end of each value, as it does with CRLF answers: stripped here)")
            props = {k: [v.rstrip("\r") for v in vs] for k, vs in h.get("PROPERTY", {}).items()}
            a = Answer(r.code(), description.rstrip("\r"), h.get("PENDING", "").rstrip("\r") == "1", props, r.as_string())
            trace(login, command, a)
            return a

    lifecycle(Adapter(), "ispapi")
    check(Adapter.crlf_seen, "ispapi saw CRLF answers (values ending in '\\r'), the live form", "(no '\\r' seen)")


CLIENTS = {"apiconnector": apiconnector_client, "ispapi": ispapi_client}

if __name__ == "__main__":
    client = sys.argv[1] if len(sys.argv) == 2 else None
    if client not in CLIENTS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(CLIENTS)}")
    print(f"{client} against {URL} (CA {CA or 'none: plain HTTP'})")
    try:
        CLIENTS[client]()
    except Failed as failure:
        print(f"  FAIL {failure}")
        sys.exit(1)
    print(f"{client}: passed")
