#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Debian packages: packaging/build-debs.sh builds them (prefix /usr, cpack -G DEB); each
# holds what it should and nothing else (dpkg-deb -c), depends on what it should (dpkg-deb -f,
# every dependency satisfiable on this machine), and carries maintainer scripts that create the
# system users and start nothing. The agent and one plugin, extracted into a scratch root, run:
# `plugins list` sees exactly that plugin and a task runs through it. The postinsts run in a
# private mount namespace. Both units pass systemd-analyze verify against a staged install
# (DESTDIR; decisions.md 20: systemd is not PID 1 here).
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
for tool in dpkg-deb dpkg-shlibdeps file cpack systemd-analyze; do
  command -v "$tool" >/dev/null || t_fail "$tool is not installed (scripts/deps.sh)"
done
ARCH=$(dpkg --print-architecture)
MA=$(gcc -print-multiarch)
V=$(sed -n 's/^project(Outpost VERSION \([0-9.]*\).*/\1/p' "$OUTPOST_SOURCE_DIR/CMakeLists.txt")
[ -n "$V" ] || t_fail "no version in CMakeLists.txt"
PLUGDIR=usr/lib/$MA/outpost/plugins

# ---- build ----------------------------------------------------------------------------------
t_log "building the packages (packaging/build-debs.sh)"
t_run 0 "$T/build.log" "$OUTPOST_SOURCE_DIR/packaging/build-debs.sh" "$T/debs" "$T/build"
ls "$T/debs" >"$T/debs.list"
deb() { echo "$T/debs/${1}_$V-1_$ARCH.deb"; }
pkgs=(outpost-agent outpost-server outpost-sdk outpost-plugin-http outpost-plugin-odbc outpost-plugin-ssh)
have_change=0
if [ -f "$T/build/plugins/change.so" ]; then
  have_change=1
  pkgs+=(outpost-plugin-change)
fi
for p in "${pkgs[@]}"; do
  [ -f "$(deb "$p")" ] || { cat "$T/debs.list" >&2; t_fail "no package $p"; }
done
[ "$(wc -l <"$T/debs.list")" = "${#pkgs[@]}" ] || { cat "$T/debs.list" >&2; t_fail "unexpected packages"; }

# contents PKG: the file list, without directories
contents() { dpkg-deb -c "$(deb "$1")" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\./||' | sort; }
field() { dpkg-deb -f "$(deb "$1")" "$2"; }
expect_files() { # PKG FILE... : exactly these files
  local p=$1
  shift
  printf '%s\n' "$@" | sort >"$T/want.$p"
  contents "$p" >"$T/got.$p"
  diff "$T/want.$p" "$T/got.$p" >"$T/diff.$p" || { cat "$T/diff.$p" >&2; t_fail "$p: unexpected contents"; }
}
expect_depends() { # PKG NAME...: Depends names these packages
  local p=$1 d n
  d=$(field "$p" Depends)
  shift
  for n in "$@"; do
    case ", $d," in *", $n "*|*", $n,"*) ;; *) t_fail "$p: Depends [$d] lacks $n" ;; esac
  done
}

# ---- contents --------------------------------------------------------------------------------
expect_files outpost-agent usr/bin/outpost-agent usr/libexec/outpost/outpost-agent-net \
  usr/libexec/outpost/outpost-worker \
  usr/lib/systemd/system/outpost-agent.service usr/share/man/man8/outpost-agent.8.gz \
  usr/share/bash-completion/completions/outpost-agent usr/share/doc/outpost-agent/copyright \
  usr/share/doc/outpost-agent/README.md usr/share/doc/outpost-agent/operations.md \
  usr/share/doc/outpost-agent/configuration.md usr/share/doc/outpost-agent/performance.md
expect_files outpost-server usr/bin/outpost-server usr/lib/systemd/system/outpost-server.service \
  usr/share/man/man8/outpost-server.8.gz usr/share/bash-completion/completions/outpost-server \
  usr/share/doc/outpost-server/copyright usr/share/doc/outpost-server/server.md \
  usr/share/doc/outpost-server/protocol.md
