#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `outpost-agent plugin run`: bad task files, bad params, results, artifacts, isolation, secrets.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"

P=$T/plugins
t_plugin_dir "$P" testkit template
A=$OUTPOST_AGENT

# --- bad task files, exit 2 each, with the message a user sees
printf '{"type": "testkit.run",\n  "params": {"a": }\n}\n' >"$T/bad.json"
t_run 2 "$T/o" "$A" plugin run --task "$T/bad.json" --plugins-dir "$P"
t_expect_contains "$T/o" "outpost-agent: $T/bad.json:2:19: not valid JSON"
echo '[1,2]' >"$T/arr.json"
t_run 2 "$T/o" "$A" plugin run --task "$T/arr.json" --plugins-dir "$P"
t_expect_contains "$T/o" "outpost-agent: $T/arr.json: expected a JSON object like {\"type\": \"http.request\", \"params\": {...}}"
echo '{"params": {}}' >"$T/notype.json"
t_run 2 "$T/o" "$A" plugin run --task "$T/notype.json" --plugins-dir "$P"
t_expect_contains "$T/o" "outpost-agent: $T/notype.json: missing \"type\" (the task type, e.g. \"http.request\")"
echo '{"type": "testkit.run", "parms": {}}' >"$T/typo.json"
t_run 2 "$T/o" "$A" plugin run --task "$T/typo.json" --plugins-dir "$P"
t_expect_contains "$T/o" "outpost-agent: $T/typo.json: unknown field \"parms\" (a task file has type, params, timeout)"
echo '{"type": "testkit.run", "timeout": "soon"}' >"$T/to.json"
t_run 2 "$T/o" "$A" plugin run --task "$T/to.json" --plugins-dir "$P"
t_expect_contains "$T/o" "outpost-agent: $T/to.json: \"timeout\" must be a duration such as \"30s\" or \"5m\""
t_task "$T/unknown.json" nosuch.thing '{}'
t_run 2 "$T/o" "$A" plugin run --task "$T/unknown.json" --plugins-dir "$P"
t_expect_contains "$T/o" "outpost-agent: unknown task type nosuch.thing: no enabled plugin in $P serves it (available: template.echo; testkit.run,testkit.strict)"
t_task "$T/nope.json" testkit.nope '{}'
t_run 2 "$T/o" "$A" plugin run --task "$T/nope.json" --plugins-dir "$P"
t_expect_contains "$T/o" "ERROR: task invalid: plugin testkit does not serve task type testkit.nope"
t_run 2 "$T/o" "$A" plugin run --task "$T/missing.json" --plugins-dir "$P"
t_expect_contains "$T/o" "outpost-agent: cannot read the task file: cannot read $T/missing.json: No such file or directory"
t_run 2 "$T/o" "$A" plugin run --plugins-dir "$P"
t_expect_contains "$T/o" "outpost-agent: plugin run needs --task FILE.json (see --help)"

# --- params: the schema (host side) and validate() (plugin side), exit 2
t_task "$T/p1.json" testkit.strict '{"name": 5}'
t_run 2 "$T/o" "$A" plugin run --task "$T/p1.json" --plugins-dir "$P"
t_expect_contains "$T/o" "ERROR: task invalid: params.name: expected string, got number"
t_task "$T/p2.json" testkit.strict '{"name": "x", "nmae": "y"}'
t_run 2 "$T/o" "$A" plugin run --task "$T/p2.json" --plugins-dir "$P"
t_expect_contains "$T/o" "ERROR: task invalid: params.nmae: unknown field"
t_task "$T/p3.json" testkit.strict '{}'
t_run 2 "$T/o" "$A" plugin run --task "$T/p3.json" --plugins-dir "$P"
t_expect_contains "$T/o" "ERROR: task invalid: params.name: required"
t_task "$T/p4.json" template.echo '{"name": "a\nb"}'
t_run 2 "$T/o" "$A" plugin run --task "$T/p4.json" --plugins-dir "$P"
t_expect_contains "$T/o" "ERROR: task invalid: params.name: must be one line"
t_task "$T/p5.json" template.echo '{"name": "x", "times": 11}'
t_run 2 "$T/o" "$A" plugin run --task "$T/p5.json" --plugins-dir "$P"
t_expect_contains "$T/o" "ERROR: task invalid: params.times: must be <= 10, got 11"

# --- success: result on stdout, logs on stderr, defaults applied by the schema
t_task "$T/ok.json" template.echo '{"name": "Ada"}'
"$A" plugin run --task "$T/ok.json" --plugins-dir "$P" >"$T/ok.out" 2>"$T/ok.err" || t_fail "template.echo failed"
t_expect_eq succeeded "$(t_json "$T/ok.out" .status)"
t_expect_eq Ada "$(t_json "$T/ok.out" .result.greeting)"
t_expect_eq 1 "$(t_json "$T/ok.out" .result.times)"
t_expect_contains "$T/ok.err" "INFO task: hello, Ada"
t_expect_contains "$T/ok.err" "workspace: "
# task file from stdin
"$A" plugin run --task - --plugins-dir "$P" <"$T/ok.json" >"$T/stdin.out" 2>/dev/null || t_fail "stdin task failed"
t_expect_eq succeeded "$(t_json "$T/stdin.out" .status)"

