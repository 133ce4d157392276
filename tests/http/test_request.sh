#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# http.request against a real server: methods, bodies, headers, query, results, assertions.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/http/fixtures.sh"

http_server S
U=http://127.0.0.1:$S

# a GET with every assertion passing; the result's fields
http_run 0 get http.request "{\"url\": \"$U/json\", \"query\": {\"q\": \"a b&c\", \"n\": 3, \"on\": true, \"tag\": [\"x\", \"y\"]},
  \"headers\": {\"X-Trace\": \"t-1\", \"Accept\": \"application/json\"},
  \"expect\": {\"status\": [200], \"headers\": {\"Content-Type\": \"^application/json\$\"}, \"body_regex\": \"\\\"ok\\\": *true\",
    \"json\": {\"\$.ok\": true, \"\$.items[0].tags[1]\": \"b\", \"\$.items[-1].id\": 2, \"\$['odd key']\": \"yes\", \"\$.count\": 2},
    \"max_latency\": \"5s\"}}"
http_check "$R" 'r["status"] == "succeeded"' 'r["result"]["status"] == 200' 'r["result"]["ok"] is True' \
  'r["result"]["url"].endswith("/json?q=a+b%26c&n=3&on=true&tag=x&tag=y")' \
  'r["result"]["headers"]["content-type"] == "application/json"' 'r["result"]["http_version"] == "1.1"' \
  'r["result"]["body_truncated"] is False' '"\"odd key\": \"yes\"" in r["result"]["body"]' \
  'r["result"]["body_size"] == len(r["result"]["body"])' 'r["result"]["bytes_in"] > r["result"]["body_size"]' \
  'r["result"]["bytes_out"] > 0' 'r["result"]["remote_ip"] == "127.0.0.1"' 'r["result"]["attempts"] == 1' \
  'all(k in r["result"]["timings"] for k in ("dns", "connect", "tls", "first_byte", "total"))' \
  'r["result"]["timings"]["total"] >= r["result"]["timings"]["first_byte"] >= r["result"]["timings"]["connect"]'
t_expect_contains "$T/get.err" "GET $U/json?q=a+b%26c&n=3&on=true&tag=x&tag=y: 200 in"
t_expect_contains "$T/S.log" 'GET /json?q=a+b%26c&n=3&on=true&tag=x&tag=y'

# the server sees the headers, the user agent and the query
http_run 0 echo-get http.request "{\"url\": \"$U/echo\", \"headers\": {\"X-Trace\": \"t-1\", \"X-Empty\": \"\"}}"
http_check "$R" 'r["result"]["body"]' \
  '(lambda b: b["headers"]["x-trace"] == "t-1" and b["headers"]["x-empty"] == "" and b["headers"]["user-agent"].startswith("outpost-http/") and b["method"] == "GET")(__import__("json").loads(r["result"]["body"]))'

# bodies: JSON, text, base64, a file; each with its Content-Type unless given
echo_check() { # NAME METHOD LEN CONTENT_TYPE BODY_SUBSTRING
  http_check "$R" 'r["status"] == "succeeded"' \
    "(lambda b: b['method'] == '$2' and b['body_len'] == $3 and b['headers'].get('content-type') == '$4' and '$5' in b['body'] and 'expect' not in b['headers'])(__import__('json').loads(r['result']['body']))"
}
http_run 0 post-json http.request "{\"url\": \"$U/echo\", \"method\": \"POST\", \"json\": {\"a\": [1, 2], \"b\": \"é\"}}"
echo_check post-json POST 20 application/json '"a":[1,2]'
http_run 0 put-text http.request "{\"url\": \"$U/echo\", \"method\": \"PUT\", \"body\": \"hello text\", \"headers\": {\"Content-Type\": \"text/x-mine\"}}"
echo_check put-text PUT 10 text/x-mine 'hello text'
http_run 0 patch-b64 http.request "{\"url\": \"$U/echo\", \"method\": \"PATCH\", \"body_base64\": \"aGVsbG8gYmFzZTY0\"}"
echo_check patch-b64 PATCH 12 application/octet-stream 'hello base64'
mkdir -p "$T/ws-post-file"
head -c 300000 /dev/zero | tr '\0' 'f' >"$T/ws-post-file/upload.txt"
http_run 0 post-file http.request "{\"url\": \"$U/echo\", \"method\": \"POST\", \"body_file\": \"upload.txt\", \"response\": {\"max_text\": \"1MiB\"}}"
echo_check post-file POST 300000 application/octet-stream 'ffff'
http_check "$R" 'r["result"]["bytes_out"] > 300000'
http_run 0 delete http.request "{\"url\": \"$U/echo\", \"method\": \"DELETE\"}"
http_check "$R" "(lambda b: b['method'] == 'DELETE' and b['body_len'] == 0 and 'content-type' not in b['headers'])(__import__('json').loads(r['result']['body']))"
http_run 0 post-empty http.request "{\"url\": \"$U/echo\", \"method\": \"POST\"}"
http_check "$R" "(lambda b: b['method'] == 'POST' and b['headers'].get('content-length') == '0' and 'content-type' not in b['headers'])(__import__('json').loads(r['result']['body']))"
http_run 0 head http.request "{\"url\": \"$U/json\", \"method\": \"HEAD\"}"
http_check "$R" 'r["result"]["status"] == 200' 'r["result"]["body"] == ""' 'r["result"]["body_size"] == 0'