for p in http odbc ssh; do
  expect_files outpost-plugin-$p $PLUGDIR/$p.so usr/share/doc/outpost-plugin-$p/copyright \
    usr/share/doc/outpost-plugin-$p/$p.md
done
if [ $have_change = 1 ]; then
  contents outpost-plugin-change >"$T/got.change"
  t_expect_contains "$T/got.change" "$PLUGDIR/change.so"
  if grep -vE "^($PLUGDIR/change.so|usr/share/doc/outpost-plugin-change/.*|usr/share/outpost/change-types/.*\.yaml)$" \
      "$T/got.change"; then
    t_fail "outpost-plugin-change: unexpected files"
  fi
fi
contents outpost-sdk >"$T/got.sdk"
for f in usr/include/outpost/plugin.h usr/include/outpost/sdk.h usr/lib/$MA/liboutpost-sdk.a \
         usr/lib/$MA/cmake/OutpostSDK/OutpostSDKConfig.cmake usr/lib/$MA/cmake/OutpostSDK/OutpostPlugin.cmake \
         usr/lib/$MA/pkgconfig/outpost-sdk.pc usr/share/outpost/sdk-template/template.c \
         usr/share/doc/outpost-sdk/sdk.md usr/share/doc/outpost-sdk/copyright; do
  t_expect_contains "$T/got.sdk" "$f"
done
# nobody ships the same file twice (the packages must co-install)
for p in "${pkgs[@]}"; do contents "$p"; done | sort | uniq -d >"$T/dups"
[ ! -s "$T/dups" ] || { cat "$T/dups" >&2; t_fail "files in two packages"; }
# nothing under /etc (no conffiles: install writes the config), nothing under /usr/local
if for p in "${pkgs[@]}"; do contents "$p"; done | grep -E '^(etc|usr/local)/'; then
  t_fail "files under /etc or /usr/local"
fi

# ---- control fields and dependencies -----------------------------------------------------------
for p in "${pkgs[@]}"; do
  t_expect_eq "$p" "$(field "$p" Package)" "Package"
  t_expect_eq "$V-1" "$(field "$p" Version)" "$p: Version"
  t_expect_eq "$ARCH" "$(field "$p" Architecture)" "$p: Architecture"
  [ -n "$(field "$p" Maintainer)" ] || t_fail "$p: no Maintainer"
  [ "$(field "$p" Description | wc -l)" -ge 2 ] || t_fail "$p: no long description"
done
expect_depends outpost-agent libc6 libcurl4 libssl3 libyaml-0-2 libcjson1 passwd
expect_depends outpost-server libc6 libssl3 libsqlite3-0 libevent-2.1-7 libevent-openssl-2.1-7 passwd
expect_depends outpost-plugin-http outpost-agent libcurl4
expect_depends outpost-plugin-odbc outpost-agent libodbc2
expect_depends outpost-plugin-ssh outpost-agent libssh-4
expect_depends outpost-sdk libcjson-dev
[ $have_change = 0 ] || expect_depends outpost-plugin-change outpost-agent
for p in outpost-plugin-http outpost-plugin-odbc outpost-plugin-ssh; do
  case "$(field "$p" Depends)" in
    *"outpost-agent (>= $V)"*) ;;
    *) t_fail "$p: not tied to outpost-agent (>= $V)" ;;
  esac
done
# the agent pulls no plugin and no plugin library in
case "$(field outpost-agent Depends)" in
  *outpost-plugin*|*libssh*|*libodbc*) t_fail "outpost-agent depends on a plugin" ;;
esac
# every dependency is satisfiable here: by a package of this set or an installed one
python3 - "$T/debs" "$V-1" <<'PY' >"$T/deps.txt" || { cat "$T/deps.txt" >&2; t_fail "unsatisfiable dependencies"; }
import glob, re, subprocess, sys
debs = sorted(glob.glob(sys.argv[1] + "/*.deb"))
ours = {subprocess.check_output(["dpkg-deb", "-f", f, "Package"], text=True).strip(): sys.argv[2]
        for f in debs}