# --- a failed task: exit 1 with the plugin's message
t_task "$T/f.json" testkit.run '{"action": "fail", "message": "remote said no"}'
t_run 1 "$T/o" "$A" plugin run --task "$T/f.json" --plugins-dir "$P"
t_expect_contains "$T/o" "ERROR: task failed: remote said no"

# --- a result the plugin wrote as text: passed on as written when it is one JSON object
#     (exact numbers, spacing; what the agent sends the control plane), refused when more
#     follows the object
t_task "$T/raw.json" testkit.run '{"action": "raw", "text": " {\"n\": 0.30000000000000004, \"s\": \"x\"}\n"}'
"$A" plugin run --task "$T/raw.json" --plugins-dir "$P" >"$T/raw.out" 2>/dev/null || t_fail "raw result task failed"
t_expect_contains "$T/raw.out" '"result":{"n": 0.30000000000000004, "s": "x"},"artifacts":[]'
t_expect_eq x "$(t_json "$T/raw.out" .result.s)"
t_task "$T/raw2.json" testkit.run '{"action": "raw", "text": "{\"a\": 1} {\"b\": 2}"}'
t_run 1 "$T/o" "$A" plugin run --task "$T/raw2.json" --plugins-dir "$P"
t_expect_contains "$T/o" "ERROR: task failed: plugin testkit set a result that is not valid JSON"

# --- the worker prepares its task's heap before the task when the params are large (96 bytes
#     for each byte of them, workers.spare_heap at most): none for a small task, megabytes for
#     80 KB of params, none with spare_heap: 0. (Not with a sanitizer's allocator: heap.h.)
if [ "$OUTPOST_SANITIZE" != 1 ]; then
  t_task "$T/mem1.json" testkit.run '{"action": "memory"}'
  "$A" plugin run --task "$T/mem1.json" --plugins-dir "$P" >"$T/mem1.out" 2>/dev/null || t_fail "memory task failed"
  kb=$(t_json "$T/mem1.out" .result.rss_anon_kb)
  [ "$kb" -lt 4096 ] || t_fail "a small task's worker holds ${kb} KiB of private memory"
  python3 -c 'import json; print(json.dumps({"type": "testkit.run", "params": {"action": "memory", "pad": "x" * 81920}}))' >"$T/mem2.json"
  "$A" plugin run --task "$T/mem2.json" --plugins-dir "$P" >"$T/mem2.out" 2>/dev/null || t_fail "memory task failed"
  kb=$(t_json "$T/mem2.out" .result.rss_anon_kb)
  [ "$kb" -ge 6144 ] || t_fail "the worker of a task with 80 KB of params holds ${kb} KiB: its heap is not prepared"
  printf 'workers:\n  spare_heap: 0\n' >"$T/noheap.yaml"
  "$A" plugin run --task "$T/mem2.json" --plugins-dir "$P" --config "$T/noheap.yaml" >"$T/mem3.out" 2>/dev/null ||
    t_fail "memory task failed"
  kb=$(t_json "$T/mem3.out" .result.rss_anon_kb)
  [ "$kb" -lt 4096 ] || t_fail "with workers.spare_heap: 0 the worker holds ${kb} KiB"
fi

# --- artifacts land in the workspace, listed with size and sha256
t_task "$T/art.json" testkit.run '{"action": "artifact", "name": "report.csv", "content": "a,b\n1,2\n"}'
"$A" plugin run --task "$T/art.json" --plugins-dir "$P" --workspace "$T/ws" >"$T/art.out" 2>/dev/null || t_fail "artifact task failed"
t_expect_eq report.csv "$(t_json "$T/art.out" .artifacts[0].name)"
t_expect_eq 8 "$(t_json "$T/art.out" .artifacts[0].size)"
t_expect_eq "$(sha256sum "$T/ws/artifacts/report.csv" | cut -d' ' -f1)" "$(t_json "$T/art.out" .artifacts[0].sha256)"
t_task "$T/art2.json" testkit.run '{"action": "artifact", "name": "../escape"}'
t_run 1 "$T/o" "$A" plugin run --task "$T/art2.json" --plugins-dir "$P"
t_expect_contains "$T/o" "artifact_open(../escape) refused"

# --- isolation: empty environment but what env_allow names, cwd = workspace, fds 0-3 only
cat >"$T/iso.yaml" <<YAML
plugins:
  config:
    testkit:
      env_allow: [OUTPOST_TEST_ALLOWED]
