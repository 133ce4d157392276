# SPDX-License-Identifier: Apache-2.0
# Fixtures for the change plugin's `plugin run` tests: a plugins dir with change.so, a test
# approval key, a fake enrolled agent (state dir with agent.json and approval.pem) and its
# config, and helpers that sign change.apply tasks and run them. Source after tests/lib.sh.

if [ -z "${OUTPOST_AGENT:-}" ] || [ ! -x "$OUTPOST_AGENT" ]; then
  echo "SKIP: outpost-agent is not built in this tree" >&2
  exit 77
fi
CH_SRC=$OUTPOST_SOURCE_DIR/tests/change
# The bundled types, copied: a checkout made with umask 002 (or by another user) would have the
# plugin refuse them as writable by others, rightly.
CH_BUNDLED=$T/bundled
CH_P=$T/cplugins
CH_AGENT_ID=agt_ChangeTest000001
CH_HOST=change-host
CH_TYPES=$T/types
t_plugin_dir "$CH_P" change
mkdir -p "$CH_TYPES" "$CH_BUNDLED" "$T/keys" "$T/agent/state"
cp "$OUTPOST_SOURCE_DIR"/plugins/change/types/*.yaml "$CH_BUNDLED/"
chmod 644 "$CH_BUNDLED"/*.yaml
chmod 755 "$CH_TYPES" "$CH_BUNDLED"
chmod 700 "$T/agent/state"
for k in approval rogue; do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/keys/$k.key" 2>/dev/null
  openssl pkey -in "$T/keys/$k.key" -pubout -out "$T/keys/$k.pem" 2>/dev/null
done
cp "$T/keys/approval.pem" "$T/agent/state/approval.pem"
printf '{"agent_id": "%s", "hostname": "%s"}\n' "$CH_AGENT_ID" "$CH_HOST" >"$T/agent/state/agent.json"

# ch_config FILE [EXTRA_SETTINGS_YAML]: an agent config for `plugin run --config`: the fake
# agent's state dir, plugins.config.change with the test types dir and the bundled types.
ch_config() {
  cat >"$1" <<EOF
state_dir: $T/agent/state
plugins:
  config:
    change:
      types_dir: $CH_TYPES
      bundled_dir: $CH_BUNDLED
${2:-}
EOF
}
CH_CFG=$T/agent/config.yaml
ch_config "$CH_CFG"

# ch_type NAME: copies the YAML on stdin to the test types dir as NAME.yaml (mode 0644).
ch_type() {
  cat >"$CH_TYPES/$1.yaml"
  chmod 644 "$CH_TYPES/$1.yaml"
}

# ch_run RC NAME TASK_FILE [plugin run args...]: runs a task through `plugin run` with the
# fake agent's config; stdout in $T/NAME.json, stderr in $T/NAME.err; checks the exit code.
ch_run() {
  local want=$1 name=$2 task=$3 rc=0
  shift 3
  "$OUTPOST_AGENT" plugin run --task "$task" --plugins-dir "$CH_P" --config "$CH_CFG" "$@" \
    >"$T/$name.json" 2>"$T/$name.err" || rc=$?
  if [ "$rc" != "$want" ]; then
    tail -n 40 "$T/$name.err" >&2
    cat "$T/$name.json" >&2
    t_fail "$name: exit code: expected $want, got $rc"
  fi
  R=$T/$name.json
}

# ch_types RC NAME: runs change.types; the outcome in $T/NAME.json.
ch_types() {
  echo '{"type": "change.types", "params": {}}' >"$T/types-task.json"
  ch_run "$1" "$2" "$T/types-task.json"
}

# ch_digest TYPE: the digest change.types reports for TYPE.
ch_digest() {
  ch_types 0 digest
  python3 - "$T/digest.json" "$1" <<'PY'
import json, sys
for t in json.load(open(sys.argv[1]))["result"]["change_types"]:
    if t["name"] == sys.argv[2]:
        print(t["digest"])
        break
else:
    sys.exit("no change type " + sys.argv[2])
PY
}

# ch_apply RC NAME TYPE PARAMS_JSON [sign.py args...]: signs a change.apply task for the fake
# agent with the test key (sign.py args override: --target, --key, --digest, --action,
# --steps, --tamper, --valid, ...) and runs it. R is the outcome file.
ch_apply() {
  local want=$1 name=$2 type=$3 params=$4 digest
  shift 4
  digest=$(ch_digest "$type" 2>/dev/null || echo sha256:none)
  python3 "$CH_SRC/sign.py" --key "$T/keys/approval.key" --type "$type" --digest "$digest" \
    --params "$params" --target "$CH_AGENT_ID" --out "$T/$name.task.json" "$@" ||
    t_fail "sign.py failed"
  ch_run "$want" "$name" "$T/$name.task.json"
}

# ch_records FILE: the records of an outcome, one compact JSON per line.
ch_records() {
  python3 -c 'import json,sys
for r in json.load(open(sys.argv[1])).get("records", []): print(json.dumps(r, separators=(",", ":"), sort_keys=True))' "$1"
}

# ch_steps FILE: the result's steps as "index phase name status" lines.
ch_steps() {
  python3 -c 'import json,sys
for s in json.load(open(sys.argv[1]))["result"]["steps"]: print(s["index"], s["phase"], s["name"], s["status"])' "$1"
}
