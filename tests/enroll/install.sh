#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# outpost-agent install against the real server: what it writes (key 0600, certificate, CA,
# approval key, agent.json, config 0640 that loads), what the server records, each way of
# passing the token (file, stdin, environment, argument), the token never stored, a clean slate
# after a failure, and no install over an enrollment.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start --heartbeat-interval 2s
t_plugin_dir "$T/plugins" testkit

# --token-file, with pool, environment, tags and a plugins dir
tok=$(t_ag_token --tags fromtoken)
token=$(cat "$tok")
AG_TOKEN_FILE=$tok t_ag_install a1 --plugins-dir "$T/plugins" --pool p1 --environment staging --tags db,eu
out=$T/a1/install.out
t_expect_contains "$out" "enrolled as $AG_ID with $SRV_URL"
t_expect_contains "$out" "start the agent with:"
t_expect_contains "$out" "outpost-agent run --config $AG_CFG"
t_expect_contains "$out" "testkit"
[[ "$AG_ID" =~ ^agt_[0-9A-Za-z]{16}$ ]] || t_fail "agent id: $AG_ID"

# the files and their modes
t_expect_eq 600 "$(stat -c %a "$AG_STATE/agent.key")" "agent.key mode"
t_expect_eq 640 "$(stat -c %a "$AG_CFG")" "config.yaml mode"
t_expect_eq 700 "$(stat -c %a "$AG_STATE")" "state dir mode"
grep -q "BEGIN PRIVATE KEY" "$AG_STATE/agent.key" || t_fail "agent.key is not a PEM key"
openssl pkey -in "$AG_STATE/agent.key" -noout -text 2>/dev/null | grep -q "prime256v1\|P-256" || t_fail "agent.key is not EC P-256"
openssl verify -CAfile "$AG_STATE/ca.crt" "$AG_STATE/agent.crt" >/dev/null || t_fail "agent.crt does not verify with ca.crt"
openssl x509 -in "$AG_STATE/agent.crt" -noout -subject | grep -q "CN *= *$AG_ID" || t_fail "agent.crt CN"
cmp -s "$SRV_CA" "$AG_STATE/ca.crt" || t_fail "ca.crt is not the server's CA"
cmp -s "$SRV_CA" "$AG_STATE/server-ca.crt" || t_fail "server-ca.crt is not the --ca-cert file"
cmp -s "$SRV_DIR/approval.pub" "$AG_STATE/approval.pem" || t_fail "approval.pem is not the server's approval key"
t_expect_eq "$SRV_URL" "$(t_json "$AG_STATE/agent.json" .control_plane)" "agent.json control_plane"
t_expect_eq 2 "$(t_json "$AG_STATE/agent.json" .heartbeat_interval)" "agent.json heartbeat_interval"
t_expect_eq "$(hostname)" "$(t_json "$AG_STATE/agent.json" .hostname)" "agent.json hostname"
[ -d "$AG_STATE/work" ] && [ -d "$AG_STATE/cache" ] || t_fail "workspace and cache dirs"
t_expect_contains "$AG_CFG" "control_plane: \"$SRV_URL\""
t_expect_contains "$AG_CFG" "ca_file: \"$AG_STATE/server-ca.crt\""
t_expect_contains "$AG_CFG" "state_dir: \"$AG_STATE\""
t_expect_contains "$AG_CFG" 'enabled: ["testkit"]'
t_expect_contains "$AG_CFG" 'tags: ["db", "eu"]'
t_expect_not_contains "$AG_CFG" "insecure_skip_verify"

# the config is what the agent accepts, and every check passes
t_run 0 "$T/check" "$OUTPOST_AGENT" check --config "$AG_CFG"
t_expect_contains "$T/check" "OK    registration   registered as $AG_ID"
t_expect_contains "$T/check" "0 failed"
t_run 0 "$T/pl" "$OUTPOST_AGENT" plugins list --config "$AG_CFG"
t_expect_contains "$T/pl" "testkit"

# what the server recorded: the token's tags with ours, our pool and environment, the plugin's types
t_srv_cli agents show "$AG_ID" --json >"$T/a"
t_expect_eq "$(hostname)" "$(t_json "$T/a" .hostname)"
t_expect_eq p1 "$(t_json "$T/a" .pool)"
t_expect_eq staging "$(t_json "$T/a" .environment)"
t_expect_eq '["fromtoken", "db", "eu"]' "$(t_json "$T/a" .tags)"
t_expect_contains "$(t_json "$T/a" .task_types)" "testkit.run"
t_expect_eq online "$(t_json "$T/a" .status)"

