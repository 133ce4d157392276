#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Outpost in one command, on one machine (Debian 12), from a clone:
#   scripts/demo.sh                 install what is missing (as root; otherwise it names the
#                                   packages), build into build-demo/, and run the demo
#   scripts/demo.sh --keep          leave everything running at the end, until Enter or Ctrl-C
#   scripts/demo.sh --build-dir D   use (and build) the build directory D instead
#   scripts/demo.sh --no-build      with --build-dir: use the binaries already built there
#   scripts/demo.sh --no-deps       do not check the Debian packages
# It starts outpost-server on 127.0.0.1 (a free port, a temp data dir), makes an enrollment
# token, installs an agent into a temp prefix (no root needed, no service), runs it, and
# submits an http task (against a local web server it starts), an odbc task on a SQLite file,
# an ssh task (against a throwaway sshd it starts) and a change request that is approved and
# applied. It streams each task's log, prints the results and the agents table, and stops
# everything it started, by PID. Nothing outside its temp dir is changed, except: as root it
# creates the login user outpost-demo for the ssh step (kept; `userdel -r outpost-demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
# Debian's tools first: a python3 shim (pyenv) costs a second a call.
export PATH="/usr/bin:/bin:/usr/sbin:/sbin:$PATH"

build=build-demo
do_build=1
do_deps=1
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build=$2; shift ;;
    --no-build) do_build=0 ;;
    --no-deps) do_deps=0 ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '3,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$build" in /*) ;; *) build=$SRC/$build ;; esac

if [ -t 1 ]; then
  B=$'\e[1m' G=$'\e[32m' Y=$'\e[33m' R=$'\e[31m' N=$'\e[0m'
else
  B='' G='' Y='' R='' N=''
fi
say() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
note() { printf '    %s\n' "$*"; }
warn() { printf '%s    %s%s\n' "$Y" "$*" "$N"; }
die() { printf '%sdemo: %s%s\n' "$R" "$*" "$N" >&2; exit 1; }
skipped=()

# ---- 1. dependencies and build ---------------------------------------------------------------
if [ $do_deps = 1 ]; then
  say "Checking the Debian packages (scripts/deps.sh)"
  if ! scripts/deps.sh; then
    die "install the packages above (as root: scripts/deps.sh), then run scripts/demo.sh again"
  fi
fi
if [ $do_build = 1 ]; then
  say "Building into ${build#"$SRC"/} (CMake + Ninja; a few minutes the first time)"
  if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOUTPOST_TESTS=OFF \
      -DOUTPOST_BENCH=OFF >"$build.configure.log" 2>&1 ||
      { cat "$build.configure.log" >&2; die "cmake failed"; }
    rm -f "$build.configure.log"
  fi
  cmake --build "$build" -j "$(nproc)" | tail -n 1
fi
SERVER=$build/server/outpost-server
AGENT=$build/core/outpost-agent
for f in "$SERVER" "$AGENT" "$build/core/outpost-agent-net" "$build/core/outpost-worker"; do
  [ -x "$f" ] || die "$f is not built (run without --no-build)"
done