# a binary body comes back base64; response.headers false leaves the headers out
http_run 0 binary http.request "{\"url\": \"$U/binary\", \"response\": {\"headers\": false}}"
http_check "$R" 'r["result"]["body_encoding"] == "base64"' \
  '__import__("base64").b64decode(r["result"]["body"]) == bytes(range(256))' '"headers" not in r["result"]'

# statuses: by default 2xx and 3xx pass; expect.status takes codes, classes and ranges
http_run 1 status-500 http.request "{\"url\": \"$U/status/500\"}"
http_expect_error status-500 "GET $U/status/500: expected status 2xx or 3xx, got 500 (set expect.status to accept it)"
http_check "$R" 'r["status"] == "failed"' 'r["result"]["status"] == 500' 'r["result"]["body"] == "status 500\n"' \
  'r["result"]["failures"] == ["expected status 2xx or 3xx, got 500 (set expect.status to accept it)"]'
http_run 0 status-404-ok http.request "{\"url\": \"$U/status/404\", \"expect\": {\"status\": [\"4xx\"]}}"
http_run 0 status-range http.request "{\"url\": \"$U/status/204\", \"expect\": {\"status\": [\"200-204\", 301]}}"
http_run 1 status-list http.request "{\"url\": \"$U/status/201\", \"expect\": {\"status\": [200, \"300-302\", \"5xx\"]}}"
http_expect_error status-list "GET $U/status/201: expected status 200, 300-302 or 5xx, got 201"

# failed assertions: each says what was expected and what came
http_run 1 assert-all http.request "{\"url\": \"$U/json\", \"expect\": {
  \"headers\": {\"Content-Type\": \"^text/\", \"X-Missing\": \".\"}, \"body_regex\": \"nothing-like-this\",
  \"json\": {\"\$.count\": 3, \"\$.items[5]\": 1, \"\$.name.first\": \"x\", \"\$.nope\": null}, \"max_latency\": \"0ms\"}}"
http_check "$R" 'r["result"]["failures"] == [
  "expect.headers.Content-Type: expected to match \"^text/\", got \"application/json\"",
  "expect.headers.X-Missing: the response has no X-Missing header (expected one matching \".\")",
  "expect.body_regex: \"nothing-like-this\" not found in the body (114 bytes), which starts: {\"ok\": true, \"count\": 2, \"name\": \"outpost\", \"items\": [{\"id\": 1, \"tags\": [\"a\", \"b...",
  "expect.json[\"$.count\"]: expected 3, got 2",
  "expect.json[\"$.items[5]\"]: not found: $.items has 2 items, no [5]",
  "expect.json[\"$.name.first\"]: not found: $.name is not an object",
  "expect.json[\"$.nope\"]: not found: no member \"nope\" in $",
  r["result"]["failures"][-1]]' \
  'r["result"]["failures"][-1].startswith("expect.max_latency: expected at most 0ms, took ")'
t_expect_contains "$(http_field "$R" .error)" "GET $U/json: expect.headers.Content-Type: expected to match \"^text/\", got \"application/json\"; expect.headers.X-Missing"
http_run 1 not-json http.request "{\"url\": \"$U/status/200\", \"expect\": {\"json\": {\"\$.a\": 1}}}"
http_expect_error not-json "GET $U/status/200: expect.json: the body is not JSON; it starts: status 200"

# bodies larger than response.max_text are cut in the result; larger than max_size fail
http_run 0 cut http.request "{\"url\": \"$U/bytes?n=5000\", \"response\": {\"max_text\": 1000}}"
http_check "$R" 'r["result"]["body_truncated"] is True' 'len(r["result"]["body"]) == 1000' 'r["result"]["body_size"] == 5000'
http_run 1 cut-json http.request "{\"url\": \"$U/json\", \"response\": {\"max_text\": 10}, \"expect\": {\"json\": {\"\$.ok\": true}}}"
http_expect_error cut-json "GET $U/json: expect.json: the body is longer than response.max_text (10 bytes) and was cut; raise response.max_text"
http_run 1 too-large http.request "{\"url\": \"$U/bytes?n=300000\", \"response\": {\"max_size\": \"100KiB\"}}"
http_expect_error too-large "GET $U/bytes?n=300000: the response body is larger than response.max_size (100KiB); raise it, or save the body as an artifact (response.body: \"artifact\")"
t_log ok
