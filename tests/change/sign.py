#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Writes a change.apply task file for `outpost-agent plugin run`, its approval signed the way
# outpost-server signs it (ECDSA P-256 over SHA-256 of the canonical JSON, DER, base64).
import argparse, base64, datetime, json, subprocess, sys, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--key", required=True, help="PEM private key that signs")
ap.add_argument("--cr", default="cr_test1")
ap.add_argument("--type", required=True, help="change type")
ap.add_argument("--digest", required=True)
ap.add_argument("--params", default="{}", help="JSON object: the approved params")
ap.add_argument("--task-params", help="JSON object the task carries instead (a mismatch)")
ap.add_argument("--task-cr", help="the change request id the task carries instead")
ap.add_argument("--target", required=True, help="target agent id")
ap.add_argument("--approvers", default='["alice"]')
ap.add_argument("--valid", type=float, default=3600, help="seconds until not_after (negative: expired)")
ap.add_argument("--action", default="apply")
ap.add_argument("--steps", default="[]", help="JSON list: records of earlier attempts")
ap.add_argument("--tamper", action="store_true", help="alter the payload after signing")
ap.add_argument("--no-approval", action="store_true")
ap.add_argument("--timeout", default="60s")
ap.add_argument("--out", required=True)
a = ap.parse_args()

params = json.loads(a.params)
not_after = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=a.valid))
payload = {"cr_id": a.cr, "change_type": a.type, "definition_digest": a.digest, "params": params,
           "target_agent_id": a.target, "approvers": json.loads(a.approvers),
           "not_after": not_after.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (not_after.microsecond // 1000)}
canon = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
with tempfile.NamedTemporaryFile() as f:
    f.write(canon)
    f.flush()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", a.key, f.name], check=True,
                         capture_output=True).stdout
if a.tamper:
    payload["approvers"] = payload["approvers"] + ["mallory"]
task_params = json.loads(a.task_params) if a.task_params else params
p = {"cr_id": a.task_cr or a.cr, "change_type": a.type, "params": task_params}
if not a.no_approval:
    p["change_request"] = {"payload": payload, "signature": base64.b64encode(sig).decode(),
                           "action": a.action, "steps": json.loads(a.steps)}
json.dump({"type": "change.apply", "params": p, "timeout": a.timeout}, open(a.out, "w"))
