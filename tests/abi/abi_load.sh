#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ABI negotiation and discovery: every refusal names the file and both versions; one bad
# plugin never stops the others; crash/hang at load quarantines until the file changes.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"

P=$T/plugins
t_plugin_dir "$P" testkit template old_minor new_minor wrong_major no_entry init_fail bad_schema \
  crash_load hang_load
mkdir -p "$T/state"
cat >"$T/agent.yaml" <<YAML
state_dir: $T/state
workers:
  scan_timeout: 1s
YAML

t_run 0 "$T/list.txt" "$OUTPOST_AGENT" plugins list --plugins-dir "$P" --config "$T/agent.yaml"
cat "$T/list.txt" >&2
t_run 0 "$T/list.json" "$OUTPOST_AGENT" plugins list --plugins-dir "$P" --config "$T/agent.yaml" --json

state() { python3 -c "import json,sys; d={p['name']:p for p in json.load(open('$T/list.json'))}; p=d['$1']; print(p['state'] + '|' + p.get('reason',''))"; }

t_expect_eq "loaded|" "$(state testkit)" testkit
t_expect_eq "loaded|" "$(state template)" template
# an older minor with smaller structs loads
t_expect_eq "loaded|" "$(state old_minor)" old_minor
t_expect_eq "failed|plugin $P/new_minor.so was built for plugin ABI 1.7, newer than this agent's ABI 1.1: upgrade the agent, or rebuild the plugin against an SDK for ABI 1.1" "$(state new_minor)"
t_expect_eq "failed|plugin $P/wrong_major.so was built for plugin ABI 2, this agent speaks ABI 1.1 (it exports outpost_plugin_v2, not outpost_plugin_v1): rebuild it against the Outpost SDK for ABI 1" "$(state wrong_major)"
t_expect_eq "failed|plugin $P/no_entry.so does not export outpost_plugin_v1: it is not an Outpost plugin, or not one for plugin ABI 1 (this agent speaks ABI 1.1)" "$(state no_entry)"
t_expect_eq "failed|plugin init_fail failed to initialise: cannot reach the license server" "$(state init_fail)"
t_expect_eq "failed|plugin $P/bad_schema.so (bad_schema): the params schema of bad_schema.run is invalid: schema at root: unsupported keyword \"oneOf\"" "$(state bad_schema)"
# ASan turns a SIGSEGV into exit status 1 (decisions.md 11)
how="signal 11 (SIGSEGV)"; [ "$OUTPOST_SANITIZE" = 1 ] && how="exit status 1"
t_expect_eq "quarantined|the plugin crashed the scanner while loading ($how); it stays skipped until the file changes" "$(state crash_load)"
t_expect_eq "quarantined|the plugin hung while loading for more than 1s (workers.scan_timeout); it stays skipped until the file changes" "$(state hang_load)"

# The table names version, ABI and types.
t_expect_contains "$T/list.txt" "testkit      1.2.3      1.1   testkit.run,testkit.strict           loaded"

# The old minor plugin runs.
t_task "$T/old.json" old_minor.run '{}'
"$OUTPOST_AGENT" plugin run --task "$T/old.json" --plugins-dir "$P" --config "$T/agent.yaml" >"$T/old.out" 2>"$T/old.err" ||
  { cat "$T/old.err" >&2; t_fail "old_minor.run failed"; }
t_expect_eq old_minor "$(t_json "$T/old.out" .result.variant)"

# Cached: the second listing opens nothing (a hang would cost the 1s timeout again).
start=$(date +%s%N)
t_run 0 "$T/list2.json" "$OUTPOST_AGENT" plugins list --plugins-dir "$P" --config "$T/agent.yaml" --json
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$ms" -lt 900 ] || t_fail "cached listing took ${ms}ms: the quarantined plugin was scanned again"
t_expect_eq "quarantined" "$(python3 -c "import json; print([p['state'] for p in json.load(open('$T/list2.json')) if p['name']=='hang_load'][0])")"

# A quarantined file that changes is scanned again.
cp "$OUTPOST_TEST_PLUGIN_DIR/template.so" "$P/hang_load.so"
t_run 0 "$T/list3.json" "$OUTPOST_AGENT" plugins list --plugins-dir "$P" --config "$T/agent.yaml" --json
t_expect_eq "loaded" "$(python3 -c "import json; print([p['state'] for p in json.load(open('$T/list3.json')) if p['file'].endswith('hang_load.so')][0])")"

# Duplicates: the first file (by name) wins; the other is refused with both named.
t_plugin_dir "$T/dups" testkit dup_name dup_type
t_run 0 "$T/dups.json" "$OUTPOST_AGENT" plugins list --plugins-dir "$T/dups" --json
python3 - "$T/dups.json" "$T/dups" <<'PY'
import json, sys
ps = {p['file'].rsplit('/', 1)[1]: p for p in json.load(open(sys.argv[1]))}
d = sys.argv[2]
assert ps['dup_name.so']['state'] == 'loaded', ps
assert ps['dup_type.so']['state'] == 'loaded', ps
t = ps['testkit.so']
assert t['state'] == 'refused', t
assert t['reason'] == f'refusing plugin {d}/testkit.so: duplicate plugin name "testkit", already provided by {d}/dup_name.so', t['reason']
PY
rm "$T/dups/dup_name.so"
t_run 0 "$T/dups2.json" "$OUTPOST_AGENT" plugins list --plugins-dir "$T/dups" --json
python3 - "$T/dups2.json" "$T/dups" <<'PY'
import json, sys
ps = {p['file'].rsplit('/', 1)[1]: p for p in json.load(open(sys.argv[1]))}
d = sys.argv[2]
t = ps['testkit.so']
assert t['state'] == 'refused', t
assert t['reason'] == f'refusing plugin {d}/testkit.so: duplicate task type testkit.run, already served by plugin dup_type ({d}/dup_type.so)', t['reason']
PY

# Allowlist: a plugin not in plugins.enabled is never opened.
cat >"$T/allow.yaml" <<YAML
plugins:
  enabled: [template]
YAML
t_plugin_dir "$T/allow" template crash_load
t_run 0 "$T/allow.json" "$OUTPOST_AGENT" plugins list --plugins-dir "$T/allow" --config "$T/allow.yaml" --json
python3 -c "
import json; ps={p['name']:p for p in json.load(open('$T/allow.json'))}
assert ps['template']['state']=='loaded'
assert ps['crash_load']['state']=='disabled' and ps['crash_load']['reason']=='not in plugins.enabled', ps"
echo ok
