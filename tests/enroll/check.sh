#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# outpost-agent check: every check OK on a fresh install (text and --json), then each failure
# with its fix: config errors, key mode, plugins that do not load, secrets without an allow
# list, directories the agent's user cannot write, a small disk, a drained, revoked or deleted
# agent, a control plane that is down.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start
t_plugin_dir "$T/plugins" testkit
t_ag_install a1 --plugins-dir "$T/plugins"
CFG=$AG_CFG
S=$AG_STATE

t_run 0 "$T/c" "$OUTPOST_AGENT" check --config "$CFG"
for name in config control-plane tls clock registration certificate key state-dir workspace-dir \
            cache-dir disk workspace-size plugins secrets service; do
  grep -qE "^(OK|SKIP) +$name " "$T/c" || { cat "$T/c" >&2; t_fail "check $name is not OK"; }
done
t_expect_contains "$T/c" "OK    plugins        1 loadable: testkit 1.2.3"
t_expect_contains "$T/c" "OK    tls            the control plane's certificate is trusted ($S/server-ca.crt)"
grep -qE "^OK +certificate +valid until .* \((29|30) days left" "$T/c" || t_fail "certificate days left"
t_run 0 "$T/j" "$OUTPOST_AGENT" check --config "$CFG" --json
python3 - "$T/j" <<'PY' || t_fail "check --json"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ok"] is True and d["failures"] == 0, d
names = [c["name"] for c in d["checks"]]
assert names[:3] == ["config", "control-plane", "tls"], names
assert all(c["status"] in ("ok", "warn", "fail", "skip") for c in d["checks"])
assert all(set(c) == {"name", "status", "message", "fix"} for c in d["checks"])
PY

# config errors: file:line, one FAIL, exit 1
cp "$CFG" "$T/cfg.good"
echo "concurency: 4" >>"$CFG"
t_run 1 "$T/c" "$OUTPOST_AGENT" check --config "$CFG"
t_expect_contains "$T/c" "FAIL  config         $CFG:"
t_expect_contains "$T/c" 'unknown key "concurency" (did you mean "concurrency"?)'
t_expect_contains "$T/c" "1 checks: 1 failed"
cp "$T/cfg.good" "$CFG"
t_run 1 "$T/c" "$OUTPOST_AGENT" check --config "$T/nope.yaml"
t_expect_contains "$T/c" "FAIL  config         config file $T/nope.yaml not found"
t_run 2 "$T/c" "$OUTPOST_AGENT" check --bogus

# the key readable by others
chmod 644 "$S/agent.key"
t_run 1 "$T/c" "$OUTPOST_AGENT" check --config "$CFG"
t_expect_contains "$T/c" "FAIL  key            $S/agent.key is readable by others (mode 0644); fix: chmod 600 $S/agent.key"
chmod 600 "$S/agent.key"

# secrets: the ones without an allow list are named
printf 'open_secret\n' >"$T/s1"
cat >>"$CFG" <<YAML
secrets:
  open_one: file:$T/s1
  fenced_one:
    from: env:HOME
    allow: {types: [testkit.run]}
YAML
t_run 0 "$T/c" "$OUTPOST_AGENT" check --config "$CFG"
t_expect_contains "$T/c" "WARN  secrets        1 secret without an allow list, usable by every task type and host: open_one; fix: give each an allow:"
cp "$T/cfg.good" "$CFG"

# plugins: one that fails its init, one enabled but missing
t_plugin_dir "$T/plugins" init_fail
sed -i 's/enabled: \["testkit"\]/enabled: ["testkit", "init_fail", "ghost"]/' "$CFG"
t_run 1 "$T/c" "$OUTPOST_AGENT" check --config "$CFG"
grep -q "^FAIL  plugins        plugin init_fail does not load" "$T/c" || { cat "$T/c" >&2; t_fail "init_fail not reported"; }
t_expect_contains "$T/c" "WARN  plugins        plugins.enabled names ghost, but $T/plugins/ghost.so does not exist"
t_expect_contains "$T/c" "OK    plugins        1 loadable: testkit"
cp "$T/cfg.good" "$CFG"
rm -f "$T/plugins/init_fail.so"

