#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# install and uninstall as root where systemd runs, with the defaults: the system user, the
# directories given to it, the unit (identical to packaging/outpost-agent.service) and its
# drop-in, systemctl daemon-reload and enable --now, no token in any child's argv or
# environment; then uninstall. The host's /etc, /run and /var are never touched: all of it runs
# in a private mount namespace over copies, with a systemctl that records its calls
# (decisions.md 20: systemd is not PID 1 here). The units are checked with systemd-analyze
# verify against a staged root.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
if [ "$(id -u)" != 0 ] || ! unshare --mount --propagation private true 2>/dev/null; then
  t_log "SKIP: needs root and mount namespaces"
  echo PASS
  exit 0
fi
command -v systemd-analyze >/dev/null || t_fail "systemd-analyze is not installed (scripts/deps.sh)"
t_srv_init
t_srv_start
t_plugin_dir "$T/plugins" testkit
tok=$(t_ag_token)
tok2=$(t_ag_token)
EXE=$(readlink -f "$OUTPOST_AGENT")
N=$T/ns
mkdir -p "$N/etc" "$N/varlib" "$N/varcache"
cp -a /etc/. "$N/etc/"
cp "$(command -v useradd)" "$N/useradd.real"
cat >"$N/systemctl" <<SH
#!/bin/sh
{ echo "ARGS \$*"; env | sed 's/^/ENV /'; } >>"$T/systemctl.log"
case "\$1" in is-active) echo active ;; is-enabled) echo enabled ;; esac
exit 0
SH
cat >"$N/useradd" <<SH
#!/bin/sh
{ echo "ARGS \$*"; env | sed 's/^/ENV /'; } >>"$T/useradd.log"
exec "$N/useradd.real" "\$@"
SH
chmod 755 "$N/systemctl" "$N/useradd"

cat >"$T/inner.sh" <<'SH'
set -euo pipefail
mount --bind "$N/etc" /etc
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/system
mount -t tmpfs tmpfs /var/lib
mount -t tmpfs tmpfs /var/cache
mount --bind "$N/systemctl" /usr/bin/systemctl
mount --bind "$N/useradd" "$(command -v useradd)"
getent passwd outpost-agent >/dev/null && { echo "outpost-agent exists before install"; exit 1; }

# 1. install with the defaults: token from the environment
OUTPOST_TOKEN=$(cat "$TOK") "$AGENT" install --control-plane "$URL" --ca-cert "$CA" \
  --plugins-dir "$PLUGINS" >"$T/install.out" 2>&1
getent passwd outpost-agent >"$T/passwd"
stat -c '%U %G %a %n' /var/lib/outpost-agent /var/lib/outpost-agent/agent.key \
  /var/lib/outpost-agent/agent.crt /var/lib/outpost-agent/work /var/cache/outpost-agent \
  /etc/outpost-agent /etc/outpost-agent/config.yaml >"$T/modes"
mkdir -p "$T/root1/etc/systemd/system"
cp -a /etc/systemd/system/outpost-agent.service /etc/systemd/system/outpost-agent.service.d "$T/root1/etc/systemd/system/"
"$AGENT" check >"$T/check.out" 2>&1 || { cat "$T/check.out"; exit 1; }
"$AGENT" rotate-cert >"$T/rotate.out" 2>&1
stat -c '%U %a' /var/lib/outpost-agent/agent.key >"$T/rotated-owner"
"$AGENT" uninstall >"$T/uninstall.out" 2>&1
ls -A /etc/systemd/system >"$T/units-after"
ls -A /var/lib /var/cache /etc/outpost-agent 2>&1 >"$T/dirs-after" || true
getent passwd outpost-agent >"$T/passwd-after"

# 2. custom paths and --user: the drop-in carries them
"$N/useradd.real" --system --no-create-home --shell /usr/sbin/nologin outpost-test
OUTPOST_TOKEN=$(cat "$TOK2") "$AGENT" install --control-plane "$URL" --ca-cert "$CA" --user outpost-test \
  --config-dir "$T/c2" --state-dir "$T/s2" >"$T/install2.out" 2>&1
mkdir -p "$T/root2/etc/systemd/system"
cp -a /etc/systemd/system/outpost-agent.service /etc/systemd/system/outpost-agent.service.d "$T/root2/etc/systemd/system/"
stat -c '%U %a' "$T/s2" "$T/s2/agent.key" >"$T/modes2"
"$AGENT" uninstall --config "$T/c2/config.yaml" >"$T/uninstall2.out" 2>&1
SH
t_run 0 "$T/ns.out" env N="$N" T="$T" AGENT="$OUTPOST_AGENT" URL="$SRV_URL" CA="$SRV_CA" TOK="$tok" \
  TOK2="$tok2" PLUGINS="$T/plugins" unshare --mount --propagation private bash "$T/inner.sh"

# the host was not touched
getent passwd outpost-agent >/dev/null && t_fail "the host got an outpost-agent user"
[ ! -e /etc/outpost-agent ] && [ ! -e /var/lib/outpost-agent ] && [ ! -e /etc/systemd/system/outpost-agent.service ] ||
  t_fail "the host's /etc or /var was touched"