ops = {">=": "ge", "<=": "le", "=": "eq", ">>": "gt", "<<": "lt"}
bad = 0
for f in debs:
    deps = subprocess.check_output(["dpkg-deb", "-f", f, "Depends"], text=True).strip()
    for alt in filter(None, (d.strip() for d in deps.split(","))):
        ok = False
        for d in alt.split("|"):
            m = re.match(r"^\s*([a-z0-9.+-]+)(?:\s*\(\s*([<>=]+)\s*([^)]+)\))?\s*$", d)
            name, op, ver = m.group(1), m.group(2), m.group(3)
            have = ours.get(name)
            if have is None:
                r = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", name],
                                   capture_output=True, text=True)
                if r.returncode == 0 and r.stdout.startswith("install ok installed"):
                    have = r.stdout.split()[-1]
            if have and (not op or subprocess.run(
                    ["dpkg", "--compare-versions", have, ops[op], ver.strip()]).returncode == 0):
                ok = True
        print(("ok   " if ok else "FAIL ") + f.split("/")[-1] + ": " + alt)
        bad += not ok
sys.exit(1 if bad else 0)
PY

# ---- maintainer scripts -----------------------------------------------------------------------
ctl() { # PKG DIR: the control archive
  dpkg-deb -e "$(deb "$1")" "$2"
}
ctl outpost-agent "$T/ctl-agent"
ctl outpost-server "$T/ctl-server"
ctl outpost-plugin-http "$T/ctl-http"
for f in ctl-agent/postinst ctl-agent/prerm ctl-agent/postrm ctl-server/postinst ctl-server/prerm \
         ctl-server/postrm ctl-http/postinst ctl-http/postrm; do
  [ -x "$T/$f" ] || t_fail "$f is missing or not executable"
  sh -n "$T/$f" || t_fail "$f: syntax error"
done
t_expect_contains "$T/ctl-agent/postinst" "useradd --system --user-group"
t_expect_contains "$T/ctl-server/postinst" "useradd --system --user-group"
# they start nothing: no enable, no start (an upgrade restarts what ran: try-restart)
for f in "$T"/ctl-*/postinst; do
  if grep -vE '^[[:space:]]*(echo |#)' "$f" | grep -E 'systemctl[^|;]* (start|enable|restart|reload)( |$)'; then
    t_fail "$f starts or enables a service"
  fi
done
t_expect_contains "$T/ctl-http/postinst" "add http to plugins.enabled"
t_expect_not_contains "$T/ctl-http/postinst" "@NAME@"

