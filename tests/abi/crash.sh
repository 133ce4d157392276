#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A plugin that crashes, aborts, exits, hangs, allocates without bound, prints gigabytes or
# forks a child fails its task with a clear reason; nothing is left running. (plain-only:
# ASan turns signals into exit 1 and cannot run under RLIMIT_AS: decisions.md 11)
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"

P=$T/plugins
t_plugin_dir "$P" testkit
A=$OUTPOST_AGENT
export OUTPOST_TEST_MARK=$T
cat >"$T/cfg.yaml" <<YAML
plugins:
  config:
    testkit: {env_allow: [OUTPOST_TEST_MARK]}
workers:
  grace: 1s
  memory_limit: 128MiB
  output_limit: 1MiB
YAML
run() { t_task "$T/t.json" testkit.run "$2" "${3:-20s}"; t_run "$1" "$T/o" "$A" plugin run --task "$T/t.json" --plugins-dir "$P" --config "$T/cfg.yaml"; }

run 4 '{"action": "segv"}'
t_expect_contains "$T/o" "ERROR: task crashed: plugin testkit crashed: signal 11 (SIGSEGV)"
t_expect_eq crashed "$(grep -v '^[A-Z]*:\|^workspace' "$T/o" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
run 4 '{"action": "abort"}'
t_expect_contains "$T/o" "ERROR: task crashed: plugin testkit crashed: signal 6 (SIGABRT)"
run 4 '{"action": "exit"}'
t_expect_contains "$T/o" "ERROR: task crashed: plugin testkit ended the worker with exit status 3 before finishing the task (it called exit())"
start=$(date +%s)
run 4 '{"action": "hang"}' 1s
t_expect_contains "$T/o" "ERROR: task timed_out: task timed out after 1s; the plugin did not stop and was killed"
[ $(( $(date +%s) - start )) -le 6 ] || t_fail "the hung plugin was not killed after deadline + grace"
run 4 '{"action": "alloc"}'
t_expect_contains "$T/o" "ERROR: task crashed: plugin testkit crashed: signal 6 (SIGABRT); it had used"
t_expect_contains "$T/o" "MiB of its 128 MiB memory limit (workers.memory_limit)"
# a cooperative plugin stops at the deadline through cancel()
run 4 '{"action": "sleep", "for": "30s"}' 1s
t_expect_contains "$T/o" "ERROR: task timed_out: task timed out after 1s"
t_expect_not_contains "$T/o" "killed"

# gigabytes of output: cut at the limit, memory bounded, the task still succeeds
t_task "$T/t.json" testkit.run '{"action": "print", "bytes": 2000000000}' 120s
/usr/bin/time -f "%M" -o "$T/rss" "$A" plugin run --task "$T/t.json" --plugins-dir "$P" --config "$T/cfg.yaml" >"$T/print.out" 2>"$T/print.err" || t_fail "the printing task failed"
t_expect_contains "$T/print.err" "WARN task: task output reached the limit of 1048576 bytes (workers.output_limit): the rest is dropped"
[ "$(cat "$T/rss")" -lt 65536 ] || t_fail "plugin run used $(cat "$T/rss") KiB while the plugin printed 4 GB"
[ "$(stat -c %s "$T/print.err")" -lt 1200000 ] || t_fail "more than the output limit reached stderr"

# children a plugin leaves behind die with its worker, detached (setsid) ones too
for detach in false true; do
  run 0 "{\"action\": \"fork\", \"setsid\": $detach}"
  child=$(grep -v '^[A-Z]*:\|^workspace' "$T/o" | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["child"])')
  t_wait_for 5 t_proc_gone "$child"
done

# SIGINT cancels: the plugin's cancel() stops it, exit 1
t_task "$T/t.json" testkit.run '{"action": "sleep", "for": "30s"}' 60s
"$A" plugin run --task "$T/t.json" --plugins-dir "$P" --config "$T/cfg.yaml" >"$T/c.out" 2>"$T/c.err" &
pid=$!
sleep 0.5
kill -INT $pid
rc=0; wait $pid || rc=$?
t_expect_eq 1 "$rc" "exit code after SIGINT"
t_expect_contains "$T/c.err" "ERROR: task cancelled: stopped after"

# no worker left anywhere
[ -z "$(t_marked_pids)" ] || t_fail "a worker survived: $(t_marked_pids)"
echo ok
