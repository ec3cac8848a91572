#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# nbdinfo --list / --json see every export with its size, flags, description and block sizes;
# the default export "" and the unix socket work.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"

conf=$tmp/oriond.conf
# Also listen on IPv6 loopback (same port number: v6 sockets are v6-only) when the host has it.
have_v6=no
/usr/bin/python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null && have_v6=yes
if [ $have_v6 = yes ]; then nbd_config "$conf" "[::1]:$NBD_PORT"; else nbd_config "$conf"; fi
cat >>"$conf" <<CONF
[node m0]
type = memory
size = 64M

[node m1]
type = memory
size = 1M
block-size = 4096

[node f0]
type = file
path = $tmp/f0.img
size = 3M

[export vol0]
node = m0
protocols = nbd
description = the first volume

[export ro]
node = m1
protocols = nbd
read-only = on

[export file0]
node = f0
protocols = nbd
nbd-default = on
CONF
start_oriond "$conf"
uri=nbd://127.0.0.1:$NBD_PORT

nbdinfo --list --json "$uri" >"$tmp/list.json" || die "nbdinfo --list failed"
# q FILE EXPORT KEY: one field of one export of an nbdinfo --json document.
q() {
        /usr/bin/python3 -c 'import json, sys
e = [x for x in json.load(open(sys.argv[1]))["exports"] if x["export-name"] == sys.argv[2]]
v = e[0].get(sys.argv[3]) if len(e) == 1 else "MISSING"
print(",".join(v) if isinstance(v, list) else json.dumps(v).strip("\""))' "$tmp/list.json" "$@"
}
expect_eq "export names" "$(/usr/bin/python3 -c 'import json, sys
print(",".join(sorted(x["export-name"] for x in json.load(open(sys.argv[1]))["exports"])))' "$tmp/list.json")" \
        "file0,ro,vol0"
expect_eq "vol0 size" "$(q vol0 export-size)" 67108864
expect_eq "ro size" "$(q ro export-size)" 1048576
expect_eq "file0 size" "$(q file0 export-size)" 3145728
expect_eq "vol0 description" "$(q vol0 description)" "the first volume"
expect_eq "vol0 read-only" "$(q vol0 is_read_only)" false
expect_eq "ro read-only" "$(q ro is_read_only)" true
expect_eq "ro can_zero" "$(q ro can_zero)" false
expect_eq "vol0 can_zero" "$(q vol0 can_zero)" true
expect_eq "vol0 can_trim" "$(q vol0 can_trim)" true
expect_eq "vol0 can_fua" "$(q vol0 can_fua)" true
expect_eq "vol0 can_fast_zero" "$(q vol0 can_fast_zero)" true
expect_eq "vol0 can_flush" "$(q vol0 can_flush)" true
expect_eq "vol0 contexts" "$(q vol0 contexts)" "base:allocation"
expect_eq "vol0 block min" "$(q vol0 block_size_minimum)" 1
expect_eq "vol0 block pref" "$(q vol0 block_size_preferred)" 4096
expect_eq "vol0 block max" "$(q vol0 block_size_maximum)" 33554432

# One export alone, with --json, through TCP and the unix socket.
nbdinfo --json "$uri/ro" >"$tmp/ro.json" || die "nbdinfo ro failed"
grep -q '"export-size": 1048576' "$tmp/ro.json" || die "ro json size"
expect_eq "unix size" "$(nbdinfo --size "nbd+unix:///vol0?socket=$NBD_SOCK")" 67108864
if [ $have_v6 = yes ]; then
        expect_eq "IPv6 size" "$(nbdinfo --size "nbd://[::1]:$NBD_PORT/vol0")" 67108864
fi
# "" is the export marked nbd-default.
expect_eq "default export size" "$(nbdinfo --size "$uri/")" 3145728
# An unknown export is refused (NBD_REP_ERR_UNKNOWN), and the server goes on serving.
if nbdinfo --size "$uri/nope" 2>"$tmp/err"; then die "unknown export accepted"; fi
grep -qi "unknown\|no export" "$tmp/err" || { cat "$tmp/err"; die "unexpected error for unknown export"; }
nbdinfo --is read-only "$uri/ro" || die "ro not read-only"
if nbdinfo --is read-only "$uri/vol0"; then die "vol0 reported read-only"; fi
nbdinfo --can multi-conn "$uri/ro" || die "read-only export should allow multi-conn"
# Status of the driver through the control socket.
orionctl --json status >"$tmp/status.json" || die "orionctl status failed"
grep -q "127.0.0.1:$NBD_PORT" "$tmp/status.json" || die "status lacks the NBD listen address"
stop_oriond
