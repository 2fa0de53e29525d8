"""A third-party Python Plesk XML API client against provisio-plesk-test-server.

    SSL_CERT_FILE=$PLESK_CA python plesk_clients.py pypleski

Run with the interpreter of the venv that holds pypleski (scripts/vendor-clients
makes it). The server comes from the environment the test server prints:
PLESK_URL, PLESK_LOGIN, PLESK_PASSWORD, PLESK_KEY and PLESK_CA.

pypleski's packet helpers write packets Plesk's schema rejects (fields sent
empty, <values> or <gen_setup> left out: docs/research/plesk-xml-api.md §5), so
the lifecycle is hand-written XML in Plesk's element order, sent through the
library's own transport (request_from_string: its headers, its TLS); two
packets the library builds correctly go through its request() and its
response parsing as well. Every answer is checked, and a failed check prints
what the server answered.
"""

import base64
import http.client
import os
import re
import ssl
import sys
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

URL, LOGIN, PASSWORD, KEY = (os.environ[k] for k in ("PLESK_URL", "PLESK_LOGIN", "PLESK_PASSWORD", "PLESK_KEY"))
CA = os.environ.get("PLESK_CA")  # absent on a --plain server
HOST, PORT = urlsplit(URL).hostname, urlsplit(URL).port
VERSION = "1.6.9.1"  # the protocol every hand-written packet names


class Failed(Exception):
    pass


class Answer:
    """A response packet: the text as it came, and its parsed tree (root <packet>)."""

    def __init__(self, raw):
        self.raw = raw
        try:
            self.root = ET.fromstring(raw)
        except ET.ParseError as err:
            raise Failed(f"the answer is not XML ({err})\n    answered: {raw[:2000]!r}") from None

    def text(self, path):
        """The text of the first element at path (below <packet>), or None."""
        return self.root.findtext(path)

    def all(self, path):
        return self.root.findall(path)

    def __str__(self):
        return self.raw[:2000]


def check(ok, what, answer):
    """One expectation; a miss names it and shows the server's answer."""
    if not ok:
        raise Failed(f"{what}\n    answered: {str(answer)[:2000]}")
    print(f"  ok  {what}")


def operations(body):
    """operator/operation of each operation in a request packet, for the trace."""
    try:
        packet = ET.fromstring(body)
    except (ET.ParseError, TypeError):
        return "(not XML)"
    return ",".join(f"{operator.tag}/{operation.tag}" for operator in packet for operation in operator) or "(empty)"


# Every HTTP exchange, as the server saw it (pypleski and our GETs both use
# http.client): the record of which calls the library made. The session ids
# in rsession_init.php URLs stay out of the log.
_request, _getresponse = http.client.HTTPConnection.request, http.client.HTTPConnection.getresponse


def _traced_request(self, method, url, body=None, headers={}, **kwargs):
    self._provisio_trace = (method, url, body, headers)
    return _request(self, method, url, body, headers, **kwargs)


def _traced_getresponse(self):
    response = _getresponse(self)
    method, url, body, headers = self._provisio_trace
    auth = "KEY" if "KEY" in headers else "HTTP_AUTH_LOGIN" if "HTTP_AUTH_LOGIN" in headers else "none"
    what = operations(body) if method == "POST" else ""
    print(f"  --> {method} {re.sub(r'SESSID=[^&]*', 'SESSID=***', url)} [auth {auth}] {what} {response.status}")
    return response


http.client.HTTPConnection.request = _traced_request
http.client.HTTPConnection.getresponse = _traced_getresponse


def session_get(session_id, name="PLESKSESSID"):
    """GET rsession_init.php as a browser's first hop (no redirect followed), trusting the CA."""
    if CA:
        connection = http.client.HTTPSConnection(HOST, PORT, context=ssl.create_default_context(cafile=CA))
    else:
        connection = http.client.HTTPConnection(HOST, PORT)
    try:
        connection.request("GET", f"/enterprise/rsession_init.php?{name}={session_id}")
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def single_use_login(session_id, name="PLESKSESSID"):
    """A create_session id opens the panel once (302 and a cookie), then no more (401)."""
    status, headers, body = session_get(session_id, name)
    check(status == 302 and headers.get("location") and "PLESKSESSID=" in headers.get("set-cookie", ""),
          f"rsession_init.php?{name}=…: first GET is a 302 with a Location and a PLESKSESSID cookie",
          {"status": status, "headers": headers})
    status, headers, body = session_get(session_id, name)
    check(status == 401, f"rsession_init.php?{name}=…: second GET is a 401", {"status": status, "body": body[:300]})


