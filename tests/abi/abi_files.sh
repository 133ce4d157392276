#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Unsafe plugin files and directories are refused with the fix; the safe ones still load.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"

P=$T/plugins
t_plugin_dir "$P" testkit template
# group/world-writable file
cp "$OUTPOST_TEST_PLUGIN_DIR/old_minor.so" "$P/writable.so"
chmod 666 "$P/writable.so"
# a symlink that leaves the directory
mkdir -p "$T/elsewhere"
cp "$OUTPOST_TEST_PLUGIN_DIR/old_minor.so" "$T/elsewhere/evil.so"
chmod 644 "$T/elsewhere/evil.so"
ln -s "$T/elsewhere/evil.so" "$P/evil.so"
# a symlink inside the directory is fine
ln -s "$P/template.so" "$P/alias.so"

t_run 0 "$T/list.json" "$OUTPOST_AGENT" plugins list --plugins-dir "$P" --json
python3 - "$T/list.json" "$P" "$T" <<'PY'
import json, sys
ps = {p['file'].rsplit('/', 1)[1]: p for p in json.load(open(sys.argv[1]))}
P, T = sys.argv[2], sys.argv[3]
assert ps['testkit.so']['state'] == 'loaded'
w = ps['writable.so']
assert w['state'] == 'refused'
assert w['reason'] == f'refusing plugin {P}/writable.so: it is writable by group or others (mode 0666): run chmod go-w {P}/writable.so', w['reason']
e = ps['evil.so']
assert e['reason'] == f'refusing plugin {P}/evil.so: it is a symlink to {T}/elsewhere/evil.so, outside the plugins directory {P}', e['reason']
a = ps['alias.so']
# alias.so resolves to template.so: same name, so the later file (template.so) is the duplicate
assert a['state'] == 'loaded', a
PY

# A world-writable plugins directory is refused as a whole.
chmod 777 "$P"
t_run 3 "$T/dir.txt" "$OUTPOST_AGENT" plugins list --plugins-dir "$P"
t_expect_contains "$T/dir.txt" "outpost-agent: refusing plugins directory $P: it is writable by group or others (mode 0777): run chmod go-w $P"
chmod 755 "$P"
t_run 3 "$T/missing.txt" "$OUTPOST_AGENT" plugins list --plugins-dir "$T/nope"
t_expect_contains "$T/missing.txt" "outpost-agent: plugins directory $T/nope: No such file or directory"
echo ok
