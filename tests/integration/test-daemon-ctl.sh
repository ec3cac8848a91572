#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# orionctl on a running daemon: add and remove nodes and exports (seen by nbdinfo), and the
# error paths: unknown node, bad parameters, unknown type, node in use (EBUSY), usage errors,
# each with its exit code and a message that names the problem.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
requires python3

conf=$tmp/oriond.conf
nbd_config "$conf"
cat >>"$conf" <<CONF
[node base]
type = memory
size = 16M
CONF
start_oriond "$conf"

# expect_fail RC PATTERN orionctl-args...: exit code and message both checked.
expect_fail() {
        local want=$1 pat=$2 rc=0
        shift 2
        orionctl "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
        [ "$rc" = "$want" ] || { cat "$tmp/out" "$tmp/err" >&2; die "orionctl $*: exit $rc, want $want"; }
        grep -q -- "$pat" "$tmp/err" || { cat "$tmp/err" >&2; die "orionctl $*: message lacks '$pat'"; }
}
json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# ---- nodes
orionctl node-add m1 memory size=8M | grep -q "node 'm1' added (memory, 8M)" || die "node-add output"
orionctl node-add z1 null size=1G >/dev/null
orionctl node-list >"$tmp/list"
grep -qE '^m1 +memory +8M +512 +ok' "$tmp/list" || { cat "$tmp/list"; die "node-list table lacks m1"; }
grep -qE '^z1 +null +1G' "$tmp/list" || { cat "$tmp/list"; die "node-list table lacks z1"; }
[ "$(orionctl --json node-list | json_get 'len(d)')" = 3 ] || die "node-list --json count"
[ "$(orionctl --json node-info m1 | json_get 'd["size"]')" = 8388608 ] || die "node-info size"
[ "$(orionctl node-info m1 --json --stats | json_get '"read" in d["stats"]')" = True ] || die "node-info --stats"

# ---- exports, checked with a real NBD client
orionctl export-add e1 m1 description="first export" | grep -q "export 'e1' added (node 'm1', nbd)" ||
        die "export-add output"
orionctl export-add e1ro m1 protocols=nbd read-only=on >/dev/null
orionctl export-list | grep -qE '^e1ro +m1 +nbd +ro' || die "export-list table lacks e1ro"
nbdinfo --list "nbd://127.0.0.1:$NBD_PORT" >"$tmp/nbdlist"
grep -q 'export="e1"' "$tmp/nbdlist" || { cat "$tmp/nbdlist"; die "nbdinfo --list does not show e1"; }
grep -q 'export="e1ro"' "$tmp/nbdlist" || die "nbdinfo --list does not show e1ro"
[ "$(nbdinfo --size "nbd://127.0.0.1:$NBD_PORT/e1")" = 8388608 ] || die "e1 has the wrong size"
nbdinfo --json "nbd://127.0.0.1:$NBD_PORT/e1ro" | grep -q '"is_read_only": true' || die "e1ro is not read-only"
# data written through one export is read back through the other (same node)
head -c 1M /dev/urandom >"$tmp/data"
nbdcopy "$tmp/data" "nbd://127.0.0.1:$NBD_PORT/e1"
nbdcopy "nbd://127.0.0.1:$NBD_PORT/e1ro" "$tmp/back"
cmp -n 1048576 "$tmp/data" "$tmp/back" || die "data differs between exports of one node"

# ---- node in use
expect_fail 1 "in use" node-remove m1
orionctl node-add d1 delay child=z1 >/dev/null
expect_fail 1 "in use (1 parent node" node-remove z1
orionctl export-remove e1 | grep -q "export 'e1' removed" || die "export-remove output"
expect_fail 1 "in use" node-remove m1      # e1ro still holds it
orionctl export-remove e1ro >/dev/null
! nbdinfo --list "nbd://127.0.0.1:$NBD_PORT" 2>/dev/null | grep -q 'export="e1' || die "removed export still listed"
orionctl node-remove m1 | grep -q "node 'm1' removed" || die "node-remove output"
orionctl node-remove d1 >/dev/null
orionctl node-remove z1 >/dev/null
[ "$(orionctl --json node-list | json_get '[n["name"] for n in d]')" = "['base']" ] || die "nodes left behind"

# ---- errors
expect_fail 1 "no node named 'ghost'" node-info ghost
expect_fail 1 "no node named 'ghost'" node-remove ghost
expect_fail 1 "no node named 'ghost'" export-add eg ghost
expect_fail 1 "no export named 'ghost'" export-remove ghost
expect_fail 1 "no node named 'ghost'" ctl ghost status
expect_fail 1 "'abc' is not a size" node-add bad memory size=abc
expect_fail 1 "sise" node-add bad memory sise=1M
expect_fail 1 "unknown node type 'warp'" node-add bad warp size=1M
expect_fail 1 "already exists" node-add base memory size=1M
expect_fail 1 "invalid node name" node-add "a/b" memory size=1M
expect_fail 1 "invalid protocols" export-add eb base protocols=ftp
expect_fail 2 "expected key=value" node-add bad memory 1M
expect_fail 2 "usage: orionctl node-add" node-add onlyname
expect_fail 2 "unknown verb 'frobnicate'" frobnicate
expect_fail 2 "unknown option '--bogus'" --bogus status
expect_fail 2 "does not apply" --force node-list
expect_fail 2 "is a 'memory', not a 'raid'" raid replace base a b
expect_fail 1 "no node named 'ghost'" raid replace ghost a b
expect_fail 1 "has no management verbs" ctl base explode
orionctl node-add d2 delay child=base >/dev/null
expect_fail 1 "delay: unknown verb 'explode'" ctl d2 explode
expect_fail 1 "does not report job progress" ctl d2 status --wait
expect_fail 2 "is not a JSON object" ctl d2 set '{"read-delay":'
orionctl ctl d2 set '{"read-delay":"1ms"}' >/dev/null || die "ctl with a JSON argument"
orionctl ctl d2 set write-delay=2ms >/dev/null || die "ctl with key=value"
orionctl --json ctl d2 status | grep -q '"write-delay"' || die "ctl status after set"
orionctl node-remove d2 >/dev/null
# the daemon is still healthy after all of that
orionctl status | grep -q "health ok" || die "status after errors"
stop_oriond
