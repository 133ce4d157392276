# SPDX-License-Identifier: Apache-2.0
# Drives outpost-server's admin API for the run-loop benchmark (one keep-alive connection).
#   driver.py URL CA ADMIN_TOKEN latency N      submit, wait, next: submit -> completed
#   driver.py URL CA ADMIN_TOKEN throughput N   N tasks at once, all completed: tasks/s
#   driver.py URL CA ADMIN_TOKEN task N FILE    FILE's task ({"type", "params"}) N times, one
#                                               at a time, 0.5 s apart (a spare worker is back
#                                               each time): submit -> completed of each, seconds,
#                                               one per line
# Times are the server's own (created_at, finished_at), so polling costs nothing measured.
import datetime, http.client, json, ssl, sys, time

url, ca, token, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
host, port = url.split("//")[1].split(":")
ctx = ssl.create_default_context(cafile=ca)
conn = http.client.HTTPSConnection(host, int(port), context=ctx)
hdrs = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
FINAL = {"succeeded", "failed", "cancelled", "timed_out", "crashed", "invalid"}

def call(method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=hdrs)
    r = conn.getresponse()
    data = r.read()
    if r.status >= 300:
        sys.exit("%s %s: HTTP %d %s" % (method, path, r.status, data[:200]))
    return json.loads(data) if data else None

def ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()

def wait(tid, poll=0.001):
    while True:
        t = call("GET", "/admin/tasks/" + tid)
        t = t.get("task", t)
        if t["state"] in FINAL:
            if t["state"] != "succeeded":
                sys.exit("task %s: %s %s" % (tid, t["state"], t.get("error")))
            return t
        time.sleep(poll)

task = {"type": "testkit.run", "params": {}}
if mode == "latency":
    lat = []
    for _ in range(n):
        t = call("POST", "/admin/tasks", task)
        t = wait(t.get("id") or t["task"]["id"])
        lat.append((ts(t["finished_at"]) - ts(t["created_at"])) * 1000)
    lat.sort()
    print("%.1f %.1f" % (lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]))
elif mode == "task":
    spec = json.load(open(sys.argv[6]))
    body = {"type": spec["type"], "params": spec.get("params", {}), "timeout": 300}
    for i in range(n):
        if i:
            time.sleep(0.5)
        t = call("POST", "/admin/tasks", body)
        t = wait(t.get("id") or t["task"]["id"], 0.05)  # the server's clock measures
        print("%.4f" % (ts(t["finished_at"]) - ts(t["created_at"])), flush=True)
else:
    ids = call("POST", "/admin/tasks/batch", {"tasks": [task] * n})["task_ids"]
    # The server's timestamps measure, so the driver keeps out of the way while the tasks
    # run: it watches the last one only, then reads them all (waiting on any not yet done).
    wait(ids[-1], 0.25)
    first = last = None
    for tid in ids:
        t = wait(tid, 0.25)
        c, f = ts(t["created_at"]), ts(t["finished_at"])
        first = c if first is None else min(first, c)
        last = f if last is None else max(last, f)
    print("%.1f" % (n / (last - first)))
