#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Change type definitions through `plugin run` change.types: the bundled types load, the
# listing (schema with dry_run, steps with phases, digest) and the digest rule; every
# definition error with its exact file:line message; unsafe files refused; a type of the
# agent's directory replaces a bundled one; settings errors.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/change/lib.sh"

# --- the bundled types load and are listed with their schema, steps and digest.
ch_types 0 list
t_expect_eq '["put-file", "restart-service", "sql-migration"]' \
  "$(python3 -c 'import json,sys; print(json.dumps([t["name"] for t in json.load(open(sys.argv[1]))["result"]["change_types"]]))' "$R")"
t_expect_contains "$T/list.err" "INFO task: change type restart-service (sha256:"
python3 - "$R" "$CH_BUNDLED" <<'PY'
import hashlib, json, sys
r = json.load(open(sys.argv[1]))["result"]["change_types"]
rs = [t for t in r if t["name"] == "restart-service"][0]
assert rs["params_schema"]["required"] == ["unit"], rs["params_schema"]
assert rs["params_schema"]["additionalProperties"] is False
assert rs["params_schema"]["properties"]["dry_run"] == {"type": "boolean", "default": False,
    "description": "render and check every step, run none (a dry run)"}
assert rs["params_schema"]["properties"]["health_attempts"]["default"] == 15
phases = [(s["phase"], s["name"]) for s in rs["steps"]]
assert phases[0] == ("precheck", "unit is known to systemd"), phases
assert ("apply", "restart") in phases and ("rollback", "rollback command") in phases, phases
restart = [s for s in rs["steps"] if s["name"] == "systemctl restart"][0]
assert restart["description"] == "runs systemctl restart -- {{ params.unit }} (when not params.restart_command)", restart
assert rs["source"] == sys.argv[2] + "/restart-service.yaml"
assert rs["digest"].startswith("sha256:") and len(rs["digest"]) == 71
PY

# --- the digest: sha256 of the canonical JSON of the parsed definition. Comments and layout do
# not change it; any value does.
ch_type digest <<'EOF'
name: digest-test
description: one step
apply:
  - {name: a, exec: [echo, "x y"]}
EOF
d1=$(ch_digest digest-test)
want=$(python3 -c 'import hashlib,json; d={"name":"digest-test","description":"one step","apply":[{"name":"a","exec":["echo","x y"]}]}; print("sha256:"+hashlib.sha256(json.dumps(d,sort_keys=True,separators=(",",":")).encode()).hexdigest())')
t_expect_eq "$want" "$d1" "digest of the canonical JSON"
ch_type digest <<'EOF'
# a comment
name:   digest-test
description: "one step"
apply:
  - name: a
    exec:
      - echo
      - x y
EOF
t_expect_eq "$d1" "$(ch_digest digest-test)" "digest after reformatting"
ch_type digest <<'EOF'
name: digest-test
description: one step
apply:
  - {name: a, exec: [echo, "x  y"]}
EOF
[ "$(ch_digest digest-test)" != "$d1" ] || t_fail "a changed argument kept the digest"
rm -f "$CH_TYPES/digest.yaml"

# --- a type in the agent's directory replaces the bundled one of the same name.
sed 's/^description: .*/description: our own restart/' "$CH_BUNDLED/restart-service.yaml" | ch_type restart-service
ch_types 0 override
t_expect_eq "our own restart" "$(python3 -c 'import json,sys; print([t["description"] for t in json.load(open(sys.argv[1]))["result"]["change_types"] if t["name"]=="restart-service"][0])' "$R")"
t_expect_eq 3 "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["result"]["change_types"]))' "$R")"
rm -f "$CH_TYPES/restart-service.yaml"

# --- definition errors: FILE:LINE: message, exactly. Every bad file goes in one directory and
# one change.types run lists them all (the task fails, exit 1), each file's own error, in file
# name order; the good types are still in the result.
BAD=$T/bad
mkdir -p "$BAD"
chmod 755 "$BAD"
: >"$T/bad.expected"
BASE='name: t
description: a test
params:
  who: {type: string, required: true}
apply:
  - name: a
    exec: [echo, "{{ params.who }}"]'