# directories as the agent's user (root can test as another user)
if [ "$(id -u)" = 0 ]; then
  sed -i 's/^user: .*/user: "nobody"/' "$CFG"
  t_run 1 "$T/c" "$OUTPOST_AGENT" check --config "$CFG"
  t_expect_contains "$T/c" "FAIL  state-dir      $S is not writable by nobody: Permission denied; fix: chown -R nobody $S"
  t_expect_contains "$T/c" "FAIL  key            $S/agent.key belongs to uid 0, not to the agent's user nobody"
  chown -R nobody: "$S"
  t_run 0 "$T/c" "$OUTPOST_AGENT" check --config "$CFG"
  t_expect_contains "$T/c" "OK    state-dir      $S is writable by nobody"
  t_expect_contains "$T/c" "OK    workspace-dir  $S/work is writable by nobody"
  chown -R root: "$S"
  cp "$T/cfg.good" "$CFG"

  # a small disk for the workspace: under the health threshold, then nearly full
  mkdir -p "$T/ws"
  if mount -t tmpfs -o size=64m tmpfs "$T/ws" 2>/dev/null; then
    t_on_exit "umount -l $T/ws"
    echo "workspace_dir: $T/ws" >>"$CFG"
    mkdir "$T/ws/tsk_1" "$T/ws/tsk_2"
    head -c 1048576 /dev/zero >"$T/ws/tsk_1/artifact"
    t_run 0 "$T/c" "$OUTPOST_AGENT" check --config "$CFG"
    grep -q "^WARN  disk           $T/ws: .* free, under the health thresholds" "$T/c" || { cat "$T/c" >&2; t_fail "no disk warning"; }
    grep -q "^OK    workspace-size $T/ws holds 2 task workspaces, 1\.[0-9] MiB in all" "$T/c" || { cat "$T/c" >&2; t_fail "workspace size"; }
    head -c 60000000 /dev/zero >"$T/ws/tsk_2/big" 2>/dev/null || true
    t_run 1 "$T/c" "$OUTPOST_AGENT" check --config "$CFG"
    grep -q "^FAIL  disk           $T/ws: .* free: the agent cannot record its work" "$T/c" || { cat "$T/c" >&2; t_fail "no disk failure"; }
    cp "$T/cfg.good" "$CFG"
  else
    t_log "cannot mount a tmpfs here: disk checks not exercised"
  fi
fi

# drained: WARN; revoked and deleted: FAIL with the re-enrollment
t_run 0 "$T/o" t_srv_cli agents drain "$AG_ID"
t_run 0 "$T/c" "$OUTPOST_AGENT" check --config "$CFG"
t_expect_contains "$T/c" "WARN  registration   registered as $AG_ID (hostname $(hostname)), but drained by an operator"
t_expect_contains "$T/c" "fix: outpost-server agents undrain $AG_ID"
t_run 0 "$T/o" t_srv_cli agents revoke "$AG_ID"
t_run 1 "$T/c" "$OUTPOST_AGENT" check --config "$CFG"
t_expect_contains "$T/c" "FAIL  registration   agent not found or revoked (agent_revoked); fix: the agent was revoked or deleted"
t_expect_contains "$T/c" "outpost-agent uninstall --config $CFG"
t_ag_install a2
t_run 0 "$T/o" t_srv_cli agents delete "$AG_ID"
t_run 1 "$T/c" "$OUTPOST_AGENT" check --config "$AG_CFG"
t_expect_contains "$T/c" "FAIL  registration   agent not found or revoked (agent_not_found)"

# the control plane down: named, and what depends on it skipped
t_srv_stop
t_run 1 "$T/c" "$OUTPOST_AGENT" check --config "$CFG"
t_expect_contains "$T/c" "FAIL  control-plane  Get \"$SRV_URL/health\": dial tcp 127.0.0.1:$SRV_PORT: connect: connection refused; fix: nothing listens there"
t_expect_contains "$T/c" "SKIP  tls            not checked: the control plane is unreachable"
t_expect_contains "$T/c" "SKIP  clock"
t_expect_contains "$T/c" "SKIP  registration"
t_expect_contains "$T/c" "OK    certificate"
echo PASS
