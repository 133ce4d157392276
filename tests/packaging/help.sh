#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# --help, the man pages, bash completion and the docs against each other and the binaries:
# every command answers --help (exit 0, a usage line); bash completion offers exactly the
# options each command's help names; the man pages render without warnings and name every
# command and option; and every outpost-agent / outpost-server command line written in
# README.md and docs/ names a real command and only options its help knows.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
A=$OUTPOST_AGENT
S=$OUTPOST_SERVER
PK=$OUTPOST_SOURCE_DIR/packaging
# The completion scripts call the commands by name.
mkdir -p "$T/bin"
ln -s "$A" "$T/bin/outpost-agent"
ln -s "$S" "$T/bin/outpost-server"
export PATH="$T/bin:$PATH"

agent_cmds=(run status drain undrain install check rotate-cert uninstall "plugins list" "plugin run" version)
server_cmds=(init serve backup "token create" "token list" "token revoke" "admin-token create"
  "admin-token list" "admin-token revoke" "agents list" "agents show" "agents drain"
  "agents undrain" "agents revoke" "agents delete" "task submit" "task show" "task logs"
  "task list" "task cancel" "task resolve" "task artifacts" "task artifact" "cr create"
  "cr approve" "cr reject" "cr show" "cr list" "settings show" "settings set" "audit list"
  status whoami)

# ---- every command answers --help ------------------------------------------------------------
for bin in agent server; do
  if [ $bin = agent ]; then exe=$A; cmds=("${agent_cmds[@]}"); else exe=$S; cmds=("${server_cmds[@]}"); fi
  name=outpost-$bin
  t_run 0 "$T/$bin.help" "$exe" --help
  t_expect_contains "$T/$bin.help" "usage: $name COMMAND"
  for c in "${cmds[@]}"; do
    f="$T/$bin.${c// /_}.help"
    # shellcheck disable=SC2086
    t_run 0 "$f" "$exe" $c --help
    [ -s "$f" ] || t_fail "$name $c --help printed nothing"
    [ "$c" = version ] || t_expect_contains "$f" "usage: $name ${c%% *}"
    # the top-level help names the command (and each subcommand)
    grep -qE "(^|[ |])${c%% *}( |\||$)" "$T/$bin.help" || t_fail "$name --help does not list $c"
    if [ "$c" != "${c%% *}" ] && [ $bin = server ]; then
      grep -E "^  ${c%% *} " "$T/$bin.help" | grep -qE "[ |]${c##* }(\||$| )" ||
        t_fail "outpost-server --help does not list $c"
    fi
  done
done
t_run 2 "$T/bad.out" "$A" no-such-command
t_run 2 "$T/bad2.out" "$S" no-such-command

# ---- bash completion offers what the help names -----------------------------------------------
[ -f /usr/share/bash-completion/bash_completion ] || t_fail "bash-completion is not installed (scripts/deps.sh)"
# comp SCRIPT FUNC WORD...: the candidates for the last word, one a line, sorted
comp() {
  local script=$1 fn=$2
  shift 2
  bash -c '
    . /usr/share/bash-completion/bash_completion
    . "$1"
    fn=$2; shift 2
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    "$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf "%s\n" "${COMPREPLY[@]}"' _ "$script" "$fn" "$@" | sort -u
}
# the options a help text names
opts_of() { grep -oE -- '(^|[][ ,|(])--[a-z][a-z-]*' "$1" | grep -oE -- '--[a-z-]+' | sort -u; }

comp "$PK/bash-completion/outpost-agent" _outpost_agent outpost-agent "" >"$T/c.top"
for c in "${agent_cmds[@]}"; do
  grep -qx "${c%% *}" "$T/c.top" || t_fail "completion: outpost-agent does not offer $c"
  # shellcheck disable=SC2086
  comp "$PK/bash-completion/outpost-agent" _outpost_agent outpost-agent $c -- | grep -v '^--help$' >"$T/c.opts" || true
  opts_of "$T/agent.${c// /_}.help" | grep -v '^--help$' >"$T/h.opts" || true
  diff "$T/h.opts" "$T/c.opts" >"$T/diff" ||
    { cat "$T/diff" >&2; t_fail "completion of outpost-agent $c differs from its --help (< help, > completion)"; }
done
comp "$PK/bash-completion/outpost-agent" _outpost_agent outpost-agent run --log-level "" >"$T/c.ll"
t_expect_eq "debug error info warn" "$(tr '\n' ' ' <"$T/c.ll" | sed 's/ $//')" "completion of --log-level"

