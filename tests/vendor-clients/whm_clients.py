"""Third-party Python WHM API 1 clients against provisio-whm-test-server.

    python whm_clients.py whambampy|pycpanel|cpanel-client

Run with the interpreter of the venv that holds the client (scripts/vendor-clients
makes them). The server comes from the environment the test server prints:
WHM_URL, WHM_USER, WHM_TOKEN, WHM_PASSWORD and, for HTTPS, WHM_CA.

Each client walks an account through its life with the library's own calls;
every answer is checked, and a failed check prints what the server answered.
"""

import json
import os
import sys
from urllib.parse import urlsplit

import requests

URL, USER, TOKEN, PASSWORD = (os.environ[k] for k in ("WHM_URL", "WHM_USER", "WHM_TOKEN", "WHM_PASSWORD"))
CA = os.environ.get("WHM_CA")  # absent on a --plain server
HOST, PORT = urlsplit(URL).hostname, urlsplit(URL).port
HTTPS = URL.startswith("https://")


class Failed(Exception):
    pass


def check(ok, what, answer):
    """One expectation; a miss names it and shows the server's answer."""
    if not ok:
        raise Failed(f"{what}\n    answered: {json.dumps(answer, ensure_ascii=False)[:2000]}")
    print(f"  ok  {what}")


# Every HTTP exchange any library makes, as the server saw it: these lines are
# the record of "which calls each library made". Secrets stay out of the log.
_send = requests.Session.send


def _traced_send(self, request, **kwargs):
    response = _send(self, request, **kwargs)
    scheme = (request.headers.get("Authorization") or "none").split(" ")[0]
    path = request.path_url
    for secret in ("password=", "pass="):
        if secret in path:
            head, _, tail = path.partition(secret)
            path = head + secret + "***" + ("&" + tail.split("&", 1)[1] if "&" in tail else "")
    print(f"  --> {request.method} {path} [auth {scheme}] {response.status_code}")
    return response


requests.Session.send = _traced_send


def own_get(path, **params):
    """Our own call (plain requests, Basic auth), for what a library cannot read back."""
    params["api.version"] = 1
    return requests.get(f"{URL}/json-api/{path}", params=params, auth=(USER, PASSWORD), verify=CA or True).json()


def single_use_login(url):
    """The create_user_session URL signs in once (302 and a cookie), then no more (401)."""
    first = requests.get(url, allow_redirects=False, verify=CA or True)
    check(first.status_code == 302 and "cpsession=" in first.headers.get("Set-Cookie", ""),
          "session URL: first GET is a 302 with a cpsession cookie",
          {"status": first.status_code, "headers": dict(first.headers)})
    second = requests.get(url, allow_redirects=False, verify=CA or True)
    check(second.status_code == 401, "session URL: second GET is a 401",
          {"status": second.status_code, "body": second.text[:300]})


def lifecycle(call, name, domain):
    """The whole life of an account through a generic call(function, **params) -> envelope."""

    def ok(answer):
        return isinstance(answer, dict) and answer.get("metadata", {}).get("result") == 1

    def acct(answer):
        return ((answer.get("data") or {}).get("acct") or [{}])[0]

    r = call("version")
    check(ok(r) and r["data"]["version"].startswith("11."), "version", r)
    r = call("listpkgs")
    names = [p.get("name") for p in (r.get("data") or {}).get("pkg", [])]
    check(ok(r) and {"basic", "standard"} <= set(names), "listpkgs offers basic and standard",
          {"package names": names, "metadata": r.get("metadata")})
    r = call("verify_new_username", user=name)
    check(ok(r), f"verify_new_username {name} is free", r)

    r = call("createacct", username=name, domain=domain, plan="basic",
             contactemail=f"owner@{domain}", password="Xk7-pw-for-panel-clients")
    check(ok(r) and r["data"]["package"] == "basic" and "raw" in r["metadata"].get("output", {}),
          "createacct plan=basic (data.package, metadata.output.raw)", r)
    r = call("accountsummary", user=name)
    a = acct(r)
    check(ok(r) and (a.get("user"), a.get("domain"), a.get("plan"), a.get("email"), a.get("suspended"))
          == (name, domain, "basic", f"owner@{domain}", 0), "accountsummary: user, domain, plan, email, not suspended", r)
    r = call("listaccts", searchtype="user", search=f"^{name}$")
    a = acct(r)
    check(ok(r) and len(r["data"]["acct"]) == 1 and (a.get("user"), a.get("domain"), a.get("plan"))
          == (name, domain, "basic"), "listaccts finds exactly it", r)

    r = call("suspendacct", user=name, reason="unpaid invoice")
    check(ok(r), "suspendacct", r)
    r = call("accountsummary", user=name)
    check(acct(r).get("suspended") == 1 and acct(r).get("suspendreason") == "unpaid invoice",
          "accountsummary: suspended, with the reason", r)
    r = call("create_user_session", user=name, service="cpaneld")
    check(not ok(r) and "currently suspended" in r["metadata"]["reason"], "create_user_session refused while suspended", r)
    r = call("unsuspendacct", user=name)
    check(ok(r), "unsuspendacct", r)
    r = call("accountsummary", user=name)
    check(acct(r).get("suspended") == 0, "accountsummary: not suspended", r)

    r = call("changepackage", user=name, pkg="standard")
    check(ok(r), "changepackage pkg=standard", r)
    r = call("accountsummary", user=name)
    check(acct(r).get("plan") == "standard", "accountsummary: plan standard", r)

    r = call("create_user_session", user=name, service="cpaneld")
    check(ok(r) and r["data"]["url"].startswith(f"{URL}/cpsess"), "create_user_session cpaneld", r)
    single_use_login(r["data"]["url"])

    r = call("removeacct", username=name)
    check(ok(r) and r["metadata"]["reason"] == f"{name} account removed", "removeacct", r)
    r = call("accountsummary", user=name)
    check(not ok(r) and r["metadata"]["reason"] == "Account does not exist.", "accountsummary: Account does not exist.", r)
    r = call("listaccts", searchtype="user", search=f"^{name}$")
    check(ok(r) and not r["data"].get("acct"), "listaccts: no match", r)


