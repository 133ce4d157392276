#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every bad param of http.request and http.batch is refused with a precise message, and
# nothing reaches the server.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/http/fixtures.sh"

http_server S
U=http://127.0.0.1:$S

# http.request: the schema
http_invalid no-url '{}' 'params.url: required'
http_invalid url-type '{"url": 5}' 'params.url: expected string, got number'
http_invalid typo "{\"url\": \"$U/\", \"timout\": \"1s\"}" 'params.timout: unknown field'
http_invalid method "{\"url\": \"$U/\", \"method\": \"FETCH\"}" \
  'params.method: must be one of ["GET","HEAD","POST","PUT","PATCH","DELETE","OPTIONS"]'
http_invalid redirects "{\"url\": \"$U/\", \"max_redirects\": 99}" 'params.max_redirects: must be <= 50, got 99'
http_invalid auth-type "{\"url\": \"$U/\", \"auth\": {\"type\": \"digest\", \"secret\": \"s\"}}" \
  'params.auth.type: must be one of ["basic","bearer","header"]'
http_invalid auth-secret "{\"url\": \"$U/\", \"auth\": {\"type\": \"bearer\"}}" 'params.auth.secret: required'
http_invalid tls-version "{\"url\": \"$U/\", \"tls\": {\"min_version\": \"1.4\"}}" \
  'params.tls.min_version: must be one of ["1.0","1.1","1.2","1.3"]'
http_invalid retries-count "{\"url\": \"$U/\", \"retries\": {\"count\": 50}}" 'params.retries.count: must be <= 20, got 50'
http_invalid retries-errors "{\"url\": \"$U/\", \"retries\": {\"count\": 1, \"on_errors\": [\"boom\"]}}" \
  'params.retries.on_errors[0]: must be one of ["dns","connect","timeout","reset","tls"]'
http_invalid response-body "{\"url\": \"$U/\", \"response\": {\"body\": \"file\"}}" \
  'params.response.body: must be one of ["text","artifact","none"]'
http_invalid header-type "{\"url\": \"$U/\", \"headers\": {\"X-N\": 1}}" 'params.headers.X-N: expected string, got number'
http_invalid expect-status-type "{\"url\": \"$U/\", \"expect\": {\"status\": 200}}" \
  'params.expect.status: expected array, got number'

# http.request: checks beyond the schema
http_invalid scheme "{\"url\": \"ftp://127.0.0.1/x\"}" 'params.url: scheme "ftp" is not supported: use http:// or https://'
http_invalid no-scheme '{"url": "example.com/x"}' 'params.url: "example.com/x" is not a URL: it needs a scheme, e.g. https://host/path'
http_invalid bad-url '{"url": "http://exa mple.com/"}' 'params.url: "http://exa mple.com/" is not a valid URL: Bad hostname'
http_invalid timeout-text "{\"url\": \"$U/\", \"timeout\": \"5 minutes\"}" \
  'params.timeout: "5 minutes" is not a duration (use e.g. "500ms", "30s", "5m")'
http_invalid timeout-zero "{\"url\": \"$U/\", \"timeout\": 0}" 'params.timeout: must be more than 0'
http_invalid authorization "{\"url\": \"$U/\", \"headers\": {\"Authorization\": \"Bearer abc\"}}" \
  'params.headers: Authorization: credentials come only from named secrets: use params.auth (basic, bearer or header) with a secret from the agent'"'"'s config'
http_invalid header-name "{\"url\": \"$U/\", \"headers\": {\"Bad Name\": \"x\"}}" 'params.headers: "Bad Name" is not a valid header name'
http_invalid header-value "{\"url\": \"$U/\", \"headers\": {\"X-A\": \"a\\r\\nX-B: b\"}}" 'params.headers: X-A: the value must be one line of text'
http_invalid two-bodies "{\"url\": \"$U/\", \"body\": \"a\", \"json\": {\"b\": 1}}" 'params: give only one of body, json, body_base64 and body_file'
http_invalid head-body "{\"url\": \"$U/\", \"method\": \"HEAD\", \"body\": \"a\"}" 'params.body: a HEAD request cannot have a body'
http_invalid base64 "{\"url\": \"$U/\", \"method\": \"POST\", \"body_base64\": \"not base64!\"}" 'params.body_base64: not valid base64'
http_invalid basic-user "{\"url\": \"$U/\", \"auth\": {\"type\": \"basic\", \"secret\": \"pw\"}}" \
  'params.auth.username: required for basic auth (the secret holds the password)'
