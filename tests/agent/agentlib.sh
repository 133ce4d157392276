# SPDX-License-Identifier: Apache-2.0
# Fixtures for the run-loop tests: real outpost-server, real agents, the testkit plugin.
# Source after tests/lib.sh. Agents live in $T/agents/NAME/{state,config.yaml,agent.log}.

P=$T/plugins
t_plugin_dir "$P" testkit

# ta_enroll NAME TOKEN [EXTRA_CONFIG_YAML [LOG_KEYS [PLUGINS_KEYS]]]: enrolls NAME with the real
# server and lays out its state dir and config the way `outpost-agent install` does (key 0600,
# agent.crt, ca.crt, approval.pem, agent.json). EXTRA_CONFIG_YAML holds top-level keys other
# than log, plugins and workers; LOG_KEYS and PLUGINS_KEYS are lines ("  key: value") added to
# those sections (a key written twice is a config error).
ta_enroll() {
  local name=$1 token=$2 extra=${3:-} log_keys=${4:-} plugin_keys=${5:-} d=$T/agents/$1
  t_srv_enroll "$name" "$token" '{"plugins":[{"name":"testkit","version":"1.2.3","types":["testkit.run","testkit.strict"]}]}'
  mkdir -p "$d/state" "$d/cache"
  chmod 700 "$d/state"
  cp "$d/key.pem" "$d/state/agent.key" && chmod 600 "$d/state/agent.key"
  cp "$d/cert.pem" "$d/state/agent.crt"
  python3 - "$d" "$name" <<'PY'
import json, sys
d, name = sys.argv[1:3]
e = json.load(open(d + "/enroll.json"))
open(d + "/state/ca.crt", "w").write(e["ca_certificate"])
open(d + "/state/approval.pem", "w").write(e["approval_public_key"])
json.dump({"agent_id": e["agent_id"], "hostname": name, "control_plane": "",
           "heartbeat_interval": e["heartbeat_interval"], "lease_ttl": e["lease_ttl"],
           "long_poll": e["long_poll"]}, open(d + "/state/agent.json", "w"))
PY
  cat >"$d/config.yaml" <<YAML
control_plane: $SRV_URL
ca_file: $SRV_CA
state_dir: $d/state
cache_dir: $d/cache
drain_grace: 30s
log:
  level: debug
$log_keys
plugins:
  dir: $P
  config:
    testkit: {env_allow: [OUTPOST_TEST_MARK]}
$plugin_keys
workers:
  grace: 1s
$extra
YAML
}

# ta_start NAME [run args...]: starts `outpost-agent run`; waits for its first acknowledged
# heartbeat; sets AGENT_PID_<NAME>.
ta_start() {
  local name=$1 d=$T/agents/$1 pid i
  shift
  # Its workers carry OUTPOST_TEST_MARK=$d: t_marked_pids "$d" finds them.
  OUTPOST_TEST_MARK=$d "$OUTPOST_AGENT" run --config "$d/config.yaml" "$@" >>"$d/agent.log" 2>&1 &
  pid=$!
  t_track "$pid"
  eval "AGENT_PID_$name=$pid"
  for ((i = 0; i < 200; i++)); do
    if "$OUTPOST_AGENT" status --config "$d/config.yaml" --json >"$d/status.json" 2>/dev/null &&
       grep -q '"last_ok"' "$d/status.json"; then
      return 0
    fi
    t_proc_gone "$pid" && { tail -n 30 "$d/agent.log" >&2; t_fail "agent $name exited at start"; }
    sleep 0.05
  done
  tail -n 30 "$d/agent.log" >&2
  t_fail "agent $name did not get a heartbeat through"
}

ta_pid() { eval "echo \$AGENT_PID_$1"; }

# ta_wait_exit NAME [SECONDS]: waits for the agent to exit; sets TA_RC to its exit code.
ta_wait_exit() {
  local pid rc=0 i secs=${2:-30}
  pid=$(ta_pid "$1")
  for ((i = 0; i < secs * 10; i++)); do
    t_proc_gone "$pid" && break
    sleep 0.1
  done
  t_proc_gone "$pid" || t_fail "agent $1 did not exit within ${secs}s"
  wait "$pid" || rc=$?
  if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$T/agents/$1/agent.log"; then
    grep -A 30 -E "AddressSanitizer|LeakSanitizer|runtime error:" "$T/agents/$1/agent.log" | head -n 60 >&2
    t_fail "agent $1: sanitizer report"
  fi
  TA_RC=$rc
}

# ta_status NAME: the status JSON (also in $T/agents/NAME/status.json)
ta_status() {
  "$OUTPOST_AGENT" status --config "$T/agents/$1/config.yaml" --json | tee "$T/agents/$1/status.json"
}

# ta_submit TYPE PARAMS_JSON [task submit args...]: prints the task id
ta_submit() {
  local type=$1 params=$2
  shift 2
  echo "$params" | t_srv_cli task submit --type "$type" --params - "$@" 2>>"$T/submit.err" | tail -n 1
}

# ta_task ID FIELD: a field of `task show --json`
ta_task() {
  t_srv_cli task show "$1" --json 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); d=d.get('task', d); print(d.get('$2') if not isinstance(d.get('$2'), (dict, list)) else json.dumps(d.get('$2')))"
}

# ta_wait_task ID STATE [SECONDS]
ta_wait_task() {
  local id=$1 want=$2 secs=${3:-20} i st=""
  for ((i = 0; i < secs * 10; i++)); do
    st=$(ta_task "$id" state)
    [ "$st" = "$want" ] && return 0
    sleep 0.1
  done
  t_srv_cli task show "$id" >&2 || true
  t_fail "task $id: expected state $want, got $st after ${secs}s"
}