YAML
t_task "$T/iso.json" testkit.run '{"action": "workspace"}'
OUTPOST_TEST_ALLOWED=yes HOME=/root "$A" plugin run --task "$T/iso.json" --plugins-dir "$P" \
  --config "$T/iso.yaml" --workspace "$T/ws2" >"$T/iso.out" 2>/dev/null || t_fail "workspace task failed"
t_expect_eq "$T/ws2" "$(t_json "$T/iso.out" .result.workspace)"
t_expect_eq "$T/ws2" "$(t_json "$T/iso.out" .result.cwd)"
t_expect_eq "" "$(t_json "$T/iso.out" .result.env_home)"
t_expect_eq yes "$(t_json "$T/iso.out" .result.env_allowed)"
t_expect_eq 4 "$(t_json "$T/iso.out" .result.open_fds)"

# --- secrets: handed out by name, redacted everywhere, fenced by type and host
printf 'hunter2-secret\n' >"$T/pw"
cat >"$T/secrets.yaml" <<YAML
secrets:
  pw: file:$T/pw
  fenced:
    from: file:$T/pw
    allow:
      types: [ssh.exec]
  hosted:
    from: file:$T/pw
    allow:
      hosts: ['*.internal']
YAML
t_task "$T/s1.json" testkit.run '{"action": "secret", "name": "pw"}'
"$A" plugin run --task "$T/s1.json" --plugins-dir "$P" --secrets "$T/secrets.yaml" >"$T/s1.out" 2>"$T/s1.err" || t_fail "secret task failed"
t_expect_eq 14 "$(t_json "$T/s1.out" .result.length)"
t_expect_eq "[REDACTED]" "$(t_json "$T/s1.out" .result.leaked)"
t_expect_contains "$T/s1.err" "INFO task: the secret is [REDACTED]"
t_expect_not_contains "$T/s1.err" "hunter2"
t_expect_not_contains "$T/s1.out" "hunter2"
# a result is redacted with the secrets the task asked for after setting it, too
t_task "$T/s3.json" testkit.run '{"action": "secret_late", "name": "pw", "guess": "hunter2-secret"}'
"$A" plugin run --task "$T/s3.json" --plugins-dir "$P" --secrets "$T/secrets.yaml" >"$T/s3.out" 2>/dev/null || t_fail "secret_late task failed"
t_expect_eq "[REDACTED]" "$(t_json "$T/s3.out" .result.guess)"
t_task "$T/s2.json" testkit.run '{"action": "secret", "name": "fenced"}'
t_run 1 "$T/o" "$A" plugin run --task "$T/s2.json" --plugins-dir "$P" --secrets "$T/secrets.yaml"
t_expect_contains "$T/o" "secret \"fenced\" refused: secret \"fenced\" is not allowed for task type testkit.run (allow.types: ssh.exec)"
t_expect_contains "$T/o" "ERROR: task failed: secret \"fenced\" is not available (unknown, or refused by its allow list)"
t_task "$T/s3.json" testkit.run '{"action": "secret", "name": "hosted", "host": "db.internal"}'
t_run 0 "$T/o" "$A" plugin run --task "$T/s3.json" --plugins-dir "$P" --secrets "$T/secrets.yaml"
t_task "$T/s4.json" testkit.run '{"action": "secret", "name": "hosted", "host": "attacker.example"}'
t_run 1 "$T/o" "$A" plugin run --task "$T/s4.json" --plugins-dir "$P" --secrets "$T/secrets.yaml"
t_expect_contains "$T/o" "secret \"hosted\" is not allowed for host attacker.example (allow.hosts: *.internal)"
t_task "$T/s5.json" testkit.run '{"action": "secret", "name": "nope"}'
t_run 1 "$T/o" "$A" plugin run --task "$T/s5.json" --plugins-dir "$P" --secrets "$T/secrets.yaml"
t_expect_contains "$T/o" "no secret named \"nope\" in the agent config (secrets:)"
echo 'secrets: {pw: "hunter2"}' >"$T/badsecrets.yaml"
t_run 2 "$T/o" "$A" plugin run --task "$T/s1.json" --plugins-dir "$P" --secrets "$T/badsecrets.yaml"
t_expect_contains "$T/o" "$T/badsecrets.yaml:1: secrets.pw: \"hunter2\" is not a secret source"

# --- a plugin that fails to load: exit 3 with its reason
t_plugin_dir "$T/bad" init_fail
t_task "$T/if.json" init_fail.run '{}'
rc=0; "$A" plugin run --task "$T/if.json" --plugins-dir "$T/bad" >"$T/if.out" 2>"$T/o" || rc=$?
t_expect_eq 3 "$rc" "exit code of a plugin that fails to load"
t_expect_contains "$T/o" "ERROR: task load_failed: plugin init_fail failed to initialise: cannot reach the license server"
t_expect_eq load_failed "$(t_json "$T/if.out" .status)"
echo ok