# 1. what install did
t_expect_contains "$T/install.out" "created the system user outpost-agent"
t_expect_contains "$T/install.out" "wrote /etc/systemd/system/outpost-agent.service"
t_expect_contains "$T/install.out" "wrote /etc/systemd/system/outpost-agent.service.d/install.conf"
t_expect_contains "$T/install.out" "enabled and started outpost-agent.service"
t_expect_contains "$T/install.out" "journalctl -u outpost-agent"
t_expect_contains "$T/passwd" ":/var/lib/outpost-agent:/usr/sbin/nologin"
t_expect_eq "outpost-agent outpost-agent 700 /var/lib/outpost-agent
outpost-agent outpost-agent 600 /var/lib/outpost-agent/agent.key
outpost-agent outpost-agent 644 /var/lib/outpost-agent/agent.crt
outpost-agent outpost-agent 700 /var/lib/outpost-agent/work
outpost-agent outpost-agent 750 /var/cache/outpost-agent
root root 755 /etc/outpost-agent
root outpost-agent 640 /etc/outpost-agent/config.yaml" "$(cat "$T/modes")" "owners and modes"
cmp "$OUTPOST_SOURCE_DIR/packaging/outpost-agent.service" "$T/root1/etc/systemd/system/outpost-agent.service" ||
  t_fail "the unit install wrote differs from packaging/outpost-agent.service"
D1=$T/root1/etc/systemd/system/outpost-agent.service.d/install.conf
t_expect_contains "$D1" "ExecStart=$EXE run --config /etc/outpost-agent/config.yaml"
t_expect_not_contains "$D1" "User="
t_expect_not_contains "$D1" "ReadWritePaths="
grep '^ARGS' "$T/systemctl.log" >"$T/calls"
t_expect_eq "ARGS daemon-reload
ARGS enable --now outpost-agent.service
ARGS is-active outpost-agent.service
ARGS is-enabled outpost-agent.service
ARGS disable --now outpost-agent.service
ARGS daemon-reload
ARGS daemon-reload
ARGS enable --now outpost-agent.service
ARGS disable --now outpost-agent.service
ARGS daemon-reload" "$(cat "$T/calls")" "systemctl calls"
# no child saw a token
for f in "$T/systemctl.log" "$T/useradd.log"; do
  for k in "$tok" "$tok2"; do
    if grep -qF -- "$(cat "$k")" "$f"; then t_fail "a token reached $f"; fi
  done
  t_expect_not_contains "$f" "OUTPOST_TOKEN"
done
t_expect_eq "ENV LANG=C
ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin" "$(grep '^ENV' "$T/useradd.log" | grep -v 'ENV PWD=' | sort)" "useradd's environment"
# check as root tests the directories as outpost-agent, and sees the service
t_expect_contains "$T/check.out" "OK    state-dir      /var/lib/outpost-agent is writable by outpost-agent"
t_expect_contains "$T/check.out" "OK    service        outpost-agent.service is active and enabled"
t_expect_eq "outpost-agent 600" "$(cat "$T/rotated-owner")" "agent.key after rotate-cert"
# uninstall: service stopped and disabled, unit and drop-in gone, user kept
t_expect_contains "$T/uninstall.out" "stopped and disabled outpost-agent.service"
t_expect_contains "$T/uninstall.out" "removed /etc/systemd/system/outpost-agent.service"
t_expect_contains "$T/uninstall.out" "kept the journal: journalctl -u outpost-agent"
t_expect_not_contains "$T/units-after" "outpost-agent"
t_expect_contains "$T/passwd-after" "outpost-agent"

# 2. custom paths and user
D2=$T/root2/etc/systemd/system/outpost-agent.service.d/install.conf
t_expect_contains "$D2" "ExecStart=$EXE run --config $T/c2/config.yaml"
t_expect_contains "$D2" "User=outpost-test"
t_expect_contains "$D2" "ReadWritePaths=-$T/s2 -$T/s2/work -$T/s2/cache"
t_expect_not_contains "$T/install2.out" "created the system user"
t_expect_eq "outpost-test 700
outpost-test 600" "$(cat "$T/modes2")" "owners with --user outpost-test"

# systemd-analyze verify: the packaged unit, and each install's unit with its drop-in
stage() { # ROOT
  mkdir -p "$1/usr/lib/systemd" "$1/usr/bin" "$1/bin" "$1$(dirname "$EXE")"
  cp -r /lib/systemd/system "$1/usr/lib/systemd/"
  cp /bin/kill "$1/bin/kill"
  cp "$EXE" "$1/usr/bin/outpost-agent"
  cp "$EXE" "$1$EXE"
}
mkdir -p "$T/root0/etc/systemd/system"
cp "$OUTPOST_SOURCE_DIR/packaging/outpost-agent.service" "$T/root0/etc/systemd/system/"
for r in root0 root1 root2; do
  stage "$T/$r"
  t_run 0 "$T/verify-$r" systemd-analyze verify --man=no --root="$T/$r" outpost-agent.service
  t_expect_not_contains "$T/verify-$r" "outpost-agent.service"
done
# a typo would show: the check is real
sed 's/^KillMode=mixed/KillMode=mixd/' "$OUTPOST_SOURCE_DIR/packaging/outpost-agent.service" >"$T/root0/etc/systemd/system/outpost-agent.service"
systemd-analyze verify --man=no --root="$T/root0" outpost-agent.service >"$T/verify-bad" 2>&1 || true
t_expect_contains "$T/verify-bad" "kill mode"
t_srv_stop
echo PASS
