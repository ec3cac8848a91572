#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Style gate run by CI: forbidden functions, // comments, SPDX lines. Exit 1 on any finding.
set -u
cd "$(dirname "$0")/.."
rc=0
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find src plugins include tests -name '*.[ch]')
for f in $files; do
        head -n 2 "$f" | grep -q 'SPDX-License-Identifier' || { echo "$f: missing SPDX line"; rc=1; }
        # Code only: blank out string literals before looking.
        code=$(sed -e 's/"\([^"\\]\|\\.\)*"/""/g' "$f")
        out=$(grep -nE '(^|[^:])//' <<<"$code" | sed "s|^|$f: // comment: |")
        [ -z "$out" ] || { echo "$out"; rc=1; }
        out=$(grep -nE '\b(atoi|atol|strcpy|sprintf|strtok|gets|strcat)[[:space:]]*\(' <<<"$code" |
                sed "s|^|$f: forbidden function: |")
        [ -z "$out" ] || { echo "$out"; rc=1; }
done
exit $rc
