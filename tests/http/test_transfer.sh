#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# http.request transfers: redirects, slow responses and timeouts, retries, chunked and large
# bodies, artifacts, refused connections, and a cancel that stops a transfer promptly.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/http/fixtures.sh"

http_server S
U=http://127.0.0.1:$S

# redirects: followed up to max_redirects; not followed when asked
http_run 0 redirects http.request "{\"url\": \"$U/redirect/3\"}"
http_check "$R" 'r["result"]["redirects"] == 3' "r['result']['final_url'] == '$U/redirect/0'" 'r["result"]["body"] == "redirects done\n"'
# the URL in the result is the one given (no final_url without a redirect), even when curl
# would write it otherwise
http_run 0 as-given http.request "{\"url\": \"HTTP://127.0.0.1:$S/redirect/0\"}"
http_check "$R" "r['result']['url'] == 'HTTP://127.0.0.1:$S/redirect/0'" '"final_url" not in r["result"]' 'r["result"]["redirects"] == 0'
http_run 1 too-many http.request "{\"url\": \"$U/redirect/5\", \"max_redirects\": 2}"
http_expect_error too-many "GET $U/redirect/5: more than 2 redirects (max_redirects); the last one pointed at $U/redirect/2"
http_run 0 no-follow http.request "{\"url\": \"$U/redirect/2\", \"follow_redirects\": false}"
http_check "$R" 'r["result"]["status"] == 302' 'r["result"]["headers"]["location"] == "/redirect/1"'
http_run 1 no-follow-expect http.request "{\"url\": \"$U/redirect/2\", \"follow_redirects\": false, \"expect\": {\"status\": [\"2xx\"]}}"
http_expect_error no-follow-expect "GET $U/redirect/2: expected status 2xx, got 302"

# slow answers: the total timeout, then the connection timeout's and refusal's messages
http_run 0 slow-ok http.request "{\"url\": \"$U/slow?delay=0.3\", \"timeout\": \"5s\"}"
http_check "$R" 'r["result"]["timings"]["first_byte"] >= 0.3'
http_run 1 slow-timeout http.request "{\"url\": \"$U/slow?delay=6\", \"timeout\": \"500ms\"}"
t_expect_contains "$(http_field "$R" .error)" "GET $U/slow?delay=6: timed out after 500ms (params.timeout) with 0 bytes of the response received: Operation timed out after "
http_check "$R" 'r["status"] == "failed"' '0.45 < r["duration"] < 4'
http_run 1 trickle-timeout http.request "{\"url\": \"$U/trickle?n=20&delay=0.1\", \"timeout\": \"700ms\"}"
t_expect_contains "$(http_field "$R" .error)" "GET $U/trickle?n=20&delay=0.1: timed out after 700ms (params.timeout) with "
DEAD=$(http_free_port)
http_run 1 refused http.request "{\"url\": \"http://127.0.0.1:$DEAD/x\"}"
http_expect_error refused "GET http://127.0.0.1:$DEAD/x: cannot connect to 127.0.0.1 port $DEAD: Connection refused; check that the service listens there and that firewalls and allowlists on the way let this agent's address 127.0.0.1 through"
BH=$(http_free_port)
"$HTTP_PY" "$HTTP_DIR/blackhole.py" "$BH" >"$T/bh.out" 2>&1 &
t_track $!
t_wait_for 10 grep -q ready "$T/bh.out"
http_run 1 connect-timeout http.request "{\"url\": \"http://127.0.0.1:$BH/\", \"connect_timeout\": \"500ms\"}"
err=$(http_field "$R" .error)
t_expect_contains "$err" "GET http://127.0.0.1:$BH/: connection to 127.0.0.1 port $BH timed out after 500ms: "
t_expect_contains "$err" "; a firewall or allowlist on the way may be dropping packets from this agent's address 127.0.0.1"
http_run 1 no-dns http.request '{"url": "http://no-such-host.invalid/"}'
t_expect_contains "$(http_field "$R" .error)" 'GET http://no-such-host.invalid/: cannot resolve host "no-such-host.invalid": Could not resolve host: no-such-host.invalid; check that the name exists in DNS as seen from the agent host (/etc/resolv.conf)'
http_run 1 reset http.request "{\"url\": \"$U/close\"}"
http_expect_error reset "GET $U/close: the connection to 127.0.0.1 port $S broke: Empty reply from server"

