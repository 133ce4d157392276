# SPDX-License-Identifier: Apache-2.0
# Fixtures for the ssh plugin's tests: a dedicated login user, keys, and OpenSSH sshd instances
# on 127.0.0.1 with their own config, host key, authorized_keys and log. Source it after
# tests/lib.sh. Every sshd runs in the foreground (-D) and is stopped by PID at exit.
#
#   ssh_fixture_init              user, client keys, known_hosts, agent config, secrets file
#   sshd_start NAME [LINE...]     starts sshd NAME (extra sshd_config lines); sets SSHD_PORT
#   ssh_task FILE TYPE PARAMS     writes a task file (PARAMS: a JSON object's inner text)
#   ssh_run RC OUT FILE [ARGS]    runs the task through outpost-agent plugin run
#
# The login user has /bin/sh as its shell: root's .bashrc here is slow (measured.md).

# These tests drive the plugin through `outpost-agent plugin run`; without it they skip.
if [ -z "${OUTPOST_AGENT:-}" ] || [ ! -x "$OUTPOST_AGENT" ]; then
  echo "SKIP: outpost-agent is not built, so plugin run is not available" >&2
  trap - EXIT
  rm -rf "$T"
  exit 77
fi

# Debian's python3 first: a pyenv shim on PATH costs ~0.3 s per t_json call here.
if [ -x /usr/bin/python3 ]; then
  PATH=/usr/bin:$PATH
fi

SSH_USER=outpost-ssh-test
SSH_PASSWORD=outpost-ssh-test-password

# The user every test logs in as. Created once per machine; its password is fixed so the
# password tests can use it (only the tests' own sshd instances, on loopback, accept it).
ssh_fixture_user() {
  (
    # Tests run in parallel: one at a time edits /etc/passwd and /etc/shadow.
    flock 9
    if ! id "$SSH_USER" >/dev/null 2>&1; then
      useradd -m -s /bin/sh "$SSH_USER"
      usermod -p '*' "$SSH_USER"
    fi
    if [ ! -f "/home/$SSH_USER/.outpost-pw-set" ]; then
      echo "$SSH_USER:$SSH_PASSWORD" | chpasswd
      touch "/home/$SSH_USER/.outpost-pw-set"
    fi
  ) 9>/tmp/outpost-ssh-user.lock
  id "$SSH_USER" >/dev/null || t_fail "cannot create the test user $SSH_USER"
}

ssh_fixture_init() {
  ssh_fixture_user
  mkdir -p /run/sshd
  chmod 755 /run/sshd
  mkdir -p "$T/keys" "$T/remote"
  chown "$SSH_USER" "$T/remote"
  ssh-keygen -q -t ed25519 -N '' -C outpost-test -f "$T/keys/id_ed25519"
  ssh-keygen -q -t ed25519 -N '' -C outpost-other -f "$T/keys/other"
  : > "$T/known_hosts"
  printf '%s' "$SSH_PASSWORD" > "$T/keys/password"
  cat > "$T/secrets.yaml" <<EOF
secrets:
  key: "file:$T/keys/id_ed25519"
  other_key: "file:$T/keys/other"
  password: "file:$T/keys/password"
  fenced_key:
    from: "file:$T/keys/id_ed25519"
    allow:
      hosts: ["db.example.com"]
EOF
  ssh_agent_config
}

# ssh_agent_config [EXTRA_SSH_SETTINGS_YAML]: the agent config that enables the ssh plugin.
ssh_agent_config() {
  cat > "$T/agent.yaml" <<EOF
plugins:
  dir: $OUTPOST_PLUGIN_DIR
  enabled: [ssh]
  config:
    ssh:
      known_hosts: $T/known_hosts
${1:-}
EOF
}

# sshd_start NAME [sshd_config lines...]: starts an sshd on a free port; SSHD_PORT is set.
sshd_start() {
  local name=$1 dir="$T/sshd-$1" port i
  shift
  mkdir -p "$dir"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
  cp "$T/keys/id_ed25519.pub" "$dir/authorized_keys"
  chmod 644 "$dir/authorized_keys"
  for i in 1 2 3 4 5; do
    port=$(t_free_port)
    {
      # sshd takes the first value of a keyword: the test's own lines come first.
      for line in "$@"; do echo "$line"; done
      echo "Port $port"
      echo "ListenAddress 127.0.0.1"
      echo "HostKey $dir/host_ed25519"
      echo "PidFile $dir/sshd.pid"
      echo "AuthorizedKeysFile $dir/authorized_keys"
      echo "StrictModes no"
      echo "UsePAM no"
      echo "PermitRootLogin no"
      echo "AllowUsers $SSH_USER"
      echo "PasswordAuthentication no"
      echo "KbdInteractiveAuthentication no"
      echo "Subsystem sftp internal-sftp"
      echo "LogLevel VERBOSE"
      echo "MaxStartups 200"
      echo "MaxSessions 50"
    } > "$dir/sshd_config"
    /usr/sbin/sshd -D -f "$dir/sshd_config" -E "$dir/log" &
    local pid=$!
    t_track "$pid"
    for _ in $(seq 1 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        SSHD_PORT=$port
        echo "[127.0.0.1]:$port $(cat "$dir/host_ed25519.pub")" >> "$T/known_hosts"
        eval "SSHD_PID_$name=$pid"
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill "$pid" 2>/dev/null || true
  done
  cat "$dir/log" >&2 || true
  t_fail "sshd $name did not start"
}

# The SHA256 fingerprint of sshd NAME's host key, as ssh-keygen -l prints it.
sshd_fingerprint() {
  ssh-keygen -lf "$T/sshd-$1/host_ed25519.pub" | awk '{print $2}'
}

# ssh_task FILE TYPE PARAMS [TIMEOUT]: PARAMS is the inside of the params object.
ssh_task() {
  printf '{"type": "%s", "timeout": "%s", "params": {%s}}\n' "$2" "${4:-60s}" "$3" > "$1"
}

# The connection params for sshd on PORT with the test key.
ssh_conn() {
  printf '"host": "127.0.0.1", "port": %s, "user": "%s", "auth": {"key_secret": "key"}' \
    "$1" "$SSH_USER"
}

# ssh_run RC OUT TASKFILE [extra plugin run args]: stdout (the JSON) to OUT, stderr to OUT.log
ssh_run() {
  local want=$1 out=$2 task=$3 rc=0
  shift 3
  "$OUTPOST_AGENT" plugin run --task "$task" --plugins-dir "$OUTPOST_PLUGIN_DIR" \
    --secrets "$T/secrets.yaml" --config "$T/agent.yaml" --workspace "${SSH_WORKSPACE:-$T/ws}" \
    "$@" >"$out" 2>"$out.log" || rc=$?
  if [ "$rc" != "$want" ]; then
    echo "--- stdout:" >&2; cat "$out" >&2
    echo "--- stderr:" >&2; tail -n 40 "$out.log" >&2
    t_fail "plugin run: exit code expected $want, got $rc"
  fi
}

# ssh_expect_error OUT TEXT: the task's error (what the user sees) contains TEXT.
ssh_expect_error() {
  local err
  err=$(t_json "$1" .error)
  t_expect_contains "$err" "$2"
}