# ---- helpers ---------------------------------------------------------------------------------
D=$(mktemp -d "${TMPDIR:-/tmp}/outpost-demo.XXXXXX")
chmod 755 "$D"
pids=()       # every process the demo started, stopped at exit in reverse order
ok=0
cleanup() {
  local rc=$? i p
  set +e
  trap - EXIT INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    printf '\n%s==> Stopping what the demo started (PIDs %s)%s\n' "$B" "${pids[*]}" "$N"
  fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    p=${pids[i]}
    kill -TERM "$p" 2>/dev/null || continue
    for _ in $(seq 1 100); do
      gone "$p" && break
      sleep 0.1
    done
    gone "$p" || kill -KILL "$p" 2>/dev/null
  done
  wait 2>/dev/null
  if [ $ok = 1 ]; then
    rm -rf "$D"
  else
    echo "demo: logs and data kept in $D (server.log, agent.log, sshd/log, ...)" >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# A process in state Z counts as gone (it is dead; its parent reaps it later).
gone() {
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
  [ -z "$st" ] || [ "$st" = Z ]
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
# wait_port PORT PID SECONDS: until something listens on 127.0.0.1:PORT (fails if PID exits)
wait_port() {
  local i
  for ((i = 0; i < $3 * 20; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    gone "$2" && return 1
    sleep 0.05
  done
  return 1
}
srv() { "$SERVER" "$@" --data-dir "$D/server"; }
# jq-like: json_get FILE PYTHON_EXPR (d is the document)
json_get() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# run_task TITLE TYPE PARAMS_FILE: submits, streams the log, prints the result; 0 if it succeeded
run_task() {
  local title=$1 type=$2 params=$3 id state
  [ -z "$title" ] || say "$title"
  note "\$ outpost-server task submit --type $type --params $(basename "$params")"
  id=$(srv task submit --type "$type" --params "$params" --timeout 2m 2>"$D/submit.err") ||
    { cat "$D/submit.err" >&2; die "task submit failed"; }
  note "task $id; its log as it streams (outpost-server task logs $id --follow):"
  timeout 120 "$SERVER" task logs "$id" --follow --data-dir "$D/server" 2>&1 | sed 's/^/      | /' || true
  srv task show "$id" --json >"$D/$id.json"
  state=$(json_get "$D/$id.json" 'd["state"]')
  if [ "$state" = succeeded ]; then
    note "${G}succeeded${N}; result:"
  else
    note "${R}$state${N}: $(json_get "$D/$id.json" 'd.get("error") or d.get("reason")')"
  fi
  python3 - "$D/$id.json" <<'PY' | sed 's/^/      /'
import json, sys
t = json.load(open(sys.argv[1]))
r = t.get("result") or {}
ty = t["type"]
if ty.startswith("http.") and "status" in r:
    print("HTTP %s from %s in %.0f ms: %r" % (r["status"], r["url"], r["timings"]["total"] * 1000,
                                              r.get("body", "")[:200]))
elif ty.startswith("odbc.") and "rows" in r:
    cols = [c["name"] for c in r["columns"]]
    rows = [[("NULL" if row[c] is None else str(row[c])) for c in cols] for row in r["rows"]]
    w = [max(len(c), *(len(x[i]) for x in rows)) if rows else len(c) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w[i]) for i, c in enumerate(cols)))
    for x in rows:
        print("  ".join(v.ljust(w[i]) for i, v in enumerate(x)))
    print("(%d rows, %s)" % (r["row_count"], r.get("dbms", "")))
elif ty == "ssh.exec" and "exit_code" in r:
    print("exit code %s on %s; stdout:" % (r["exit_code"], r.get("host")))
    for line in (r.get("stdout") or "").splitlines():
        print("  " + line)
else:
    print(json.dumps(r, indent=2)[:2000])
PY
  [ "$state" = succeeded ]
}

# change_request: a change request (the bundled change type put-file: replace the web server's
# page, with a backup) made by admin, approved by another person (alice), applied by the agent.
change_request() {
  local agent_id cr task state i
  say "A change request: put a new page on the web server (bundled change type put-file)"
  agent_id=$(json_get "$D/agent/state/agent.json" 'd["agent_id"]')
  # The agent reports its change types with a heartbeat soon after start (heartbeats are 2 s
  # apart here).
  for ((i = 0; i < 150; i++)); do
    srv agents show "$agent_id" --json >"$D/agent-show.json" 2>/dev/null &&
      grep -q '"put-file"' "$D/agent-show.json" && break
    sleep 0.1
  done
  [ $i -lt 150 ] || { warn "the agent did not report the change type put-file"; return 1; }
  cat >"$D/cr.yaml" <<EOF
title: publish the new welcome page
change_type: put-file
target_agent: $agent_id
params:
  path: $D/www/hello.txt
  content: "hello from a change request, approved by alice\n"
  mode: "0644"
timeout: 2m
EOF
  note "\$ outpost-server cr create --file cr.yaml        # by admin: change_type put-file, target $agent_id"
  cr=$(srv cr create --file "$D/cr.yaml" 2>"$D/cr.err") || { cat "$D/cr.err" >&2; return 1; }
  note "$(cat "$D/cr.err")"
  note "\$ outpost-server cr show $cr                  # nothing runs before approval:"
  srv cr show "$cr" 2>&1 | sed 's/^/      /'
  # The requester cannot approve their own change request: another admin token does.
  srv admin-token create --name alice --description "demo approver" >"$D/alice.token" 2>/dev/null ||
    { warn "admin-token create failed"; return 1; }
  chmod 600 "$D/alice.token"
  note "\$ outpost-server admin-token create --name alice; outpost-server cr approve $cr --token-file alice.token"
  srv cr approve "$cr" --token-file "$D/alice.token" 2>&1 | sed 's/^/      /'
  task=""
  for ((i = 0; i < 50; i++)); do
    srv cr show "$cr" --json >"$D/cr.json" 2>/dev/null
    task=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1])).get("task"); print((t.get("id") if isinstance(t, dict) else t) or "")' "$D/cr.json")
    [ -n "$task" ] && break
    sleep 0.1
  done
  [ -n "$task" ] || { warn "the approved change request has no task"; return 1; }
  note "approved and signed; its task $task runs on the target (outpost-server task logs $task --follow):"
  timeout 120 "$SERVER" task logs "$task" --follow --data-dir "$D/server" 2>&1 | sed 's/^/      | /' || true
  srv task show "$task" --json >"$D/$task.json"
  state=$(json_get "$D/$task.json" 'd["state"]')
  note "\$ outpost-server cr show $cr                  # the step-by-step record:"
  srv cr show "$cr" 2>&1 | awk '/^(state|approved by|task state) /; /^step record/ {p = 1} p' |
    sed 's/^/      /'
  if [ "$state" != succeeded ]; then
    note "${R}$state${N}: $(json_get "$D/$task.json" 'd.get("error") or d.get("reason")')"
    return 1
  fi
  note "${G}succeeded${N}; the page is now: $(cat "$D/www/hello.txt")"
}

