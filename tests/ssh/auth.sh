#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ssh plugin authentication against a real sshd: key, encrypted key, password, ssh-agent,
# wrong key, and secrets that are unknown or fenced off.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/ssh/fixture.sh"
ssh_fixture_init
ssh-keygen -q -t ed25519 -N 'correct horse' -C outpost-enc -f "$T/keys/enc"
printf 'correct horse\n' > "$T/keys/passphrase"
printf 'wrong horse' > "$T/keys/bad_passphrase"
printf 'not-the-password' > "$T/keys/badpw"
{
  echo "  enc_key: \"file:$T/keys/enc\""
  echo "  passphrase: \"file:$T/keys/passphrase\""
  echo "  bad_passphrase: \"file:$T/keys/bad_passphrase\""
  echo "  badpw: \"file:$T/keys/badpw\""
} >> "$T/secrets.yaml"
sshd_start a "PasswordAuthentication yes"
cat "$T/keys/enc.pub" >> "$T/sshd-a/authorized_keys"
P=$SSHD_PORT
H="\"host\": \"127.0.0.1\", \"port\": $P, \"user\": \"$SSH_USER\""

t_log "key from a secret"
ssh_task "$T/k.json" ssh.exec "$H, \"auth\": {\"key_secret\": \"key\"}, \"command\": \"echo ok\""
ssh_run 0 "$T/k" "$T/k.json"
t_expect_eq ok "$(t_json "$T/k" .result.stdout)"

t_log "encrypted key with its passphrase (the file secret's trailing newline is dropped)"
ssh_task "$T/e.json" ssh.exec "$H, \"auth\": {\"key_secret\": \"enc_key\", \"passphrase_secret\": \"passphrase\"}, \"command\": \"echo ok\""
ssh_run 0 "$T/e" "$T/e.json"

t_log "encrypted key without a passphrase"
ssh_task "$T/e2.json" ssh.exec "$H, \"auth\": {\"key_secret\": \"enc_key\"}, \"command\": \"true\""
ssh_run 1 "$T/e2" "$T/e2.json"
t_expect_eq 'secret "enc_key" (params.auth.key_secret) does not hold a private key that libssh can read (OpenSSH or PEM format), or the key is encrypted: then give its passphrase in auth.passphrase_secret' "$(t_json "$T/e2" .error)"

t_log "encrypted key with a wrong passphrase"
ssh_task "$T/e3.json" ssh.exec "$H, \"auth\": {\"key_secret\": \"enc_key\", \"passphrase_secret\": \"bad_passphrase\"}, \"command\": \"true\""
ssh_run 1 "$T/e3" "$T/e3.json"
t_expect_eq 'secret "enc_key" (params.auth.key_secret) could not be read as a private key with the passphrase from secret "bad_passphrase": wrong passphrase, or not a key in OpenSSH or PEM format' "$(t_json "$T/e3" .error)"

t_log "password from a secret"
ssh_task "$T/p.json" ssh.exec "$H, \"auth\": {\"password_secret\": \"password\"}, \"command\": \"echo ok\""
ssh_run 0 "$T/p" "$T/p.json"
t_expect_eq ok "$(t_json "$T/p" .result.stdout)"

t_log "wrong key"
ssh_task "$T/w.json" ssh.exec "$H, \"auth\": {\"key_secret\": \"other_key\"}, \"command\": \"true\""
ssh_run 1 "$T/w" "$T/w.json"
t_expect_eq "authentication failed for $SSH_USER@127.0.0.1:$P: the server refused the key from secret \"other_key\" (it accepts: publickey, password). Check params.user, and that the key is in the user's authorized_keys on the host" "$(t_json "$T/w" .error)"

t_log "wrong key, then a wrong password"
ssh_task "$T/w2.json" ssh.exec "$H, \"auth\": {\"key_secret\": \"other_key\", \"password_secret\": \"badpw\"}, \"command\": \"true\""
ssh_run 1 "$T/w2" "$T/w2.json"
t_expect_eq "authentication failed for $SSH_USER@127.0.0.1:$P: the server refused the key from secret \"other_key\" and the password from secret \"badpw\" (it accepts: publickey, password). Check params.user, and that the key is in the user's authorized_keys on the host, and the password (and that the server allows password logins)" "$(t_json "$T/w2" .error)"

t_log "a wrong key falls through to a right password"
ssh_task "$T/w3.json" ssh.exec "$H, \"auth\": {\"key_secret\": \"other_key\", \"password_secret\": \"password\"}, \"command\": \"echo ok\""
ssh_run 0 "$T/w3" "$T/w3.json"

