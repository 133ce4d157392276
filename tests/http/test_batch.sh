#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# http.batch: many requests over one pool (connections reused, concurrency bounded), a result
# per request, defaults, failures counted, fail_fast, cancel, results moved to an artifact.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/http/fixtures.sh"

# a real nginx with a few files
mkdir -p "$T/www"
echo "hello from nginx" >"$T/www/index.html"
for i in $(seq 1 5); do echo "{\"n\": $i}" >"$T/www/$i.json"; done
http_nginx N "$T/www"
NU=http://127.0.0.1:$N
http_server S
U=http://127.0.0.1:$S

reqs=$("$HTTP_PY" -I -S -c "import json; print(json.dumps([{'url': '$NU/%d.json' % (i % 5 + 1), 'name': 'r%d' % i} for i in range(60)]))")
# every 5th matches the default expectation; the rest fail it (exit 1)
http_run 1 batch http.batch "{\"requests\": $reqs, \"concurrency\": 4, \"defaults\": {\"expect\": {\"json\": {\"\$.n\": 1}}}}"
http_check "$R" 'r["result"]["total"] == 60' 'r["result"]["succeeded"] == 12' 'r["result"]["failed"] == 48' 'r["result"]["not_run"] == 0' \
  'len(r["result"]["requests"]) == 60' '[q["index"] for q in r["result"]["requests"]] == list(range(60))' \
  'r["result"]["requests"][1]["name"] == "r1"' 'r["result"]["requests"][1]["error"] == "expect.json[\"$.n\"]: expected 1, got 2"' \
  'r["result"]["requests"][0]["ok"] is True and "body" not in r["result"]["requests"][0]' \
  'all(q["status"] == 200 and "timings" in q for q in r["result"]["requests"])'
http_expect_error batch "48 of 60 requests failed; the first: requests[1] (r1) GET $NU/2.json: expect.json[\"\$.n\"]: expected 1, got 2"
t_expect_contains "$T/batch.err" "more failed requests are not logged; see the result"

# one pool: 40 requests at concurrency 3 open at most 3 connections
reqs=$("$HTTP_PY" -I -S -c "import json; print(json.dumps([{'url': '$U/status/200?i=%d' % i} for i in range(40)]))")
before=$(grep -c '^CONN ' "$T/S.log" || true)
http_run 0 pool http.batch "{\"requests\": $reqs, \"concurrency\": 3, \"defaults\": {\"response\": {\"body\": \"text\"}}}"
http_check "$R" 'r["result"]["succeeded"] == 40' 'all(q["body"] == "status 200\n" for q in r["result"]["requests"])'
conns=$(( $(grep -c '^CONN ' "$T/S.log" || true) - before ))
[ "$conns" -le 3 ] || t_fail "40 requests at concurrency 3 opened $conns connections"
# concurrency is honoured: 8 requests of 0.5 s at concurrency 4 take about 1 s, not 0.5 or 4
reqs=$("$HTTP_PY" -I -S -c "import json; print(json.dumps([{'url': '$U/slow?delay=0.5&i=%d' % i} for i in range(8)]))")
http_run 0 concurrency http.batch "{\"requests\": $reqs, \"concurrency\": 4}"
http_check "$R" '0.95 < r["result"]["duration"] < 3.5'

# defaults merge with each request's own members; the request wins
http_run 0 defaults http.batch "{\"requests\": [{\"url\": \"$U/echo\", \"headers\": {\"X-Own\": \"1\"}},
  {\"url\": \"$U/echo\", \"method\": \"PUT\", \"headers\": {\"X-Team\": \"mine\"}, \"body\": \"own\"}],
  \"defaults\": {\"method\": \"POST\", \"headers\": {\"X-Team\": \"ops\"}, \"json\": {\"d\": 1}, \"query\": {\"v\": 2}, \"response\": {\"body\": \"text\"}}}"
http_check "$R" \
  "(lambda b: b['method'] == 'POST' and b['headers']['x-team'] == 'ops' and b['headers']['x-own'] == '1' and b['body'] == '{\"d\":1}' and b['query'] == {'v': ['2']})(__import__('json').loads(r['result']['requests'][0]['body']))" \
  "(lambda b: b['method'] == 'PUT' and b['headers']['x-team'] == 'mine' and b['body'] == 'own')(__import__('json').loads(r['result']['requests'][1]['body']))"

# fail_fast: after the first failure no new request starts
reqs=$("$HTTP_PY" -I -S -c "import json; print(json.dumps([{'url': '$U/status/500'}] + [{'url': '$U/slow?delay=0.2&ff=%d' % i} for i in range(20)]))")
http_run 1 fail-fast http.batch "{\"requests\": $reqs, \"concurrency\": 2, \"fail_fast\": true}"
http_check "$R" 'r["result"]["failed"] == 1' 'r["result"]["not_run"] >= 18' \
  'r["result"]["requests"][20]["error"] == "not run: fail_fast stopped the batch"'
http_expect_error fail-fast "1 of 21 requests failed: requests[0] GET $U/status/500: expected status 2xx or 3xx, got 500 (set expect.status to accept it)"

# a cancel stops the running transfers and the queue promptly
reqs=$("$HTTP_PY" -I -S -c "import json; print(json.dumps([{'url': '$U/slow?delay=8&c=%d' % i} for i in range(20)]))")
HTTP_TASK_TIMEOUT=1s http_run 4 cancel http.batch "{\"requests\": $reqs, \"concurrency\": 4}"
http_check "$R" 'r["status"] == "timed_out"' 'r["duration"] < 4' 'r["result"]["not_run"] == 16' \
  'sum(1 for q in r["result"]["requests"] if q.get("error") == "cancelled while running") == 4' \
  'r["result"]["requests"][19]["error"] == "not run: the task was cancelled"'

# per-request bodies as artifacts, named by index
http_run 0 artifacts http.batch "{\"requests\": [{\"url\": \"$NU/1.json\"}, {\"url\": \"$NU/2.json\", \"response\": {\"artifact\": \"two.json\"}}], \"defaults\": {\"response\": {\"body\": \"artifact\"}}}"
http_check "$R" 'sorted(a["name"] for a in r["artifacts"]) == ["response-0.body", "two.json"]' \
  'r["result"]["requests"][1]["artifact"] == "two.json"'

# results larger than max_result_size move to an artifact
cat >"$T/small.yaml" <<'YAML'
plugins:
  config:
    http:
      max_result_size: 2KiB
YAML
reqs=$("$HTTP_PY" -I -S -c "import json; print(json.dumps([{'url': '$NU/index.html'} for i in range(30)]))")
http_run 0 big-result http.batch "{\"requests\": $reqs}" --config "$T/small.yaml"
http_check "$R" 'r["result"]["requests_artifact"] == "batch-results.json"' '"requests" not in r["result"]' 'r["result"]["succeeded"] == 30'
"$HTTP_PY" -I -S -c "import json,sys; l=json.load(open(sys.argv[1])); assert len(l) == 30 and l[29]['status'] == 200" "$T/ws-big-result/artifacts/batch-results.json" || t_fail "batch-results.json"
t_log ok
