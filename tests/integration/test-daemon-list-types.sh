#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# oriond --list-types [--json]: every node type (built-in and plugin) with its parameters.
. "$(dirname "$0")/functions.sh"
requires python3

"$ORIOND" --list-types >"$tmp/types.txt" || die "--list-types failed"
for t in memory null; do
        grep -q "^$t - " "$tmp/types.txt" || { cat "$tmp/types.txt"; die "type $t missing"; }
done
grep -qE '^    size +size +\(required\)' "$tmp/types.txt" || die "memory's size parameter not shown as required"
grep -qE '^    block-size +size += 512' "$tmp/types.txt" || die "default values not shown"

"$ORIOND" --list-types --json >"$tmp/types.json" || die "--list-types --json failed"
python3 - "$tmp/types.json" "$ORION_PLUGIN_DIR" <<'PY' || die "--list-types --json is wrong"
import json, os, sys
types = {t["name"]: t for t in json.load(open(sys.argv[1]))}
assert {"memory", "null"} <= set(types), types.keys()
mem = {p["name"]: p for p in types["memory"]["params"]}
assert mem["size"]["required"] and mem["size"]["type"] == "size", mem
assert mem["block-size"]["default"] == "512", mem
# every plugin built in the plugin directory is listed
for f in os.listdir(sys.argv[2]):
    if f.startswith("orion-") and f.endswith(".so"):
        assert f[6:-3] in types, f"plugin {f} not listed"
for t in types.values():
    assert t["description"], t["name"]
    for p in t["params"]:
        assert p["help"], (t["name"], p["name"])
PY
# the same list through the control socket
printf '[node m0]\ntype = memory\nsize = 1M\n' >"$tmp/oriond.conf"
start_oriond "$tmp/oriond.conf"
orionctl types | grep -qE '^memory +no +Sparse RAM disk' || die "orionctl types table"
orionctl types memory | grep -qE '^size +size +\(required\)' || die "orionctl types memory"
a=$(orionctl --json types | python3 -c "import json,sys; print(sorted(t['name'] for t in json.load(sys.stdin)))")
b=$(python3 -c "import json; print(sorted(t['name'] for t in json.load(open('$tmp/types.json'))))")
[ "$a" = "$b" ] || die "orionctl types ($a) differs from --list-types ($b)"
stop_oriond