# ---- 2. the control plane --------------------------------------------------------------------
say "Starting outpost-server on 127.0.0.1 (data dir $D/server)"
for attempt in 1 2 3; do
  rm -rf "$D/server"
  port=$(free_port)
  "$SERVER" init --data-dir "$D/server" --listen "127.0.0.1:$port" >"$D/admin.token" 2>"$D/init.log" ||
    { cat "$D/init.log" >&2; die "outpost-server init failed"; }
  "$SERVER" serve --data-dir "$D/server" --heartbeat-interval 2s >>"$D/server.log" 2>&1 &
  srv_pid=$!
  if wait_port "$port" "$srv_pid" 10; then
    break
  fi
  kill "$srv_pid" 2>/dev/null || true
  wait "$srv_pid" 2>/dev/null || true
  [ $attempt = 3 ] && { tail -n 20 "$D/server.log" >&2; die "outpost-server did not start"; }
done
pids+=("$srv_pid")
URL=https://127.0.0.1:$port
note "\$ outpost-server init --data-dir $D/server --listen 127.0.0.1:$port"
note "\$ outpost-server serve --data-dir $D/server --heartbeat-interval 2s   (PID $srv_pid)"
note "listening on $URL; CA certificate $D/server/ca.crt; log $D/server.log"

# ---- 3. enroll and run an agent --------------------------------------------------------------
say "Enrolling an agent (outpost-agent install, into $D/agent, no root, no service)"
srv token create --description demo >"$D/token" 2>/dev/null || die "token create failed"
chmod 600 "$D/token"
note "\$ outpost-server token create          # single use: oe_...  (kept in $D/token)"
mkdir -p "$D/plugins"
chmod 755 "$D/plugins"
for so in "$build"/plugins/*.so; do
  install -m 644 "$so" "$D/plugins/"
done
note "\$ outpost-agent install --control-plane $URL --token-file $D/token \\"
note "      --ca-cert $D/server/ca.crt --config-dir $D/agent/etc --state-dir $D/agent/state \\"
note "      --plugins-dir $D/plugins --user $(id -un) --no-service"
"$AGENT" install --control-plane "$URL" --token-file "$D/token" --ca-cert "$D/server/ca.crt" \
  --config-dir "$D/agent/etc" --state-dir "$D/agent/state" --plugins-dir "$D/plugins" \
  --user "$(id -un)" --no-service --tags demo >"$D/install.log" 2>&1 ||
  { cat "$D/install.log" >&2; die "outpost-agent install failed"; }
sed -n '1,6p' "$D/install.log" | sed 's/^/      /'
CFG=$D/agent/etc/config.yaml

# The throwaway fixtures the tasks use, and the agent settings that let it reach them.
mkdir -p "$D/www" "$D/keys"
printf 'hello from the web server the demo started\n' >"$D/www/hello.txt"
python3 - "$D/inventory.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.executescript("""
create table hosts(id integer primary key, name text not null, env text, cpus integer);
insert into hosts(name, env, cpus) values ('db-01', 'prod', 16), ('web-01', 'prod', 4),
  ('web-02', 'staging', 2), ('batch-01', 'prod', 8);
""")
c.commit()
PY
ssh-keygen -q -t ed25519 -N '' -C outpost-demo -f "$D/keys/id_ed25519"
: >"$D/known_hosts"
# The change plugin's bundled change types, from the source tree (a package installs them in
# /usr/share/outpost/change-types), in a directory only this user can write.
mkdir -p "$D/change-types"
chmod 755 "$D/change-types"
if [ -d "$SRC/plugins/change/types" ]; then
  for f in "$SRC"/plugins/change/types/*.yaml; do install -m 644 "$f" "$D/change-types/"; done
fi
python3 - "$CFG" "$D" <<'PY'
import sys
cfg, d = sys.argv[1], sys.argv[2]
text = open(cfg).read()
extra = ("  config:\n    ssh:\n      known_hosts: \"%s/known_hosts\"\n"
         "    change:\n      bundled_dir: \"%s/change-types\"\n" % (d, d))
assert "\nplugins:\n" in text, "install wrote no plugins: section"
text = text.replace("\nplugins:\n", "\nplugins:\n" + extra, 1)
text += ("\n# Added by the demo: the key its ssh task logs in with, fenced to that host.\n"
         "secrets:\n  demo_ssh_key:\n    from: \"file:%s/keys/id_ed25519\"\n"
         "    allow: {types: [ssh.exec], hosts: [\"127.0.0.1\"]}\n"
         "log:\n  level: info\n" % d)
open(cfg, "w").write(text)
PY
note "added to config.yaml (docs/configuration.md): plugins.config.ssh.known_hosts,"
note "plugins.config.change.bundled_dir, and the secret demo_ssh_key (fenced to ssh.exec on 127.0.0.1)"

say "Running the agent"
note "\$ outpost-agent run --config $CFG"
"$AGENT" run --config "$CFG" >>"$D/agent.log" 2>&1 &
agent_pid=$!
pids+=("$agent_pid")
for ((i = 0; i < 200; i++)); do
  "$AGENT" status --config "$CFG" --json >"$D/status.json" 2>/dev/null &&
    grep -q '"last_ok"' "$D/status.json" && break
  gone "$agent_pid" && { tail -n 20 "$D/agent.log" >&2; die "the agent exited"; }
  sleep 0.05
done
[ $i -lt 200 ] || { tail -n 20 "$D/agent.log" >&2; die "the agent did not get a heartbeat through"; }
note "PID $agent_pid, log $D/agent.log; \$ outpost-agent status --config $CFG:"
"$AGENT" status --config "$CFG" | sed 's/^/      /'

# ---- 4. tasks --------------------------------------------------------------------------------
failures=0

# http: python's web server on a free port
hport=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$D/www" "$hport" >"$D/http.log" 2>&1 &
http_pid=$!
pids+=("$http_pid")
wait_port "$hport" "$http_pid" 10 || die "python3 -m http.server did not start (see $D/http.log)"
cat >"$D/http.json" <<EOF
{"url": "http://127.0.0.1:$hport/hello.txt", "expect": {"status": [200], "body_regex": "hello"},
 "retries": {"count": 2, "backoff": "200ms"}}
EOF
run_task "An http task: GET a page from a local web server (python3 -m http.server, PID $http_pid)" \
  http.request "$D/http.json" || failures=$((failures + 1))

# odbc: a SQLite file through the SQLite ODBC driver
cat >"$D/odbc.json" <<EOF
{"url": "jdbc:sqlite:$D/inventory.db",
 "sql": "select name, env, cpus from hosts where env = ? and cpus >= ? order by cpus desc",
 "params": [{"type": "string", "value": "prod"}, {"type": "integer", "value": 4}]}
EOF
run_task "An odbc task: a query on a SQLite file (SQLite ODBC driver)" odbc.query "$D/odbc.json" ||
  failures=$((failures + 1))

# ssh: a throwaway sshd on a free port, with its own config and host key
say "An ssh task: a command on a throwaway sshd (its own config, host key and authorized_keys)"
ssh_user=""
ssh_why=""
if [ ! -x /usr/sbin/sshd ]; then
  ssh_why="/usr/sbin/sshd is missing (Debian package openssh-server)"
elif [ "$(id -u)" = 0 ]; then
  ssh_user=outpost-demo
  if ! id "$ssh_user" >/dev/null 2>&1; then
    useradd -m -s /bin/sh -c "Outpost demo ssh login" "$ssh_user"
    note "created the login user $ssh_user (kept; remove it with userdel -r $ssh_user)"
  fi
  usermod -p '*' "$ssh_user"     # unlocked for key logins, no password
  mkdir -p /run/sshd
  chmod 755 /run/sshd
else
  # Not root: sshd runs as this user and can log in only this user.
  ssh_user=$(id -un)
  shell=$(getent passwd "$ssh_user" | cut -d: -f7)
  case "$shell" in
    */nologin|*/false) ssh_why="this user's login shell is $shell: sshd cannot run commands as $ssh_user" ;;
  esac