def_error() { # NAME EXPECTED_MESSAGE (after FILE:) YAML
  printf '%s\n' "$3" >"$BAD/$1.yaml"
  printf '%s\n' "$BAD/$1.yaml:$2" >>"$T/bad.expected"
}
def_error yaml '3:8: mapping values are not allowed in this context' 'name: t
description: x
  apply: [a'
def_error notmap '1: a change type is a mapping with name, description, params and the phases precheck, apply, verify, rollback' '- just a list'
def_error unknown '8: unknown key "aply" (known: name, description, params, precheck, apply, verify, rollback)' "$BASE
aply: []"
def_error dupkey '8: duplicate key "name" (first on line 1)' "$BASE
name: u"
def_error noname '1: name is required' 'description: x
apply: [{name: a, exec: [true]}]'
def_error badname '1: name "Restart Service" is not valid: lowercase letters, digits and dashes, starting with a letter (^[a-z][a-z0-9-]{0,62}$)' 'name: Restart Service
description: x
apply: [{name: a, exec: [true]}]'
def_error nodesc '1: description is required: one line that tells an approver what the change does' 'name: t
apply: [{name: a, exec: [true]}]'
def_error paramsnotmap '3: params must be a mapping of parameter names to their schemas, e.g. params: {unit: {type: string, required: true}}' 'name: t
description: x
params: [a, b]
apply: [{name: a, exec: [true]}]'
def_error paramname '4: params.Who: a parameter name is lowercase letters, digits and _ (^[a-z][a-z0-9_]{0,63}$)' 'name: t
description: x
params:
  Who: {type: string}
apply: [{name: a, exec: [true]}]'
def_error dryrun '4: params.dry_run is reserved: every change type has it (render and check the steps, run none)' 'name: t
description: x
params:
  dry_run: {type: boolean}
apply: [{name: a, exec: [true]}]'
def_error notype '4: params.who: type is required (string, integer, number, boolean, array or object)' 'name: t
description: x
params:
  who: {required: true}
apply: [{name: a, exec: [true]}]'
def_error reqbool '4: params.who.required: expected true or false (whether the parameter must be given)' 'name: t
description: x
params:
  who: {type: string, required: [a]}
apply: [{name: a, exec: [true]}]'
def_error reqdefault '4: params.who: a required parameter cannot have a default' 'name: t
description: x
params:
  who: {type: string, required: true, default: x}
apply: [{name: a, exec: [true]}]'
def_error schemakw '4: params.who: schema at root: unsupported keyword "minlength"' 'name: t
description: x
params:
  who: {type: string, minlength: 3}
apply: [{name: a, exec: [true]}]'
def_error baddefault '4: params.n.default: expected integer, got string' 'name: t
description: x
params:
  n: {type: integer, default: "ten"}
apply: [{name: a, exec: [true]}]'
def_error noapply '1: apply: at least one step is required' 'name: t
description: x
precheck: [{name: a, exec: [true]}]'
def_error phasenotlist '3: verify must be a list of steps' 'name: t
description: x
verify: {name: a}
apply: [{name: a, exec: [true]}]'
def_error stepnotmap '4: apply: a step is a mapping with a name and exec or type, not a scalar' 'name: t
description: x
apply:
  - echo hi'
def_error stepkey '6: apply step: unknown key "exce" (known: name, description, when, exec, shell, type, params, env, stdin, timeout, attempts, interval, exit_codes, expect, continue_on_error)' 'name: t
description: x
apply:
  - name: a
    exec: [true]
    exce: [true]'
def_error stepname '4: apply step: name is required (up to 128 characters)' 'name: t
description: x
apply:
  - exec: [true]'
def_error dupstep '7: step name "a" is used twice (first on line 4): step names are unique in a change type' 'name: t
description: x
precheck:
  - name: a
    exec: [true]
apply:
  - name: a
    exec: [true]'
def_error nothing '4: step "a" does nothing: give exec (a local command) or type (a task of another plugin)' 'name: t
description: x
apply:
  - name: a'
def_error both '6: step "a": give exec (a local command) or type (a task of another plugin), not both' 'name: t
description: x
apply:
  - name: a
    exec: [true]
    type: http.request'
def_error cmdstring '9: step "b": exec is a list of arguments, e.g. [systemctl, restart, "{{ params.unit }}"] (no shell); a command string needs shell: true' "$BASE
  - name: b
    exec: systemctl restart nginx"
def_error shelltpl '10: step "b": a shell command cannot hold {{ }}: values would become shell code; pass them as environment variables ("$PARAM_NAME", or env:)' "$BASE
  - name: b
    shell: true
    exec: systemctl restart {{ params.who }}"
def_error shelllist '10: step "b": with shell: true, exec is one command string for /bin/sh -c' "$BASE
  - name: b
    shell: true
    exec: [systemctl, restart]"
def_error shellbool '9: step "b": shell: expected true or false' "$BASE
  - name: b
    shell: sometimes
    exec: echo"
def_error execempty '9: step "b": exec is a non-empty list of arguments' "$BASE
  - name: b
    exec: []"
def_error execitem '9: step "b": exec[1] must be a string, not a mapping' "$BASE
  - name: b
    exec: [echo, {a: 1}]"
def_error unknownparam '9: step "b": exec[1]: {{ params.whom }}: no parameter "whom" is declared under params' "$BASE
  - name: b
    exec: [echo, \"{{ params.whom }}\"]"
def_error unknownref '9: step "b": exec[1]: {{ secrets.db }}: unknown reference (known: params.NAME, cr.id, cr.change_type, cr.action, cr.dir, workspace, agent.id, agent.hostname)' "$BASE
  - name: b
    exec: [echo, \"{{ secrets.db }}\"]"
def_error unclosed '9: step "b": exec[1]: unclosed {{ in "{{ params.who"' "$BASE
  - name: b
    exec: [echo, \"{{ params.who\"]"
def_error expression '9: step "b": exec[1]: {{ params.who | upper }} is not a reference: write {{ params.NAME }}, {{ cr.id }}, {{ cr.dir }}, {{ workspace }} or {{ agent.id }} (templates hold no expressions)' "$BASE
  - name: b
    exec: [echo, \"{{ params.who | upper }}\"]"
def_error badtype '9: step "b": type must be a task type such as odbc.query or http.request' "$BASE
  - name: b
    type: http
    params: {}"
def_error nest '9: step "b": a step cannot run change.apply (steps do not nest)' "$BASE
  - name: b
    type: change.apply"
def_error paramsnotmap2 '10: step "b": params must be a mapping (the http.request task'"'"'s params)' "$BASE
  - name: b
    type: http.request
    params: [url]"
def_error paramsexec '10: step "b": params goes with type (a task of another plugin); an exec step takes env and stdin' "$BASE
  - name: b
    exec: [true]
    params: {a: 1}"
def_error envtype '10: step "b": env goes with exec, not with type' "$BASE
  - name: b
    type: http.request
    env: {A: b}"
def_error paramtpl '10: step "b": params: {{ params.url }}: no parameter "url" is declared under params' "$BASE
  - name: b
    type: http.request
    params:
      url: \"{{ params.url }}\""
def_error envname '11: step "b": env: "1X" is not a variable name' "$BASE
  - name: b
    exec: [true]
    env:
      1X: a"
def_error envreserved '11: step "b": env: PARAM_WHO: names starting with OUTPOST_ or PARAM_ are set by the plugin' "$BASE
  - name: b
    exec: [true]
    env:
      PARAM_WHO: a"
def_error timeout '10: step "b": timeout: expected a duration such as "30s" or "5m", got "soon"' "$BASE
  - name: b
    exec: [true]
    timeout: soon"
def_error attempts '10: step "b": attempts: expected a whole number from 1 to 1000, got "0"' "$BASE
  - name: b
    exec: [true]
    attempts: 0"
def_error attemptstpl '10: step "b": attempts: a template here must be the whole value, e.g. "{{ params.attempts }}"' "$BASE
  - name: b
    exec: [true]
    attempts: \"1{{ params.who }}\""
def_error exitcodes '10: step "b": exit_codes[1]: expected a number from 0 to 255' "$BASE
  - name: b
    exec: [true]
    exit_codes: [0, 300]"
def_error when '10: step "b": when: expected "params.NAME" or "not params.NAME"' "$BASE
  - name: b
    exec: [true]
    when: params.who == 1"
def_error whenparam '10: step "b": when: no parameter "x" is declared under params' "$BASE
  - name: b
    exec: [true]
    when: not params.x"
def_error expectop '12: step "b": expect[0]: unknown check "eq" (known: equals, not_equals, at_least, at_most, matches)' "$BASE
  - name: b
    exec: [true]
    expect:
      - result: exit_code
        eq: 0"
def_error expectresult '11: step "b": expect[0] needs result: (a path into the step'"'"'s result, e.g. rows.0.n) and one of equals, not_equals, at_least, at_most, matches' "$BASE
  - name: b
    exec: [true]
    expect:
      - equals: 0"
def_error expectregex '11: step "b": expect[0].matches: not a POSIX extended regular expression' "$BASE
  - name: b
    exec: [true]
    expect:
      - {result: stdout, matches: \"([a\"}"
def_error coe '10: step "b": continue_on_error: expected true or false' "$BASE
  - name: b
    exec: [true]
    continue_on_error: maybe"

chmod 644 "$BAD"/*.yaml
ch_config "$T/bad.yaml" ""
sed -i "s#types_dir: .*#types_dir: $BAD#" "$T/bad.yaml"
"$OUTPOST_AGENT" plugin run --task "$T/types-task.json" --plugins-dir "$CH_P" --config "$T/bad.yaml" >"$T/bad.json" 2>"$T/bad.err" &&
  t_fail "change.types succeeded with bad definitions"
python3 - "$T/bad.json" "$T/bad.expected" <<'PY'
import json, sys
got = json.load(open(sys.argv[1]))
want = sorted(open(sys.argv[2]).read().splitlines())
errors = got["result"]["errors"]
bad = [(w, g) for w, g in zip(want, errors) if w != g]
for w, g in bad:
    print("expected: " + w + "\n     got: " + g, file=sys.stderr)
assert not bad and len(errors) == len(want), (len(errors), len(want))
assert got["error"] == "%d problems with change type definitions (the result lists them all); the first: %s" % (len(errors), errors[0]), got["error"]
assert [t["name"] for t in got["result"]["change_types"]] == ["put-file", "restart-service", "sql-migration"]
PY
t_expect_contains "$T/bad.err" "ERROR task: $BAD/yaml.yaml:3:8: mapping values are not allowed in this context"

# --- two files define the same type: the second is refused, the first kept.
rm -f "$CH_TYPES"/*.yaml
printf '%s\n' "$BASE" | ch_type a1
printf '%s\n' "$BASE" | ch_type a2
ch_types 1 dup
t_expect_eq "$CH_TYPES/a2.yaml: change type \"t\" is already defined in $CH_TYPES/a1.yaml" "$(t_json "$R" .error)"
t_expect_eq 4 "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["result"]["change_types"]))' "$R")"

# --- files and directories others could write are refused.
rm -f "$CH_TYPES"/*.yaml
printf '%s\n' "$BASE" | ch_type ok
chmod 664 "$CH_TYPES/ok.yaml"
ch_types 1 mode
t_expect_eq "refusing change type file $CH_TYPES/ok.yaml: it is writable by group or others (mode 0664): run chmod go-w $CH_TYPES/ok.yaml" "$(t_json "$R" .error)"
chmod 644 "$CH_TYPES/ok.yaml"
chmod 777 "$CH_TYPES"
ch_types 1 dirmode
t_expect_eq "refusing change type directory $CH_TYPES: it is writable by group or others (mode 0777): run chmod go-w $CH_TYPES" "$(t_json "$R" .error)"
chmod 755 "$CH_TYPES"
ch_types 0 fine
# A missing directory is no error (an agent with no change types of its own).
ch_config "$T/nodir.yaml" ""
sed -i "s#types_dir: .*#types_dir: $T/nosuchdir#" "$T/nodir.yaml"
t_run 0 "$T/nodir.out" "$OUTPOST_AGENT" plugin run --task "$T/types-task.json" --plugins-dir "$CH_P" --config "$T/nodir.yaml"

# --- settings: unknown keys and bad values refuse the plugin (exit 3).
ch_config "$T/badset.yaml" "      typesdir: /x"
t_run 3 "$T/badset.out" "$OUTPOST_AGENT" plugin run --task "$T/types-task.json" --plugins-dir "$CH_P" --config "$T/badset.yaml"
t_expect_contains "$T/badset.out" 'plugin change failed to initialise: plugins.config.change: unknown setting "typesdir" (known: types_dir, bundled, bundled_dir, approval_key, data_dir, path, kill_grace, env_allow)'
ch_config "$T/badset.yaml" "      data_dir: relative/dir"
t_run 3 "$T/badset.out" "$OUTPOST_AGENT" plugin run --task "$T/types-task.json" --plugins-dir "$CH_P" --config "$T/badset.yaml"
t_expect_contains "$T/badset.out" 'plugins.config.change.data_dir: expected an absolute path'
# bundled: false leaves only the agent's own types.
ch_config "$T/nobundle.yaml" "      bundled: false"
t_run 0 "$T/nobundle.out" "$OUTPOST_AGENT" plugin run --task "$T/types-task.json" --plugins-dir "$CH_P" --config "$T/nobundle.yaml"
"$OUTPOST_AGENT" plugin run --task "$T/types-task.json" --plugins-dir "$CH_P" --config "$T/nobundle.yaml" 2>/dev/null >"$T/nb.json"
t_expect_eq '["t"]' "$(python3 -c 'import json,sys; print(json.dumps([t["name"] for t in json.load(open(sys.argv[1]))["result"]["change_types"]]))' "$T/nb.json")"

# --- change.types takes no params.
t_task "$T/tp.json" change.types '{"all": true}'
t_run 2 "$T/tp.out" "$OUTPOST_AGENT" plugin run --task "$T/tp.json" --plugins-dir "$CH_P" --config "$CH_CFG"
t_expect_contains "$T/tp.out" "params.all: unknown field"
echo ok