http_invalid header-auth "{\"url\": \"$U/\", \"auth\": {\"type\": \"header\", \"secret\": \"k\"}}" \
  'params.auth.header: required when auth.type is "header" (e.g. "X-API-Key")'
http_invalid bearer-user "{\"url\": \"$U/\", \"auth\": {\"type\": \"bearer\", \"secret\": \"k\", \"username\": \"u\"}}" \
  'params.auth.username: only used with auth.type "basic"'
http_invalid client-key "{\"url\": \"$U/\", \"tls\": {\"client_key\": \"k.pem\"}}" \
  'params.tls.client_cert: required with a client key (a PEM file holding the certificate)'
http_invalid two-keys "{\"url\": \"$U/\", \"tls\": {\"client_cert\": \"c.pem\", \"client_key\": \"k.pem\", \"client_key_secret\": \"k\"}}" \
  'params.tls: give client_key or client_key_secret, not both'
http_invalid proxy "{\"url\": \"$U/\", \"proxy\": \"proxy.internal:3128\"}" \
  'params.proxy: "proxy.internal:3128" is not a proxy URL: use e.g. http://proxy.internal:3128, or "none" for a direct connection'
http_invalid backoff "{\"url\": \"$U/\", \"retries\": {\"count\": 2, \"backoff\": \"10s\", \"max_backoff\": \"1s\"}}" \
  'params.retries.max_backoff: must not be less than retries.backoff'
http_invalid max-text "{\"url\": \"$U/\", \"response\": {\"max_text\": \"8MiB\"}}" \
  'params.response.max_text: at most 4MiB in a result; save larger bodies as an artifact (response.body: "artifact")'
http_invalid max-size "{\"url\": \"$U/\", \"response\": {\"max_size\": \"1KiB\"}}" \
  'params.response.max_size: 1KiB is less than response.max_text (64KiB)'
http_invalid size-text "{\"url\": \"$U/\", \"response\": {\"max_size\": \"lots\"}}" \
  'params.response.max_size: "lots" is not a size (use e.g. "64KiB", "10MB")'
http_invalid artifact-name "{\"url\": \"$U/\", \"response\": {\"artifact\": \"../x\"}}" \
  'params.response.artifact: "../x": a plain file name is needed (no '"'"'/'"'"', not starting with '"'"'.'"'"')'
http_invalid artifact-text "{\"url\": \"$U/\", \"response\": {\"body\": \"text\", \"artifact\": \"x\"}}" \
  'params.response.artifact: only used with response.body "artifact"'
http_invalid status-value "{\"url\": \"$U/\", \"expect\": {\"status\": [200, \"2xxx\"]}}" \
  'params.expect.status[1]: "2xxx" is not a status (100-599), a class such as "2xx" or a range such as "200-299"'
http_invalid status-range "{\"url\": \"$U/\", \"expect\": {\"status\": [99]}}" \
  'params.expect.status[0]: 99 is not a status (100-599), a class such as "2xx" or a range such as "200-299"'
http_invalid header-regex "{\"url\": \"$U/\", \"expect\": {\"headers\": {\"Content-Type\": \"(json\"}}}" \
  'params.expect.headers.Content-Type: "(json" is not a valid regular expression (POSIX ERE): Unmatched ( or \('
http_invalid body-regex "{\"url\": \"$U/\", \"expect\": {\"body_regex\": \"[a-\"}}" \
  'params.expect.body_regex: "[a-" is not a valid regular expression (POSIX ERE): Unmatched [, [^, [:, [., or [='
http_invalid json-path "{\"url\": \"$U/\", \"expect\": {\"json\": {\"a.b\": 1}}}" \
  'params.expect.json["a.b"]: a JSON path starts with $ (e.g. $.items[0].id)'
http_invalid json-path2 "{\"url\": \"$U/\", \"expect\": {\"json\": {\"\$.a[x]\": 1}}}" \
  'params.expect.json["$.a[x]"]: expected an index, '"'"'name'"'"' or "name" after '"'"'['"'"''
http_invalid latency "{\"url\": \"$U/\", \"expect\": {\"max_latency\": \"fast\"}}" \
  'params.expect.max_latency: "fast" is not a duration (use e.g. "500ms", "30s", "5m")'

# refused by the plugin's settings
cat >"$T/strict.yaml" <<'YAML'
plugins:
  config:
    http:
      allow_insecure: false
      max_concurrency: 4