def packet(body):
    return f'<packet version="{VERSION}">{body}</packet>'


def ok(answer, path):
    return answer.text(f"{path}/result/status") == "ok"


def errcode(answer, path):
    return answer.text(f"{path}/result/errcode")


def lifecycle(call, tag):
    """A customer and its subscriptions through their whole life; call(xml) -> Answer."""
    customer, domain, other = f"{tag}cust", f"{tag}-site.example", f"{tag}-second.example"
    mark = f"provisio:vendor-clients:{tag}"

    r = call(packet("<server><get><gen_info/><stat/></get></server>"))
    check(ok(r, "server/get") and r.text("server/get/result/gen_info/server_name")
          and len(r.text("server/get/result/gen_info/server_guid") or "") == 36
          and r.text("server/get/result/stat/version/plesk_version"),
          "server/get gen_info+stat: server_name, a 36-char server_guid, stat/version/plesk_version", r)

    r = call(packet("<ip><get/></ip>"))
    shared = [i.findtext("ip_address") for i in r.all("ip/get/result/addresses/ip_info") if i.findtext("type") == "shared"]
    check(ok(r, "ip/get") and shared and shared[0], "ip/get lists a shared address", r)
    ip = shared[0]

    r = call(packet("<service-plan><get><filter><name>basic</name><name>standard</name></filter></get></service-plan>"))
    plans = {p.findtext("name"): p.findtext("guid") for p in r.all("service-plan/get/result") if p.findtext("status") == "ok"}
    check(set(plans) == {"basic", "standard"} and all(len(g or "") == 36 for g in plans.values()),
          "service-plan/get by name basic, standard: one result each, fields in <result>, 36-char guids", r)

    r = call(packet(f"<customer><add><gen_info><pname>Panel Clients {tag}</pname><login>{customer}</login>"
                    f"<passwd>Pc-{tag}-Passw0rd!</passwd><email>owner@{domain}</email>"
                    f"<external-id>{mark}</external-id><description>made by scripts/vendor-clients</description>"
                    "</gen_info></add></customer>"))
    check(ok(r, "customer/add") and r.text("customer/add/result/id") and len(r.text("customer/add/result/guid") or "") == 36,
          "customer/add with external-id: id, guid", r)
    customer_id, customer_guid = r.text("customer/add/result/id"), r.text("customer/add/result/guid")

    r = call(packet(f"<customer><get><filter><external-id>{mark}</external-id></filter>"
                    "<dataset><gen_info/></dataset></get></customer>"))
    g = "customer/get/result/data/gen_info"
    check(len(r.all("customer/get/result")) == 1 and ok(r, "customer/get")
          and (r.text("customer/get/result/id"), r.text(f"{g}/login"), r.text(f"{g}/email"), r.text(f"{g}/status"),
               r.text(f"{g}/guid"), r.text(f"{g}/external-id"))
          == (customer_id, customer, f"owner@{domain}", "0", customer_guid, mark),
          "customer/get by external-id: id, login, email, status 0, guid, external-id", r)

    r = call(packet(f"<webspace><add><gen_setup><name>{domain}</name><owner-login>{customer}</owner-login>"
                    f"<htype>vrt_hst</htype><ip_address>{ip}</ip_address></gen_setup>"
                    f"<hosting><vrt_hst><property><name>ftp_login</name><value>{tag}ftp</value></property>"
                    f"<property><name>ftp_password</name><value>Ftp-{tag}-Passw0rd!</value></property>"
                    f"<ip_address>{ip}</ip_address></vrt_hst></hosting>"
                    "<plan-name>basic</plan-name></add></webspace>"))
    check(ok(r, "webspace/add") and r.text("webspace/add/result/id") and len(r.text("webspace/add/result/guid") or "") == 36,
          "webspace/add on plan-name basic, owner-login, ftp_login/ftp_password: id, guid", r)
    webspace_id = r.text("webspace/add/result/id")

    def webspace(name, *datasets):
        sets = "".join(f"<{d}/>" for d in datasets)
        return call(packet(f"<webspace><get><filter><name>{name}</name></filter><dataset>{sets}</dataset></get></webspace>"))

    g = "webspace/get/result/data/gen_info"
    plan_guid = "webspace/get/result/data/subscriptions/subscription/plan/plan-guid"
    r = webspace(domain, "gen_info", "subscriptions")
    check(ok(r, "webspace/get") and r.text("webspace/get/result/id") == webspace_id
          and (r.text(f"{g}/name"), r.text(f"{g}/status"), r.text(f"{g}/owner-id"), r.text(f"{g}/dns_ip_address"),
               r.text(plan_guid)) == (domain, "0", customer_id, ip, plans["basic"]),
          "webspace/get gen_info+subscriptions: name, status 0, owner-id, dns_ip_address, plan-guid of basic", r)

    for status in ("16", "0"):
        r = call(packet(f"<webspace><set><filter><name>{domain}</name></filter>"
                        f"<values><gen_setup><status>{status}</status></gen_setup></values></set></webspace>"))
        check(ok(r, "webspace/set") and r.text("webspace/set/result/id") == webspace_id,
              f"webspace/set gen_setup/status {status}", r)
        r = webspace(domain, "gen_info")
        check(r.text(f"{g}/status") == status, f"webspace/get: status {status}", r)

    r = call(packet(f"<webspace><switch-subscription><filter><name>{domain}</name></filter>"
                    f"<plan-guid>{plans['standard']}</plan-guid></switch-subscription></webspace>"))
    check(ok(r, "webspace/switch-subscription"), "webspace/switch-subscription to standard's guid", r)
    r = webspace(domain, "subscriptions")
    check(r.text(plan_guid) == plans["standard"], "webspace/get subscriptions: plan-guid of standard", r)

    r = call(packet(f"<customer><set><filter><login>{customer}</login></filter>"
                    f"<values><gen_info><passwd>Pc-{tag}-N3w-Passw0rd!</passwd></gen_info></values></set></customer>"))
    check(ok(r, "customer/set") and r.text("customer/set/result/id") == customer_id, "customer/set gen_info/passwd", r)

    for name in ("PLESKSESSID", "PHPSESSID"):
        user_ip = base64.b64encode(b"203.0.113.7").decode()
        r = call(packet(f"<server><create_session><login>{customer}</login><data><user_ip>{user_ip}</user_ip>"
                        "<source_server></source_server></data></create_session></server>"))
        session_id = r.text("server/create_session/result/id")
        check(ok(r, "server/create_session") and session_id, f"server/create_session for {customer}: an id", r)
        single_use_login(session_id, name)

    # A second subscription, by owner-id and plan-guid: it goes with its customer.
    r = call(packet(f"<webspace><add><gen_setup><name>{other}</name><owner-id>{customer_id}</owner-id>"
                    f"<htype>vrt_hst</htype><ip_address>{ip}</ip_address></gen_setup>"
                    f"<hosting><vrt_hst><property><name>ftp_login</name><value>{tag}ftp2</value></property>"
                    f"<property><name>ftp_password</name><value>Ftp-{tag}-Passw0rd!</value></property>"
                    f"<ip_address>{ip}</ip_address></vrt_hst></hosting>"
                    f"<plan-guid>{plans['basic']}</plan-guid></add></webspace>"))
    check(ok(r, "webspace/add"), "webspace/add a second one on plan-guid basic, owner-id", r)

    r = call(packet(f"<webspace><del><filter><name>{domain}</name></filter></del></webspace>"))
    check(ok(r, "webspace/del") and r.text("webspace/del/result/filter-id") == domain
          and r.text("webspace/del/result/id") == webspace_id, "webspace/del by name: filter-id, id", r)
    r = webspace(domain, "gen_info")
    check(errcode(r, "webspace/get") == "1013", "webspace/get of the deleted one: errcode 1013", r)

    r = call(packet(f"<customer><del><filter><login>{customer}</login></filter></del></customer>"))
    check(ok(r, "customer/del") and r.text("customer/del/result/id") == customer_id, "customer/del by login", r)
    r = call(packet(f"<customer><get><filter><login>{customer}</login></filter><dataset><gen_info/></dataset></get></customer>"))
    check(r.text("customer/get/result/status") == "error" and errcode(r, "customer/get") == "1013",
          "customer/get of the deleted customer: errcode 1013", r)
    r = webspace(other, "gen_info")
    check(errcode(r, "webspace/get") == "1013", "webspace/get of its second subscription: errcode 1013 (deleted with it)", r)

    # Checkup errors: the whole packet fails in <system>.
    r = call('<packet version="1.6.10.0"><server><get_protos/></server></packet>')
    check(r.text("system/errcode") == "1005", "a packet version above 1.6.9.1: <system> errcode 1005", r)
    r = call(packet("<no-such-operator><get/></no-such-operator>"))
    check(r.text("system/errcode") == "1014", "an unknown operator: <system> errcode 1014", r)


