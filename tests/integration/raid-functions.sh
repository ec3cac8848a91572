# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for the raid integration tests: source after functions.sh and nbd-functions.sh.

[ -e "$ORION_PLUGIN_DIR/orion-raid.so" ] || skip "raid plugin not built (no ISA-L)"
[ -e "$ORION_PLUGIN_DIR/orion-error.so" ] || skip "error plugin not built"

# raid_members FILE PREFIX N [SIZE]: file leaves PREFIX-dI, each under an error node PREFIXI
# (injection off until `orionctl ctl PREFIXI enable`).
raid_members() {
        local f=$1 p=$2 n=$3 size=${4:-17M} i
        for ((i = 0; i < n; i++)); do
                cat >>"$f" <<CONF
[node $p-d$i]
type = file
path = $tmp/$p-d$i.img
size = $size

[node $p$i]
type = error
child = $p-d$i
enabled = off

CONF
        done
}

# raid_create NODE LEVEL "CHILDREN" [extra key=value...]: format, add the node, export it.
raid_create() {
        local node=$1 level=$2 children=$3
        shift 3
        orionctl format raid level="$level" children="$children" "$@" >/dev/null || die "format raid$level failed"
        orionctl node-add "$node" raid level="$level" children="$children" "$@" >/dev/null ||
                die "node-add $node failed"
        orionctl export-add "$node" "$node" protocols=nbd >/dev/null || die "export-add $node failed"
}

# raid_json NODE EXPR: evaluate a python expression over `raid status` as `s`.
raid_json() {
        orionctl --json raid status "$1" | /usr/bin/python3 -c "import json,sys; s=json.load(sys.stdin); print($2)"
}

# raid_wait NODE: until background jobs (spare takeover, rebuild, resync, scrub) are done.
raid_wait() {
        wait_for 120 sh -c "[ \"\$($ORIONCTL --socket $CTL_SOCK --json raid status $1 |
                /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"done\"])')\" = True ]" ||
                die "raid $1: background job did not finish"
}

# raid_scrub NODE [repair]: run a scrub to the end, print its mismatch count.
raid_scrub() {
        orionctl raid scrub "$1" start ${2:-} >/dev/null || die "scrub start failed"
        raid_wait "$1"
        raid_json "$1" "s['scrub']['mismatches']"
}

uri_of() { echo "nbd://127.0.0.1:$NBD_PORT/$1"; }

# put FILE NODE / check FILE NODE: whole-device copy in and compare out.
put() { nbdcopy "$1" "$(uri_of "$2")" || die "nbdcopy to $2 failed"; }
check() {
        nbdcopy "$(uri_of "$2")" "$tmp/readback" || die "nbdcopy from $2 failed"
        cmp "$1" "$tmp/readback" || die "$2: data differs from what was written"
}
random_file() { head -c "$2" /dev/urandom >"$1"; }
size_of() { nbdinfo --size "$(uri_of "$1")"; }