comp "$PK/bash-completion/outpost-server" _outpost_server outpost-server "" >"$T/c.stop"
admin_opts=$(printf '%s\n' --data-dir --admin-config --server --token-file --ca-file --json --help)
for c in "${server_cmds[@]}"; do
  grep -qx "${c%% *}" "$T/c.stop" || t_fail "completion: outpost-server does not offer ${c%% *}"
  if [ "$c" != "${c%% *}" ]; then
    comp "$PK/bash-completion/outpost-server" _outpost_server outpost-server ${c%% *} "" >"$T/c.subs"
    grep -qx "${c##* }" "$T/c.subs" || t_fail "completion: outpost-server ${c%% *} does not offer ${c##* }"
  fi
  # shellcheck disable=SC2086
  comp "$PK/bash-completion/outpost-server" _outpost_server outpost-server $c -- >"$T/c.opts"
  # the options of this command's usage line(s) in its group's help
  python3 - "$T/server.${c// /_}.help" "$c" <<'PY' >"$T/h.opts"
import re, sys
text, cmd = open(sys.argv[1]).read(), sys.argv[2]
lines, cur = [], None
for line in text.splitlines():
    m = re.match(r"^(?:usage:)?\s*outpost-server (.*)$", line)
    if m:
        cur = [m.group(1)]
        lines.append(cur)
    elif cur is not None and re.match(r"^\s{10,}\[", line):
        cur.append(line)
    else:
        cur = None
opts = set()
for l in lines:
    s = " ".join(l)
    if s == cmd or s.startswith(cmd + " "):
        opts |= set(re.findall(r"--[a-z][a-z-]*", s))
print("\n".join(sorted(opts)))
PY
  while read -r o; do
    [ -z "$o" ] || grep -qx -- "$o" "$T/c.opts" || t_fail "completion of outpost-server $c lacks $o (from its --help)"
  done <"$T/h.opts"
  while read -r o; do
    grep -qx -- "$o" "$T/h.opts" || grep -qx -- "$o" <<<"$admin_opts" ||
      { [ "$c" = serve ] && grep -q -- "^  $o " "$T/server.serve.help"; } ||
      { [ "$c" = "admin-token create" ] && [ "$o" = --offline ]; } ||
      t_fail "completion of outpost-server $c offers $o, which its --help does not name"
  done <"$T/c.opts"
done
# serve: every setting of serve --help
comp "$PK/bash-completion/outpost-server" _outpost_server outpost-server serve --data-dir x -- >"$T/c.serve"
for o in $(grep -oE -- '^  --[a-z-]+' "$T/server.serve.help"); do
  grep -qx -- "$o" "$T/c.serve" || t_fail "completion of serve lacks $o"
done

# ---- man pages ---------------------------------------------------------------------------------
command -v man >/dev/null || t_fail "man is not installed (scripts/deps.sh: man-db)"
for page in outpost-agent outpost-server; do
  MANWIDTH=100 LC_ALL=C.UTF-8 man --warnings -l "$PK/man/$page.8" >"$T/$page.man" 2>"$T/$page.warn" ||
    t_fail "man $page failed"
  [ ! -s "$T/$page.warn" ] || { cat "$T/$page.warn" >&2; t_fail "man $page: warnings"; }
  # one space between words: options and commands are found whatever the line breaks
  tr -s ' \n' '  ' <"$T/$page.man" | sed 's/‐ /-/g; s/‐/-/g' >"$T/$page.flat"
done
V=$("$A" version | awk '{print $2}')
t_expect_contains "$T/outpost-agent.man" "Outpost $V"
for c in "${agent_cmds[@]}"; do
  t_expect_contains "$T/outpost-agent.flat" "$c"
  for o in $(opts_of "$T/agent.${c// /_}.help"); do
    t_expect_contains "$T/outpost-agent.flat" "$o"
  done
done
for c in "${server_cmds[@]}"; do
  grep -qE -- "${c%% *}[^a-z-]" "$T/outpost-server.flat" || t_fail "man outpost-server lacks ${c%% *}"
  grep -qF -- "${c##* }" "$T/outpost-server.flat" || t_fail "man outpost-server lacks $c"
done
for o in $(grep -oE -- '^  --[a-z-]+' "$T/server.serve.help"); do
  t_expect_contains "$T/outpost-server.flat" "$o"
done