def pypleski():
    from pypleski.core import PleskApiClient, PleskRequestPacket
    from pypleski.ip import get_ips

    # http.client's default TLS context: it trusts SSL_CERT_FILE (our CA), read
    # when Python starts, and checks the name, hence "localhost". use_ssl=False
    # still opens HTTPS (a bug), so this client has no plain-HTTP run.
    def client(login="", password="", key=""):
        c = PleskApiClient("localhost", port=PORT)
        # set_access_token deletes the credentials, and raises AttributeError
        # unless set_credentials made them first (a bug): always call it first.
        c.set_credentials(login, password)
        c.set_access_token(key)  # an empty key is ignored: login and password go
        return c

    def caller(c):
        def call(xml):
            raw = c.request_from_string(xml)
            if raw is None:  # pypleski logs a failed connection and returns None
                raise Failed(f"no answer (see pypleski's log above) to {xml[:300]}")
            return Answer(raw)
        return call

    lifecycle(caller(client(key=KEY)), "pyp")  # KEY header

    # The library's own packets (version 1.6.7.0) and its response object.
    r = client(key=KEY).request(PleskRequestPacket("server", "get_protos")).to_dict()
    protos = r["packet"]["server"]["get_protos"]["result"]["protos"]["proto"]
    check("1.6.7.0" in protos, "PleskRequestPacket server/get_protos: lists pypleski's 1.6.7.0", r)
    r = client(key=KEY).request(get_ips()).to_dict()
    ip_info = r["packet"]["ip"]["get"]["result"]["addresses"]["ip_info"]
    check(any(i["type"] == "shared" for i in (ip_info if isinstance(ip_info, list) else [ip_info])),
          "pypleski.ip.get_ips: a shared address", r)

    call = caller(client(LOGIN, PASSWORD))  # HTTP_AUTH_LOGIN / HTTP_AUTH_PASSWD
    r = call(packet("<server><get><gen_info/></get></server>"))
    check(ok(r, "server/get") and r.text("server/get/result/gen_info/server_name"), "server/get with login and password", r)
    r = call(packet("<customer><get><filter/><dataset><gen_info/></dataset></get></customer>"))
    check(r.text("system/errcode") is None and all(s.text == "ok" for s in r.all("customer/get/result/status")),
          "customer/get, empty filter, with login and password", r)

    r = caller(client(key="wrong-key"))(packet("<server><get_protos/></server>"))
    check(r.text("system/errcode") == "11003", "a wrong key is refused: <system> errcode 11003", r)
    r = caller(client(LOGIN, "wrong-password"))(packet("<server><get_protos/></server>"))
    check(r.text("system/errcode") == "1001", "a wrong password is refused: <system> errcode 1001", r)


CLIENTS = {"pypleski": pypleski}

if __name__ == "__main__":
    client = sys.argv[1] if len(sys.argv) == 2 else None
    if client not in CLIENTS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(CLIENTS)}")
    print(f"{client} against {URL}")
    try:
        CLIENTS[client]()
    except Failed as failure:
        print(f"  FAIL {failure}")
        sys.exit(1)
    print(f"{client}: passed")