# retries: on the chosen statuses and errors, with backoff; Retry-After is honoured
http_run 0 retry-status http.request "{\"url\": \"$U/flaky?key=a&fail=2\", \"retries\": {\"count\": 3, \"backoff\": \"100ms\"}}"
http_check "$R" 'r["result"]["attempts"] == 3' 'r["result"]["body"] == "ok after 3\n"' 'r["result"]["timings"]["elapsed"] >= 0.3'
t_expect_contains "$T/retry-status.err" "GET $U/flaky?key=a&fail=2: status 503; retry 1 of 3 in 100ms"
t_expect_contains "$T/retry-status.err" "GET $U/flaky?key=a&fail=2: status 503; retry 2 of 3 in 200ms"
http_run 1 retry-exhausted http.request "{\"url\": \"$U/flaky?key=b&fail=5&code=502\", \"retries\": {\"count\": 2, \"backoff\": \"10ms\"}}"
http_expect_error retry-exhausted "GET $U/flaky?key=b&fail=5&code=502: expected status 2xx or 3xx, got 502 (set expect.status to accept it)"
http_check "$R" 'r["result"]["attempts"] == 3'
http_run 1 retry-not-chosen http.request "{\"url\": \"$U/flaky?key=c&fail=1&code=500\", \"retries\": {\"count\": 2, \"backoff\": \"10ms\"}}"
http_check "$R" 'r["result"]["attempts"] == 1' 'r["result"]["status"] == 500'
http_run 0 retry-chosen http.request "{\"url\": \"$U/flaky?key=d&fail=1&code=500\", \"retries\": {\"count\": 1, \"backoff\": \"10ms\", \"on_status\": [500]}}"
http_check "$R" 'r["result"]["attempts"] == 2'
http_run 0 retry-after http.request "{\"url\": \"$U/flaky?key=e&fail=1&code=429&retry_after=1\", \"retries\": {\"count\": 1, \"backoff\": \"10ms\", \"max_backoff\": \"5s\"}}"
http_check "$R" 'r["result"]["attempts"] == 2' 'r["result"]["timings"]["elapsed"] >= 1'
http_run 0 retry-reset http.request "{\"url\": \"$U/flaky?key=f&fail=1&mode=reset\", \"retries\": {\"count\": 1, \"backoff\": \"10ms\"}}"
http_check "$R" 'r["result"]["attempts"] == 2'
http_run 1 retry-reset-off http.request "{\"url\": \"$U/flaky?key=g&fail=1&mode=reset\", \"retries\": {\"count\": 1, \"backoff\": \"10ms\", \"on_errors\": [\"timeout\"]}}"
http_check "$R" 'r["result"]["attempts"] == 1'

# chunked and large bodies; a body saved as an artifact is listed with its sha256
http_run 0 chunked http.request "{\"url\": \"$U/chunked?size=1000000\", \"response\": {\"max_text\": \"1MiB\"}}"
http_check "$R" 'r["result"]["headers"]["transfer-encoding"] == "chunked"' 'r["result"]["body_size"] == 1000000' \
  'r["result"]["body"] == "c" * 1000000' 'r["result"]["body_truncated"] is False'
http_run 0 artifact http.request "{\"url\": \"$U/bytes?n=20000000\", \"response\": {\"body\": \"artifact\", \"artifact\": \"big.bin\"}, \"expect\": {\"body_regex\": \"^bbbb\"}}"
SUM=$(head -c 20000000 /dev/zero | tr '\0' 'b' | sha256sum | cut -d' ' -f1)
http_check "$R" 'r["result"]["artifact"] == "big.bin"' 'r["result"]["body_size"] == 20000000' '"body" not in r["result"]' \
  "r['artifacts'][0]['name'] == 'big.bin' and r['artifacts'][0]['size'] == 20000000 and r['artifacts'][0]['sha256'] == '$SUM'"
t_expect_eq "$SUM" "$(sha256sum "$T/ws-artifact/artifacts/big.bin" | cut -d' ' -f1)" "artifact on disk"
http_run 0 artifact-default http.request "{\"url\": \"$U/chunked?size=5000\", \"response\": {\"body\": \"artifact\"}}"
http_check "$R" 'r["result"]["artifact"] == "response.body"' 'r["artifacts"][0]["size"] == 5000'
http_run 1 artifact-too-large http.request "{\"url\": \"$U/bytes?n=3000000\", \"response\": {\"artifact\": \"x.bin\", \"max_size\": \"1MiB\"}}"
http_expect_error artifact-too-large "GET $U/bytes?n=3000000: the response body is larger than response.max_size (1MiB); raise it, or save the body as an artifact (response.body: \"artifact\")"

# a full disk while saving an artifact (a 1 MiB tmpfs as the workspace, where mounting works)
mkdir -p "$T/ws-disk-full"
if mount -t tmpfs -o size=1m tmpfs "$T/ws-disk-full" 2>/dev/null; then
  t_on_exit "umount '$T/ws-disk-full'"
  http_run 1 disk-full http.request "{\"url\": \"$U/bytes?n=3000000\", \"response\": {\"artifact\": \"big.bin\"}}"
  http_expect_error disk-full "GET $U/bytes?n=3000000: cannot write the response body to its artifact: No space left on device"
else
  t_log "tmpfs mount not permitted here: disk-full case skipped"
fi

# a proxy whose name does not resolve
http_run 1 proxy-dns http.request "{\"url\": \"$U/\", \"proxy\": \"http://no-such-proxy.invalid:3128\"}"
t_expect_contains "$(http_field "$R" .error)" "GET $U/: cannot resolve the proxy host of http://no-such-proxy.invalid:3128: "

# a cancel (here: the task's deadline) stops a transfer that would take 10 s at once
HTTP_TASK_TIMEOUT=1s http_run 4 cancel http.request "{\"url\": \"$U/slow?delay=10\"}"
http_check "$R" 'r["status"] == "timed_out"' 'r["duration"] < 4' 'r["result"]["error"] == "cancelled while running"'
HTTP_TASK_TIMEOUT=1s http_run 4 cancel-backoff http.request "{\"url\": \"$U/flaky?key=h&fail=5\", \"retries\": {\"count\": 3, \"backoff\": \"20s\"}}"
http_check "$R" 'r["duration"] < 4' 'r["result"]["error"] == "cancelled while waiting to retry"'
t_log ok
