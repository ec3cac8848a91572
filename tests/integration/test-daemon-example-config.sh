#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The shipped example config/oriond.conf starts as written (paths moved into the test's
# directory) and serves its exports.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
requires python3
[ -e "$ORION_PLUGIN_DIR/orion-delay.so" ] || skip "delay plugin not built"

conf=$tmp/oriond.conf
sed -e "s|/var/lib/orion|$tmp/state|g" -e "s|/run/orion/oriond.sock|$CTL_SOCK|" \
    -e "s|^nbd-listen = .*|nbd-listen = 127.0.0.1:$NBD_PORT unix:$NBD_SOCK|" \
    -e "s|/run/orion/fuse|$tmp/fuse|" "$ORION_SOURCE_ROOT/config/oriond.conf" >"$conf"
grep -q "^\[export scratch\]" "$conf" || die "example lost its exports"
fuse=yes
# FUSE needs root and /dev/fuse; without them the example's fuse export is NBD only.
if [ "$(id -u)" != 0 ] || [ ! -c /dev/fuse ]; then
        fuse=no
        sed -i 's/^protocols = nbd fuse$/protocols = nbd/' "$conf"
fi
mkdir -p "$tmp/state" "$tmp/fuse"
start_oriond "$conf"
names=$(orionctl --json node-list | python3 -c "import json,sys; print(' '.join(n['name'] for n in json.load(sys.stdin)))")
[ "$names" = "disk0 scratch zero slow" ] || die "example nodes: '$names'"
nbdinfo --list "nbd://127.0.0.1:$NBD_PORT" >"$tmp/list"
grep -q 'export="disk0"' "$tmp/list" && grep -q 'export="scratch"' "$tmp/list" || { cat "$tmp/list"; die "exports"; }
# nbd-default = on: the empty export name is disk0
[ "$(nbdinfo --size "nbd://127.0.0.1:$NBD_PORT")" = 10737418240 ] || die "default export is not disk0"
if [ $fuse = yes ] && orionctl --json status | grep -q '"fuse"'; then
        wait_for 30 test -e "$tmp/fuse/scratch.img" || die "FUSE file of the example missing"
        [ "$(stat -c %s "$tmp/fuse/scratch.img")" = 1073741824 ] || die "FUSE file size"
fi
stop_oriond
