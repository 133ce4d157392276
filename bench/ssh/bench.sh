#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The ssh benchmark: N short commands on one host, four ways, side by side in one run:
#   outpost   one ssh.exec task with N commands through `outpost-agent plugin run` (a fresh
#             worker, the plugin, connect, login and every command included)
#   ceiling   a minimal libssh client: one session, a channel per command, TCP_NODELAY
#             (bench/ssh/ssh_ceiling.c); and the same with Nagle on, libssh's default
#   cmaster   OpenSSH ssh over one ControlMaster connection (master set-up included)
#   plain     N separate ssh invocations (once: it is slow)
# against a real sshd on 127.0.0.1 and a dedicated user whose shell is /bin/sh.
# Usage: bench.sh [N] [ROUNDS]   (environment: OUTPOST_SOURCE_DIR, OUTPOST_AGENT,
#                                 OUTPOST_PLUGIN_DIR, SSH_CEILING)
# Targets (issue 13): outpost <= 1.2x ceiling, outpost <= 0.5x cmaster.
N=${1:-100}
ROUNDS=${2:-3}
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/ssh/fixture.sh"
ssh_fixture_init
sshd_start bench "LogLevel ERROR"
P=$SSHD_PORT
mkdir -p "$T/ws"
SSH=(ssh -F /dev/null -o BatchMode=yes -o UserKnownHostsFile="$T/known_hosts"
     -o StrictHostKeyChecking=yes -i "$T/keys/id_ed25519" -p "$P")
cmds=$(python3 -c "import json,sys; print(json.dumps(['echo %d' % i for i in range(int(sys.argv[1]))]))" "$N")
ssh_task "$T/task.json" ssh.exec "$(ssh_conn "$P"), \"commands\": $cmds" 600s

ms() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

run_outpost() {
  local t0 t1
  t0=$(ms)
  "$OUTPOST_AGENT" plugin run --task "$T/task.json" --plugins-dir "$OUTPOST_PLUGIN_DIR" \
    --secrets "$T/secrets.yaml" --config "$T/agent.yaml" --workspace "$T/ws" \
    >"$T/out.json" 2>/dev/null || t_fail "outpost run failed: $(cat "$T/out.json")"
  t1=$(ms)
  [ "$(t_json "$T/out.json" .result.ran)" = "$N" ] || t_fail "outpost ran fewer commands"
  secs "$t0" "$t1"
}
run_ceiling() { # timed from outside, like the others: process start and libssh loading count
  local t0 t1
  t0=$(ms)
  "$SSH_CEILING" 127.0.0.1 "$P" "$SSH_USER" "$T/keys/id_ed25519" "$T/known_hosts" "$N" "$@" \
    >/dev/null || t_fail "ssh-ceiling failed"
  t1=$(ms)
  secs "$t0" "$t1"
}
run_cmaster() {
  local t0 t1 i
  t0=$(ms)
  "${SSH[@]}" -o ControlMaster=yes -o ControlPath="$T/cm.sock" -o ControlPersist=yes -fN \
    "$SSH_USER@127.0.0.1"
  for ((i = 0; i < N; i++)); do
    "${SSH[@]}" -o ControlMaster=no -o ControlPath="$T/cm.sock" "$SSH_USER@127.0.0.1" "echo $i" >/dev/null
  done
  t1=$(ms)
  "${SSH[@]}" -o ControlPath="$T/cm.sock" -O exit "$SSH_USER@127.0.0.1" 2>/dev/null
  secs "$t0" "$t1"
}
run_plain() {
  local t0 t1 i
  t0=$(ms)
  for ((i = 0; i < N; i++)); do
    "${SSH[@]}" "$SSH_USER@127.0.0.1" "echo $i" >/dev/null
  done
  t1=$(ms)
  secs "$t0" "$t1"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END { print a[int((NR + 1) / 2)] }'; }
best() { printf '%s\n' "$@" | sort -g | head -n 1; }

# Warm up once (page cache, sshd's first fork), then interleave the methods round by round.
run_ceiling >/dev/null
o=(); c=(); g=(); m=()
for ((r = 0; r < ROUNDS; r++)); do
  o+=("$(run_outpost)")
  c+=("$(run_ceiling)")
  g+=("$(run_ceiling --nagle)")
  m+=("$(run_cmaster)")
done
p=$(run_plain)
O=$(median "${o[@]}"); C=$(median "${c[@]}"); G=$(median "${g[@]}"); M=$(median "${m[@]}")
Ob=$(best "${o[@]}"); Cb=$(best "${c[@]}"); Gb=$(best "${g[@]}"); Mb=$(best "${m[@]}")

printf '\nssh benchmark: %d short commands (echo) on one host, sshd on 127.0.0.1, user with /bin/sh\n' "$N"
printf '%d rounds, interleaved (plain ssh: one round); each figure is a whole process run,\n' "$ROUNDS"
printf 'timed from outside: start-up, connecting and login included\n\n'
printf '  %-58s %8s %8s %10s\n' method median best "per cmd"
row() {
  printf '  %-58s %8.3f %8.3f %7.1f ms\n' "$1" "$2" "$3" \
    "$(awk -v s="$2" -v n="$N" 'BEGIN { print s * 1000 / n }')"
}
row "outpost ssh.exec via plugin run (worker included)" "$O" "$Ob"
row "ceiling: libssh, one session, channel per command, NODELAY" "$C" "$Cb"
row "libssh the same with Nagle on (its default)" "$G" "$Gb"
row "ssh with ControlMaster (master set-up included)" "$M" "$Mb"
row "plain ssh, one invocation per command" "$p" "$p"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t) ? "met" : "MISSED" }'; }
r1=$(ratio "$O" "$C"); r1b=$(ratio "$Ob" "$Cb")
r2=$(ratio "$O" "$M"); r2b=$(ratio "$Ob" "$Mb")
printf '\n  outpost / ceiling       = %s median, %s best  (target <= 1.20: %s)\n' "$r1" "$r1b" "$(verdict "$r1" 1.2)"
printf '  outpost / ControlMaster = %s median, %s best  (target <= 0.50: %s)\n' "$r2" "$r2b" "$(verdict "$r2" 0.5)"
if [ "$N" -lt 100 ]; then
  printf '  (the targets are for N=100: with %d commands start-up dominates)\n' "$N"
fi