fi
if [ -z "$ssh_why" ]; then
  mkdir -p "$D/sshd"
  ssh-keygen -q -t ed25519 -N '' -f "$D/sshd/host_ed25519"
  cp "$D/keys/id_ed25519.pub" "$D/sshd/authorized_keys"
  chmod 644 "$D/sshd/authorized_keys"
  sport=$(free_port)
  cat >"$D/sshd/sshd_config" <<EOF
Port $sport
ListenAddress 127.0.0.1
HostKey $D/sshd/host_ed25519
PidFile $D/sshd/sshd.pid
AuthorizedKeysFile $D/sshd/authorized_keys
# The keys live in the demo's temp dir, not in the user's home.
StrictModes no
UsePAM no
PermitRootLogin no
AllowUsers $ssh_user
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp internal-sftp
EOF
  /usr/sbin/sshd -D -f "$D/sshd/sshd_config" -E "$D/sshd/log" &
  sshd_pid=$!
  pids+=("$sshd_pid")
  if ! wait_port "$sport" "$sshd_pid" 10; then
    ssh_why="sshd did not start: $(tail -n 1 "$D/sshd/log" 2>/dev/null)"
  else
    echo "[127.0.0.1]:$sport $(cat "$D/sshd/host_ed25519.pub")" >>"$D/known_hosts"
    # The same login with OpenSSH's client first: a refusal is then explained here.
    if ! ssh -q -i "$D/keys/id_ed25519" -p "$sport" -o BatchMode=yes -o IdentitiesOnly=yes \
         -o UserKnownHostsFile="$D/known_hosts" -o GlobalKnownHostsFile=/dev/null \
         -o ConnectTimeout=10 -F /dev/null "$ssh_user@127.0.0.1" true </dev/null 2>"$D/ssh-probe.log"; then
      ssh_why="sshd refused $ssh_user's key login: $(grep -v '^$' "$D/sshd/log" | tail -n 1)"
    fi
  fi