YAML
http_run 2 insecure http.request "{\"url\": \"https://127.0.0.1:$S/\", \"tls\": {\"verify\": false}}" --config "$T/strict.yaml"
http_expect_error insecure 'params.tls.verify: this agent does not allow turning TLS verification off (plugins.config.http.allow_insecure is false); give tls.ca_file instead'
http_run 2 too-concurrent http.batch "{\"requests\": [{\"url\": \"$U/\"}], \"concurrency\": 5}" --config "$T/strict.yaml"
http_expect_error too-concurrent 'params.concurrency: 5 exceeds this agent'"'"'s limit of 4 (plugins.config.http.max_concurrency)'

# files that are not there: refused before anything is sent
http_invalid body-file "{\"url\": \"$U/\", \"method\": \"PUT\", \"body_file\": \"missing.bin\"}" \
  "params.body_file: cannot read \"missing.bin\": No such file or directory (relative paths start at the task workspace $T/ws-body-file); nothing was sent"
mkdir -p "$T/ws-body-dir/adir"
http_invalid body-dir "{\"url\": \"$U/\", \"method\": \"POST\", \"body_file\": \"adir\"}" \
  'params.body_file: "adir" is not a regular file; nothing was sent'
http_invalid ca-file "{\"url\": \"https://127.0.0.1:$S/\", \"tls\": {\"ca_file\": \"/nonexistent/ca.pem\"}}" \
  "params.tls.ca_file: cannot read \"/nonexistent/ca.pem\": No such file or directory (relative paths start at the task workspace $T/ws-ca-file); nothing was sent"

# http.batch
http_invalid batch-empty '{"requests": []}' 'params.requests: must have at least 1 items' http.batch
http_invalid batch-url "{\"requests\": [{\"url\": \"$U/\"}, {\"url\": \"gopher://x/\"}]}" \
  'params.requests[1].url: scheme "gopher" is not supported: use http:// or https://' http.batch
http_invalid batch-item-typo "{\"requests\": [{\"url\": \"$U/\", \"metod\": \"GET\"}]}" \
  'params.requests[0].metod: unknown field' http.batch
http_invalid batch-defaults-url "{\"requests\": [{\"url\": \"$U/\"}], \"defaults\": {\"url\": \"$U/\"}}" \
  'params.defaults.url: unknown field' http.batch
http_invalid batch-defaults-auth "{\"requests\": [{\"url\": \"$U/\"}], \"defaults\": {\"headers\": {\"authorization\": \"x\"}}}" \
  'params.defaults.headers: authorization: credentials come only from named secrets: use params.auth (basic, bearer or header) with a secret from the agent'"'"'s config' http.batch
http_invalid batch-defaults-timeout "{\"requests\": [{\"url\": \"$U/\"}], \"defaults\": {\"timeout\": \"soon\"}}" \
  'params.defaults.timeout: "soon" is not a duration (use e.g. "500ms", "30s", "5m")' http.batch
http_invalid batch-concurrency "{\"requests\": [{\"url\": \"$U/\"}], \"concurrency\": 0}" \
  'params.concurrency: must be >= 1, got 0' http.batch
http_invalid batch-conflict "{\"requests\": [{\"url\": \"$U/\", \"method\": \"POST\", \"body\": \"a\", \"body_base64\": \"YQ==\"}]}" \
  'params.requests[0]: give only one of body, json, body_base64 and body_file' http.batch

many=$("$HTTP_PY" -I -S -c "import json; print(json.dumps([{'url': '$U/'}] * 10001))")
http_invalid batch-too-many "{\"requests\": $many}" 'params.requests: must have at most 10000 items' http.batch
http_invalid batch-artifacts "{\"requests\": [{\"url\": \"$U/a\"}, {\"url\": \"$U/b\"}, {\"url\": \"$U/c\"}], \"defaults\": {\"response\": {\"artifact\": \"out.json\"}}}" \
  'params.requests[1].response.artifact: "out.json" is also the artifact of requests[0]; give each request its own name' http.batch

# a bad plugin setting stops the plugin from loading, with the setting named
cat >"$T/typo.yaml" <<'YAML'
plugins:
  config:
    http:
      max_concurency: 4
YAML
http_run 3 bad-setting http.request "{\"url\": \"$U/\"}" --config "$T/typo.yaml"
t_expect_contains "$T/bad-setting.err" 'plugin http failed to initialise: plugins.config.http.max_concurency: unknown setting (known: proxy, no_proxy, ca_file, user_agent, allow_insecure, max_concurrency, max_result_size, env_allow)'

# none of the above sent a request
if grep -v '^CONN ' "$T/S.log"; then t_fail "a refused task reached the server"; fi
t_log "ok"