t_log "a user the server does not know"
ssh_task "$T/u.json" ssh.exec "\"host\": \"127.0.0.1\", \"port\": $P, \"user\": \"nobody-here\", \"auth\": {\"key_secret\": \"key\"}, \"command\": \"true\""
ssh_run 1 "$T/u" "$T/u.json"
t_expect_contains "$(t_json "$T/u" .error)" "authentication failed for nobody-here@127.0.0.1:$P: the server refused the key from secret \"key\""

t_log "unknown secret"
ssh_task "$T/s.json" ssh.exec "$H, \"auth\": {\"key_secret\": \"nokey\"}, \"command\": \"true\""
ssh_run 1 "$T/s" "$T/s.json"
t_expect_eq 'secret "nokey" is not available for 127.0.0.1 (unknown, or refused by its allow list)' "$(t_json "$T/s" .error)"

t_log "a secret fenced to other hosts is refused for this one"
ssh_task "$T/f.json" ssh.exec "$H, \"auth\": {\"key_secret\": \"fenced_key\"}, \"command\": \"true\""
ssh_run 1 "$T/f" "$T/f.json"
t_expect_eq 'secret "fenced_key" is not available for 127.0.0.1 (unknown, or refused by its allow list)' "$(t_json "$T/f" .error)"

t_log "a secret that is not a key"
ssh_task "$T/n.json" ssh.exec "$H, \"auth\": {\"key_secret\": \"password\"}, \"command\": \"true\""
ssh_run 1 "$T/n" "$T/n.json"
t_expect_contains "$(t_json "$T/n" .error)" 'secret "password" (params.auth.key_secret) does not hold a private key'

t_log "ssh-agent without SSH_AUTH_SOCK allowed through env_allow"
ssh_task "$T/a.json" ssh.exec "$H, \"auth\": {\"agent\": true}, \"command\": \"echo ok\""
agent_out=$(ssh-agent -s -a "$T/agent.sock")
eval "$agent_out" >/dev/null
t_track "$SSH_AGENT_PID"
ssh-add -q "$T/keys/id_ed25519" 2>/dev/null
ssh_run 1 "$T/a1" "$T/a.json"
t_expect_eq "params.auth.agent: SSH_AUTH_SOCK is not set for the ssh plugin's workers: list it in plugins.config.ssh.env_allow in the agent config, and make sure the agent itself runs with SSH_AUTH_SOCK set" "$(t_json "$T/a1" .error)"

t_log "ssh-agent with SSH_AUTH_SOCK in env_allow"
ssh_agent_config "      env_allow: [SSH_AUTH_SOCK]"
ssh_run 0 "$T/a2" "$T/a.json"
t_expect_eq ok "$(t_json "$T/a2" .result.stdout)"

t_log "no method at all"
ssh_task "$T/z.json" ssh.exec "$H, \"auth\": {}, \"command\": \"true\""
ssh_run 2 "$T/z" "$T/z.json"
t_expect_eq "params.auth: give key_secret, password_secret or agent: true" "$(t_json "$T/z" .error)"
t_expect_eq invalid "$(t_json "$T/z" .status)"

t_log "a passphrase without a key"
ssh_task "$T/z2.json" ssh.exec "$H, \"auth\": {\"password_secret\": \"password\", \"passphrase_secret\": \"passphrase\"}, \"command\": \"true\""
ssh_run 2 "$T/z2" "$T/z2.json"
t_expect_eq "params.auth.passphrase_secret: only used with key_secret" "$(t_json "$T/z2" .error)"

t_log "secrets never reach the task log or the result"
for f in "$T"/*.log "$T"/k "$T"/p "$T"/e; do
  t_expect_not_contains "$f" "$SSH_PASSWORD"
  t_expect_not_contains "$f" "correct horse"
  t_expect_not_contains "$f" "OPENSSH PRIVATE KEY"
done

t_log "a password over keyboard-interactive (PAM) when the server offers no password method"
sshd_start k "UsePAM yes" "KbdInteractiveAuthentication yes"
ssh_task "$T/kb.json" ssh.exec "\"host\": \"127.0.0.1\", \"port\": $SSHD_PORT, \"user\": \"$SSH_USER\", \"auth\": {\"password_secret\": \"password\"}, \"command\": \"echo kbd\""
ssh_run 0 "$T/kb" "$T/kb.json"
t_expect_eq kbd "$(t_json "$T/kb" .result.stdout)"
t_wait_for 5 grep -q "Accepted keyboard-interactive/pam for $SSH_USER" "$T/sshd-k/log"
ssh_task "$T/kb2.json" ssh.exec "\"host\": \"127.0.0.1\", \"port\": $SSHD_PORT, \"user\": \"$SSH_USER\", \"auth\": {\"password_secret\": \"badpw\"}, \"command\": \"true\""
ssh_run 1 "$T/kb2" "$T/kb2.json"
t_expect_contains "$(t_json "$T/kb2" .error)" "the server refused the password from secret \"badpw\" (it accepts: publickey, keyboard-interactive)"