# ---- core + one plugin in a scratch root ------------------------------------------------------
R=$T/root
dpkg-deb -x "$(deb outpost-agent)" "$R"
dpkg-deb -x "$(deb outpost-plugin-http)" "$R"
t_run 0 "$T/plugins.out" "$R/usr/bin/outpost-agent" plugins list --plugins-dir "$R/$PLUGDIR" --json
python3 - "$T/plugins.out" <<'PY' || { cat "$T/plugins.out" >&2; t_fail "plugins list in the scratch root"; }
import json, sys
ps = json.load(open(sys.argv[1]))
assert [p["name"] for p in ps] == ["http"], ps
PY
t_run 0 "$T/plugins-table.out" "$R/usr/bin/outpost-agent" plugins list --plugins-dir "$R/$PLUGDIR"
t_expect_contains "$T/plugins-table.out" "loaded"
# the worker is found beside the agent (../libexec/outpost), and a task runs through the plugin
mkdir -p "$T/www"
echo "packaged hello" >"$T/www/index.txt"
hport=$(t_free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$T/www" "$hport" >"$T/http.log" 2>&1 &
t_track $!
t_wait_port "$hport"
t_task "$T/task.json" http.request "{\"url\": \"http://127.0.0.1:$hport/index.txt\", \"expect\": {\"body_regex\": \"packaged\"}}"
t_run 0 "$T/run.out" "$R/usr/bin/outpost-agent" plugin run --task "$T/task.json" --plugins-dir "$R/$PLUGDIR" \
  --workspace "$T/ws"
t_expect_contains "$T/run.out" '"status":"succeeded"'
# the binaries carry the packaged paths
"$R/usr/bin/outpost-agent" plugins list >"$T/default.out" 2>&1 || true
t_expect_contains "$T/default.out" "/usr/lib/$MA/outpost/plugins"
t_run 0 "$T/version.out" "$R/usr/bin/outpost-agent" version
t_expect_contains "$T/version.out" "outpost-agent $V"
zcat "$R/usr/share/man/man8/outpost-agent.8.gz" | grep -q '^\.TH OUTPOST-AGENT 8' || t_fail "man page"

# the postinsts, for real, in a private mount namespace over a copy of /etc
if [ "$(id -u)" = 0 ] && unshare --mount --propagation private true 2>/dev/null; then
  mkdir -p "$T/ns/etc"
  cp -a /etc/. "$T/ns/etc/"
  cat >"$T/inner.sh" <<SH
set -e
mount --bind "$T/ns/etc" /etc
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib
getent passwd outpost-agent >/dev/null && { echo "outpost-agent exists before postinst"; exit 1; }
"$T/ctl-agent/postinst" configure >"$T/postinst.out" 2>&1
"$T/ctl-agent/postinst" configure >>"$T/postinst.out" 2>&1     # twice: idempotent
getent passwd outpost-agent >"$T/passwd"
"$T/ctl-server/postinst" configure >"$T/postinst-server.out" 2>&1
getent passwd outpost-server >"$T/passwd-server"
stat -c '%U %a' /var/lib/outpost-server >"$T/server-dir"
ls -A /var/lib >"$T/varlib"
SH
  t_run 0 "$T/ns.out" unshare --mount --propagation private bash "$T/inner.sh"
  t_expect_contains "$T/passwd" "outpost-agent:x:"
  t_expect_contains "$T/passwd" ":/var/lib/outpost-agent:/usr/sbin/nologin"
  t_expect_contains "$T/postinst.out" "outpost-agent install --control-plane"
  t_expect_contains "$T/passwd-server" ":/var/lib/outpost-server:/usr/sbin/nologin"
  t_expect_eq "outpost-server 700" "$(cat "$T/server-dir")" "/var/lib/outpost-server"
  t_expect_eq "outpost-server" "$(cat "$T/varlib")" "/var/lib after the postinsts (the agent's is made by install)"
  if getent passwd outpost-agent >/dev/null; then t_fail "the host got an outpost-agent user"; fi
fi

# ---- the units, against a staged install ------------------------------------------------------
S=$T/stage
DESTDIR=$S cmake --install "$T/build" >"$T/stage.log" 2>&1 || { cat "$T/stage.log" >&2; t_fail "cmake --install"; }
[ -f "$S/usr/lib/systemd/system/outpost-agent.service" ] || t_fail "the staged install has no agent unit"
cp -rn /lib/systemd/system/. "$S/usr/lib/systemd/system/"
mkdir -p "$S/bin"
cp /bin/kill "$S/bin/kill"
t_run 0 "$T/verify.out" systemd-analyze verify --man=no --root="$S" outpost-agent.service outpost-server.service
t_expect_not_contains "$T/verify.out" "outpost-"
# the check is real: a typo shows
sed -i 's/^ProtectSystem=strict/ProtectSystem=strcit/' "$S/usr/lib/systemd/system/outpost-server.service"
systemd-analyze verify --man=no --root="$S" outpost-server.service >"$T/verify-bad.out" 2>&1 || true
t_expect_contains "$T/verify-bad.out" "protect system value"
# the packaged agent unit is the one `outpost-agent install` writes
cmp "$OUTPOST_SOURCE_DIR/packaging/outpost-agent.service" "$S/usr/lib/systemd/system/outpost-agent.service" ||
  t_fail "the staged agent unit differs from packaging/outpost-agent.service"
echo PASS
