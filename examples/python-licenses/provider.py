#!/usr/bin/env python3
"""A software-licenses provider in Python, over Provisio's external provider protocol.

Written from docs/provider-protocol.md, with the standard library only. The
"vendor" is a JSON file (config `state_path`) holding an account whose API key
is fixed by the first call. Run it with:

    provisio serve --external-provider examples/python-licenses/provider.py
"""

import datetime
import fcntl
import hashlib
import json
import os
import secrets
import sys
from contextlib import contextmanager

FUNCTIONS = ["create", "get_info", "change_package", "suspend", "unsuspend", "terminate", "reissue"]

DESCRIPTION = {
    "protocol": 1,
    "blueprint": "software-licenses",
    "id": "licenses-py",
    "name": "Licence vendor (Python example)",
    "description": "Licence keys from a file-backed vendor account; the external provider protocol's Python example.",
    "config_schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["state_path", "api_key"],
        "properties": {
            "state_path": {"type": "string", "minLength": 1, "description": "The vendor's state file.",
                           "x-endpoint": True},
            "api_key": {"type": "string", "minLength": 8, "description": "The vendor account's API key.",
                        "x-secret": True, "writeOnly": True},
        },
    },
    "functions": FUNCTIONS,
}


class Refused(Exception):
    """An error answer: its kind and a message fit for the client."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


def answer(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


@contextmanager
def vendor(config):
    """The vendor's state, locked for the duration; written back if changed."""
    path = config["state_path"]
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path) as f:
                state = json.load(f)
        except FileNotFoundError:
            state = {"account_key_sha256": None, "licenses": {}}
        digest = hashlib.sha256(config["api_key"].encode()).hexdigest()
        if state["account_key_sha256"] is None:
            state["account_key_sha256"] = digest
        elif not secrets.compare_digest(state["account_key_sha256"], digest):
            raise Refused("provider_error", "The vendor refused the API key")
        before = json.dumps(state, sort_keys=True)
        yield state
        if json.dumps(state, sort_keys=True) != before:
            with open(path + ".tmp", "w") as f:
                json.dump(state, f)
            os.replace(path + ".tmp", path)


def find(state, key, owner):
    licence = state["licenses"].get(key)
    if licence is None:
        raise Refused("not_found", f"No licence {key}")
    # A licence carries the mark of the service that made it; no other service touches it.
    if owner is not None and licence["owner"] not in (None, owner):
        raise Refused("conflict", f"Licence {key} belongs to another service")
    return licence


def info(licence):
    return {k: licence[k] for k in ("license_key", "reference", "package_identifier", "state", "customer_email",
                                    "ip", "domain", "reissue_count", "created_at")}


def call(function, config, params, owner):
    with vendor(config) as state:
        if function == "create":
            for licence in state["licenses"].values():
                if licence["reference"] == params["reference"]:
                    if owner is not None and licence["owner"] not in (None, owner):
                        raise Refused("conflict", "This reference has a licence of another service")
                    return info(licence)
            key = "LK-" + secrets.token_hex(8).upper()
            state["licenses"][key] = {
                "license_key": key, "reference": params["reference"], "owner": owner,
                "package_identifier": params["package_identifier"], "state": "active",
                "customer_email": params["customer_email"], "ip": params.get("ip"), "domain": params.get("domain"),
                "reissue_count": 0,
                "created_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            return info(state["licenses"][key])
        licence = find(state, params["license_key"], owner)
        if function == "get_info":
            return info(licence)
        if function == "change_package":
            licence["package_identifier"] = params["package_identifier"]
        elif function == "suspend":
            licence["state"] = "suspended"
        elif function == "unsuspend":
            licence["state"] = "active"
        elif function == "reissue":
            licence["ip"] = params.get("ip")
            licence["domain"] = params.get("domain")
            licence["reissue_count"] += 1
        elif function == "terminate":
            del state["licenses"][licence["license_key"]]
            return {}
        return info(licence)


def test_connection(config):
    with vendor(config) as state:
        return {"message": f"The vendor account answers; it holds {len(state['licenses'])} licences", "details": {}}


def handle(request):
    method = request["method"]
    if method == "describe":
        return DESCRIPTION
    if method == "test_connection":
        return test_connection(request["config"])
    if method == "call":
        if request["function"] not in FUNCTIONS:
            raise Refused("unsupported", f"{request['function']} is not implemented")
        return call(request["function"], request["config"], request["params"], request["owner"])
    raise Refused("internal", f"unknown method {method}")


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        # Standard error is for staff: what was asked, never the configuration.
        print(f"licenses-py: {request['method']} {request.get('function', '')}", file=sys.stderr, flush=True)
        try:
            answer({"id": request["id"], "status": "ok", "data": handle(request)})
        except Refused as refused:
            answer({"id": request["id"], "status": "error", "error_kind": refused.kind, "message": refused.message})
        except Exception as err:  # a bug: staff see it in debug, the client a generic message
            answer({"id": request["id"], "status": "error", "error_kind": "internal", "message": "Internal error",
                    "debug": {"cause": repr(err)}})


if __name__ == "__main__":
    main()
