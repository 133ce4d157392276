#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# House rules a compiler does not check: no raw unbounded string functions in C (style.md 5),
# and every source file starts with its SPDX line (style.md 12).
set -euo pipefail
cd "$OUTPOST_SOURCE_DIR"
fail=0
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')
# strcpy, strcat, sprintf, vsprintf, gets, atoi, atol, atof: unbounded or unchecked.
if grep -nE '(^|[^_a-zA-Z0-9])(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atof)[[:space:]]*\(' $files \
   | grep -vE ':[0-9]+:[[:space:]]*(/\*|\*|//)' ; then
  echo "style: the calls above are banned (use op_strlcpy, snprintf, op_parse_i64, strtol...)" >&2
  fail=1
fi
for f in $files $(git ls-files '*.sh' 'CMakeLists.txt' '*/CMakeLists.txt' '*.cmake' 2>/dev/null); do
  head -n 3 "$f" | grep -q 'SPDX-License-Identifier' || { echo "style: $f has no SPDX line in its first lines" >&2; fail=1; }
done
[ $fail = 0 ] && echo "style: ok ($(echo $files | wc -w) C files)"
exit $fail