# the token is nowhere: not in the config, the state dir, the output, the server's log
if grep -rqF -- "$token" "$T/a1" "$T/server.log"; then t_fail "the token was written somewhere"; fi

# no install over an enrollment (exit 6), and nothing changed
cp "$AG_STATE/agent.crt" "$T/crt.before"
t_run 6 "$T/again" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --token-file "$(t_ag_token)" \
  --ca-cert "$SRV_CA" --config-dir "$T/a1/etc" --state-dir "$AG_STATE" --user "$(id -un)" --no-service
t_expect_contains "$T/again" "FATAL: this host is already enrolled as $AG_ID with $SRV_URL"
t_expect_contains "$T/again" "outpost-agent uninstall --config $AG_CFG"
cmp -s "$AG_STATE/agent.crt" "$T/crt.before" || t_fail "a refused install changed agent.crt"
t_run 0 "$T/check" "$OUTPOST_AGENT" check --config "$AG_CFG"
# a config left without a state dir is refused too
mkdir -p "$T/a9/etc" && echo 'control_plane: https://x:1' >"$T/a9/etc/config.yaml"
t_run 6 "$T/again" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --token-file "$(t_ag_token)" \
  --ca-cert "$SRV_CA" --config-dir "$T/a9/etc" --state-dir "$T/a9/state" --user "$(id -un)" --no-service
t_expect_contains "$T/again" "$T/a9/etc/config.yaml already exists"

# --token - (stdin)
tok=$(t_ag_token)
t_run 0 "$T/o" bash -c '"$1" install --control-plane "$2" --token - --ca-cert "$3" --config-dir "$4/etc" --state-dir "$4/state" --user "$(id -un)" --no-service <"$5"' \
  _ "$OUTPOST_AGENT" "$SRV_URL" "$SRV_CA" "$T/a2" "$tok"
t_expect_contains "$T/o" "enrolled as agt_"
# OUTPOST_TOKEN
tok=$(t_ag_token)
t_run 0 "$T/o" env OUTPOST_TOKEN="$(cat "$tok")" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" \
  --ca-cert "$SRV_CA" --config-dir "$T/a3/etc" --state-dir "$T/a3/state" --user "$(id -un)" --no-service
t_expect_contains "$T/o" "enrolled as agt_"
# --token TOKEN (main.c wipes it from argv: tests/enroll/timeout.sh looks at /proc)
tok=$(t_ag_token)
t_run 0 "$T/o" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --token "$(cat "$tok")" \
  --ca-cert "$SRV_CA" --config-dir "$T/a4/etc" --state-dir "$T/a4/state" --user "$(id -un)" --no-service
t_expect_contains "$T/o" "enrolled as agt_"
# no token at all, two of them, an http:// URL, a relative --state-dir made absolute
t_run 2 "$T/o" env -u OUTPOST_TOKEN "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --config-dir "$T/x/etc" --state-dir "$T/x/state"
t_expect_contains "$T/o" "no enrollment token"
t_run 2 "$T/o" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --token a --token-file "$tok" --config-dir "$T/x/etc" --state-dir "$T/x/state"
t_expect_contains "$T/o" "give the token once"
t_run 2 "$T/o" "$OUTPOST_AGENT" install --control-plane "http://127.0.0.1:$SRV_PORT" --token-file "$tok" --config-dir "$T/x/etc" --state-dir "$T/x/state"
t_expect_contains "$T/o" "use https://HOST:PORT"
[ ! -e "$T/x" ] || t_fail "a refused install left $T/x"
tok=$(t_ag_token)
(cd "$T" && t_run 0 "$T/o" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --token-file "$tok" \
  --ca-cert "$SRV_CA" --config-dir a5/etc --state-dir a5/state --user "$(id -un)" --no-service)
t_expect_contains "$T/a5/etc/config.yaml" "state_dir: \"$T/a5/state\""

# a failure after the key was made leaves nothing behind; a retry with a new token works
used=$(t_ag_token)
t_run 0 "$T/o" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --token-file "$used" --ca-cert "$SRV_CA" \
  --config-dir "$T/a6/etc" --state-dir "$T/a6/state" --user "$(id -un)" --no-service
t_run 1 "$T/o" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --token-file "$used" --ca-cert "$SRV_CA" \
  --config-dir "$T/a7/etc" --state-dir "$T/a7/state" --user "$(id -un)" --no-service
