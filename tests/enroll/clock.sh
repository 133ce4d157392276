#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A host clock off the control plane's (libfaketime), both ways: behind gets the seed's
# "certificate not yet valid" with the measured skew and the NTP fix; ahead gets "clock skew too
# large"; the token is not spent; check reports the skew. Label plain-only (LD_PRELOAD).
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
command -v faketime >/dev/null || t_fail "faketime is not installed (scripts/deps.sh)"
t_srv_init
t_srv_start
t_plugin_dir "$T/plugins" testkit
skewed() { # EXPECTED_RC OUT OFFSET NAME TOKENFILE
  t_run "$1" "$2" faketime -f "$3" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --token-file "$5" \
    --ca-cert "$SRV_CA" --config-dir "$T/$4/etc" --state-dir "$T/$4/state" --user "$(id -un)" \
    --plugins-dir "$T/plugins" --no-service
}
tok=$(t_ag_token)

# 10 minutes behind
skewed 5 "$T/o" -10m behind "$tok"
t_expect_eq "FATAL: enrollment failed: certificate validation error: certificate not yet valid" "$(grep FATAL "$T/o")"
grep -qE "this host's clock is (599|600|601) s behind the control plane's \(host 20[0-9-]+T" "$T/o" || { cat "$T/o" >&2; t_fail "no measured skew"; }
t_expect_contains "$T/o" "timedatectl set-ntp true"
[ ! -e "$T/behind" ] || t_fail "a refused install left files"

# 10 minutes ahead
skewed 5 "$T/o" +10m ahead "$tok"
grep -qE "^FATAL: enrollment failed: clock skew too large: host is (599|600|601) s ahead of the control plane$" "$T/o" || { cat "$T/o" >&2; t_fail "no ahead message"; }
t_expect_contains "$T/o" "timedatectl set-ntp true"

# the token was never sent: with a good clock it enrolls; 2 minutes off is tolerated
skewed 0 "$T/o" +2m fine "$tok"
t_expect_contains "$T/o" "enrolled as agt_"
CFG=$T/fine/etc/config.yaml

# check reports the skew either way
t_run 0 "$T/c" "$OUTPOST_AGENT" check --config "$CFG"
t_expect_contains "$T/c" "OK    clock          within"
t_run 0 "$T/c" faketime -f +2m "$OUTPOST_AGENT" check --config "$CFG"
grep -qE "^WARN  clock +this host is 1(19|20|21) s ahead of the control plane" "$T/c" || { cat "$T/c" >&2; t_fail "check: no 2 min warning"; }
t_run 1 "$T/c" faketime -f -10m "$OUTPOST_AGENT" check --config "$CFG"
grep -qE "^FAIL  clock +this host is (599|600|601) s behind the control plane" "$T/c" || { cat "$T/c" >&2; t_fail "check: no clock failure"; }
t_expect_contains "$T/c" "fix: synchronize the clock with NTP"
t_expect_contains "$T/c" "FAIL  certificate"
t_srv_stop
echo PASS
