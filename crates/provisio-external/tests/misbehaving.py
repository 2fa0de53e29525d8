#!/usr/bin/env python3
"""A coffee provider that misbehaves on demand, for the supervision tests:
the cup's name says how (crash, hang, garbage, flood, bad-data, wrong-id,
bad-answer, secret, latin1, late-secret); any other name is brewed properly."""
import json
import os
import sys
import time

for line in sys.stdin:
    request = json.loads(line)
    if request["method"] == "describe":
        data = {"protocol": 1, "blueprint": "coffee", "id": "misbehaving", "name": "Misbehaving",
                "description": "Misbehaves on demand.", "config_schema": {"type": "object",
                "properties": {"token": {"type": "string", "x-secret": True}}}, "functions": ["brew", "get_info"],
                "processes": 2}
        print(json.dumps({"id": request["id"], "status": "ok", "data": data}), flush=True)
        continue
    name = request.get("params", {}).get("name", "")
    print(f"misbehaving: asked to {name} (pid {os.getpid()})", file=sys.stderr, flush=True)
    if name == "crash":
        sys.exit(3)
    if name == "hang":
        time.sleep(3600)
    if name == "garbage":
        print("Traceback (most recent call last): nonsense", flush=True)
        continue
    if name == "flood":
        sys.stdout.write("x" * (3 * 1024 * 1024))
        sys.stdout.flush()
        time.sleep(3600)
    if name == "wrong-id":
        print(json.dumps({"id": request["id"] + 1000, "status": "ok", "data": {}}), flush=True)
        continue
    if name == "bad-answer":
        print(json.dumps({"id": request["id"], "status": "fine", "data": {}}), flush=True)
        continue
    if name == "secret":
        token = request["config"].get("token", "")
        print(f"misbehaving: the token is {token}", file=sys.stderr, flush=True)
        print(json.dumps({"id": request["id"], "status": "error", "error_kind": "provider_error",
                          "message": f"refused with {token}", "debug": {"token": token},
                          "http_log": [{"method": "GET", "url": f"https://vendor.example/?key={token}",
                                        "request_headers": [["Authorization", "Bearer " + token]],
                                        "duration_ms": 1}]}), flush=True)
        continue
    if name == "latin1":
        sys.stderr.buffer.write(b"caf\xe9 au lait\n")
        sys.stderr.flush()
    cup = {"order_id": "cup_" + str(request["id"]) + "_" + str(os.getpid()), "name": name, "size": "small",
           "sugar": 0, "milk": "none", "status": "ready", "ready_at": "2026-01-01T00:00:00Z"}
    if name == "bad-data":
        cup["size"] = "bucket"
        del cup["order_id"]
    print(json.dumps({"id": request["id"], "status": "ok", "data": cup}), flush=True)
    if name == "late-secret":
        time.sleep(0.2)
        print(f"misbehaving: after answering, the token is {request['config'].get('token', '')}", file=sys.stderr, flush=True)