t_expect_contains "$T/o" "FATAL: enrollment failed: token has already been used"
[ ! -e "$T/a7" ] || { ls -laR "$T/a7" >&2; t_fail "a failed install left files in $T/a7"; }
# the same with dirs that existed before: they stay, empty
mkdir -p "$T/a8/etc" "$T/a8/state"
t_run 1 "$T/o" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --token-file "$used" --ca-cert "$SRV_CA" \
  --config-dir "$T/a8/etc" --state-dir "$T/a8/state" --user "$(id -un)" --no-service
[ -z "$(ls -A "$T/a8/etc" "$T/a8/state" | grep -v ':$' | grep -v '^$' || true)" ] || { ls -laR "$T/a8" >&2; t_fail "a failed install left files in $T/a8"; }
t_run 0 "$T/o" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --token-file "$(t_ag_token)" --ca-cert "$SRV_CA" \
  --config-dir "$T/a8/etc" --state-dir "$T/a8/state" --user "$(id -un)" --no-service
t_expect_contains "$T/o" "enrolled as agt_"
# an interrupted install's key (no agent.json) does not block the next one
t_run 1 "$T/o" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --token-file "$used" --ca-cert "$SRV_CA" \
  --config-dir "$T/b1/etc" --state-dir "$T/b1/state" --user "$(id -un)" --no-service
mkdir -p "$T/b1/state" && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/b1/state/agent.key" 2>/dev/null
t_run 0 "$T/o" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --token-file "$(t_ag_token)" --ca-cert "$SRV_CA" \
  --config-dir "$T/b1/etc" --state-dir "$T/b1/state" --user "$(id -un)" --no-service
t_expect_contains "$T/o" "removed the key an interrupted install left"
openssl x509 -in "$T/b1/state/agent.crt" -noout -pubkey >"$T/p1"
openssl pkey -in "$T/b1/state/agent.key" -pubout >"$T/p2"
cmp -s "$T/p1" "$T/p2" || t_fail "agent.crt does not match the new agent.key"

# not root: into directories the user can write; the agent runs as that user, no service
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$T/nr"
  cp "$SRV_CA" "$T/nr/ca.crt"
  cp "$(t_ag_token)" "$T/nr/token"
  chown -R nobody: "$T/nr"
  as_nobody() { setpriv --reuid nobody --regid "$(id -g nobody)" --clear-groups env HOME=/ "$@"; }
  # The build may sit where nobody cannot reach it (CI clones into /root): copies it can run.
  mkdir -p "$T/nrbin"
  cp "$OUTPOST_AGENT" "$(dirname "$OUTPOST_AGENT")/outpost-agent-net" "$OUTPOST_WORKER" "$T/nrbin/"
  chmod 755 "$T/nrbin" "$T/nrbin/"*
  NRAGENT=$T/nrbin/outpost-agent
  t_run 0 "$T/o" as_nobody "$NRAGENT" install --control-plane "$SRV_URL" --token-file "$T/nr/token" \
    --ca-cert "$T/nr/ca.crt" --config-dir "$T/nr/etc" --state-dir "$T/nr/state" --plugins-dir "$T/plugins"
  t_expect_contains "$T/o" "enrolled as agt_"
  t_expect_contains "$T/o" "start the agent with:"
  t_expect_contains "$T/nr/etc/config.yaml" 'user: "nobody"'
  t_expect_eq nobody "$(stat -c %U "$T/nr/state/agent.key")" "agent.key owner"
  t_run 0 "$T/c" as_nobody "$NRAGENT" check --config "$T/nr/etc/config.yaml"
  t_expect_contains "$T/c" "OK    state-dir      $T/nr/state is writable by nobody"
  # a user cannot install for another, nor write the default /etc/outpost-agent
  t_run 2 "$T/o" as_nobody "$NRAGENT" install --control-plane "$SRV_URL" --token-file "$T/nr/token" \
    --user root --config-dir "$T/nr/etc2" --state-dir "$T/nr/state2"
  t_expect_contains "$T/o" "only root can install an agent for another user"
  t_run 2 "$T/o" as_nobody "$NRAGENT" install --control-plane "$SRV_URL" --token-file "$T/nr/token"
  t_expect_contains "$T/o" "cannot create directory /etc/outpost-agent: Permission denied"
  t_expect_contains "$T/o" "choose directories you can write with --config-dir and --state-dir"
  n_agents=9
else
  n_agents=8
fi

t_srv_cli agents list --json >"$T/al"
t_expect_eq "$n_agents" "$(python3 -c 'import json,sys;print(len(json.load(open(sys.argv[1]))["agents"]))' "$T/al")" "agents enrolled"
t_srv_stop
echo PASS