# ---- the docs: every command line names real commands and options --------------------------------
python3 - "$OUTPOST_SOURCE_DIR" "$T" <<'PY' || t_fail "the docs name commands or options the binaries do not have"
import re, shlex, sys, subprocess
src, t = sys.argv[1], sys.argv[2]
agent_cmds = {"run", "status", "drain", "undrain", "install", "check", "rotate-cert", "uninstall",
              "plugins", "plugin", "version"}
def help_of(binary, words):
    r = subprocess.run([binary] + words + ["--help"], capture_output=True, text=True)
    return r.stdout + r.stderr
bad = 0
import glob, os
docs = ["README.md"] + sorted(os.path.relpath(f, src) for f in glob.glob(src + "/docs/*.md") + glob.glob(src + "/docs/plugins/*.md"))
for doc in docs:
    text = open(src + "/" + doc).read()
    # command lines in code: indented blocks, fenced blocks and `inline code`
    cands = re.findall(r"(?m)^(?: {4,}|\t)(?:\$ )?((?:sudo )?outpost-(?:agent|server) [a-z-].*)$", text)
    cands += re.findall(r"`((?:outpost-(?:agent|server)) [a-z-][^`]*)`", text)
    for line in cands:
        line = line.split("  #")[0].split(" # ")[0].rstrip(" \\")
        line = re.sub(r"^sudo ", "", line)
        try:
            words = shlex.split(line.replace("|", " | ").replace("&&", " && "))
        except ValueError:
            words = line.split()
        cut = next((i for i, w in enumerate(words) if w in ("|", "&&", ";", ">", "<", "2>&1") or w.startswith(">")), len(words))
        words = words[:cut]
        binary, args = words[0], words[1:]
        exe = t + "/bin/" + binary
        cmd = [a for a in args if not a.startswith("-")][:2]
        if not cmd:
            continue
        if binary == "outpost-agent":
            if cmd[0] not in agent_cmds:
                print(f"{doc}: unknown command: {line}"); bad += 1; continue
            words_for_help = cmd[:2] if cmd[0] in ("plugins", "plugin") else cmd[:1]
        else:
            words_for_help = cmd[:2] if cmd[0] not in ("init", "serve", "backup", "status", "whoami", "version") else cmd[:1]
        h = help_of(exe, words_for_help)
        if "usage:" not in h:
            print(f"{doc}: no help for {binary} {' '.join(words_for_help)}: {line}"); bad += 1; continue
        known = set(re.findall(r"--[a-z][a-z-]*", h))
        if binary == "outpost-server":
            known |= set(re.findall(r"--[a-z][a-z-]*", help_of(exe, [])))
        for a in args:
            if a.startswith("--"):
                o = a.split("=")[0]
                if o not in known and o != "--help":
                    print(f"{doc}: {o} is not an option of {binary} {' '.join(words_for_help)}: {line}"); bad += 1
print(f"checked the command lines of the docs: {bad} problem(s)")
sys.exit(1 if bad else 0)
PY
# ---- the docs' links: every relative link and #anchor resolves ------------------------------------
python3 - "$OUTPOST_SOURCE_DIR" <<'PY' || t_fail "broken links in the docs"
import glob, os, re, sys
src = sys.argv[1]
def anchors(path):
    out, seen = set(), {}
    in_code = False
    for line in open(path):
        if line.startswith("```"):
            in_code = not in_code
        m = None if in_code else re.match(r"^#{1,6} (.*?)\s*$", line)
        if m:
            a = re.sub(r"[^\w\- ]", "", m.group(1).lower().replace("`", "")).replace(" ", "-")
            n = seen.get(a, 0)
            seen[a] = n + 1
            out.add(a if n == 0 else "%s-%d" % (a, n))
    return out
bad = 0
for doc in ["README.md"] + glob.glob(src + "/docs/*.md") + glob.glob(src + "/docs/plugins/*.md"):
    path = doc if doc.startswith("/") else os.path.join(src, doc)
    text = open(path).read()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        file, _, frag = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        # README.md and the operations guide must be right; elsewhere a broken link is reported
        mine = os.path.relpath(path, src) in ("README.md", "docs/operations.md")
        what = "" if mine else "warning: "
        if not os.path.exists(dest):
            print("%s%s: link to a missing file: %s" % (what, os.path.relpath(path, src), target)); bad += mine
        elif frag and dest.endswith(".md") and frag not in anchors(dest):
            print("%s%s: no heading for #%s in %s" % (what, os.path.relpath(path, src), frag, os.path.relpath(dest, src))); bad += mine
sys.exit(1 if bad else 0)
PY
echo PASS