fi
if [ -z "$ssh_why" ]; then
  cat >"$D/ssh.json" <<EOF
{"host": "127.0.0.1", "port": $sport, "user": "$ssh_user", "auth": {"key_secret": "demo_ssh_key"},
 "command": "echo \"hello from \$(id -un)@\$(hostname)\"; uname -sr; uptime"}
EOF
  note "sshd on 127.0.0.1:$sport (PID $sshd_pid), login $ssh_user with a key from the agent's secrets"
  run_task "" ssh.exec "$D/ssh.json" || failures=$((failures + 1))
else
  warn "skipped: $ssh_why"
  skipped+=("ssh ($ssh_why)")
fi

# ---- 5. a change request ---------------------------------------------------------------------
if [ -f "$D/plugins/change.so" ]; then
  change_request || failures=$((failures + 1))
else
  say "The change request"
  warn "skipped: the change plugin (change.so) is not built in this tree yet"
  skipped+=("change request (no change plugin in this build)")
fi

# ---- 6. the tables ---------------------------------------------------------------------------
say "The agents table (outpost-server agents list)"
srv agents list | sed 's/^/    /'
say "The tasks (outpost-server task list)"
srv task list | sed 's/^/    /'

say "Done"
if [ $failures -gt 0 ]; then
  printf '%s    %d step(s) failed: see above, and %s%s\n' "$R" "$failures" "$D" "$N"
fi
for s in "${skipped[@]+"${skipped[@]}"}"; do warn "skipped: $s"; done
note "More: README.md, docs/operations.md (install, troubleshooting), docs/server.md, docs/plugins/."
if [ $keep = 1 ]; then
  cat <<EOF

    Everything is still running. In another shell:
      export OUTPOST_DATA_DIR=$D/server
      $SERVER agents list
      $SERVER task list
      $AGENT status --config $CFG
      $AGENT check --config $CFG
EOF
  if [ -t 0 ]; then
    read -r -p "    Press Enter (or Ctrl-C) to stop everything and remove $D. " _ || true
  else
    note "(stdin is not a terminal: stopping now)"
  fi
fi
[ $failures = 0 ] || exit 1
ok=1