def whambampy():
    from whambampy import whm

    # verify_ssl goes to requests' verify=, so the CA path verifies the certificate.
    # The constructor itself calls create_user_session(user=root, service=whostmgrd)
    # and sends every later call under the /cpsessNNNNNNNNNN prefix it returns.
    w = whm(HOST, USER, TOKEN, whm_port=PORT, whm_protocol=f"{urlsplit(URL).scheme}://", verify_ssl=CA or True)
    check(w._sec_token.startswith("/cpsess"), "whostmgrd session for root (constructor)", w._sec_token)
    lifecycle(w.call, "wbpalice", "wbp-alice.example")
    try:
        whm(HOST, USER, "wrong-token", whm_port=PORT, whm_protocol=f"{urlsplit(URL).scheme}://", verify_ssl=CA or True)
        check(False, "a wrong token is refused", "no error raised")
    except PermissionError as err:
        check(True, "a wrong token is refused (PermissionError)", str(err))


def pycpanel():
    import pycpanel as pc

    # The port is fixed by ssl= (2087/2086) and stored in the public attribute
    # `hostname`, which every call reads: point it at our server instead.
    # verify= is requests' verify=, so the CA path verifies the certificate.
    def conn(**auth):
        c = pc.conn(HOST, username=USER, ssl=HTTPS, verify=CA or True, check_conn=False, **auth)
        c.hostname = f"{URL}/"
        return c

    c = conn(hash=TOKEN)  # sends "Authorization: WHM root:TOKEN" (upper case)
    # What check_conn=True does at construction: API 0 applist (no api.version), top-level "app".
    apps = c.json_list()
    check("createacct" in apps, "API 0 applist lists createacct", apps)
    # pycpanel adds no api.version: every API 1 call carries it itself.
    lifecycle(lambda fn, **p: c.api(fn, params={**p, "api.version": 1}), "pycalice", "pyc-alice.example")
    r = conn(password=PASSWORD).api("version", params={"api.version": 1})  # HTTP Basic
    check(r.get("metadata", {}).get("result") == 1, "version over HTTP Basic", r)
    try:
        conn(hash="wrong-token").api("version", params={"api.version": 1})
        check(False, "a wrong hash is refused", "no error raised")
    except Exception as err:  # pycpanel raises a bare Exception on 403
        check("Access denied" in str(err), "a wrong hash is refused (403 → Access denied)", str(err))


def cpanel_client():
    from cpanel.cpanel import ServerAPI

    # No TLS option: requests verifies by default, and REQUESTS_CA_BUNDLE
    # names the CA it trusts. Only create, suspend and remove exist; the
    # read-backs use our own calls (own_get).
    if CA:
        os.environ["REQUESTS_CA_BUNDLE"] = CA
    s = ServerAPI(USER, PASSWORD, f"{urlsplit(URL).scheme}://{HOST}", PORT)
    domain = "ccalice.example"  # the library makes the username: the domain without dots
    name = "ccaliceexample"
    r = s.create_account(f"owner@{domain}", domain, "basic")
    check(r["success"] == 1 and r["username"] == name and "Account Creation Complete" in (r["data"] or ""),
          "create_account (createacct, Basic auth)", r)
    r = own_get("accountsummary", user=name)
    a = r["data"]["acct"][0]
    check((a["user"], a["domain"], a["plan"]) == (name, domain, "basic"), "accountsummary: user, domain, plan", r)
    r = s.suspend_account(name)
    check(r["success"] == 1, "suspend_account (suspendacct)", r)
    r = own_get("accountsummary", user=name)
    check(r["data"]["acct"][0]["suspended"] == 1 and r["data"]["acct"][0]["suspendreason"] == "No Payment",
          "accountsummary: suspended for No Payment", r)
    r = s.terminate_account(name)
    check(r["success"] == 1 and r["message"] == f"{name} account removed", "terminate_account (removeacct user=)", r)
    r = own_get("accountsummary", user=name)
    check(r["metadata"]["result"] == 0 and r["metadata"]["reason"] == "Account does not exist.",
          "accountsummary: Account does not exist.", r)


CLIENTS = {"whambampy": whambampy, "pycpanel": pycpanel, "cpanel-client": cpanel_client}

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
