#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The file leaf through the real daemon: sparse creation, data landing in the file (buffered
# and O_DIRECT), block status of holes, trim punching holes, a loop block device as the path,
# and refusals of bad configs.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
requires nbdsh nbdcopy
conf=$tmp/oriond.conf

# ---- bad configs are refused with a reason
nbd_config "$conf"
printf '[node f]\ntype = file\npath = %s\n' "$tmp/missing.img" >>"$conf"
start_oriond_fails "$conf" "size="
truncate -s 1M "$tmp/small.img"
nbd_config "$conf"
printf '[node f]\ntype = file\npath = %s\nsize = 2M\n' "$tmp/small.img" >>"$conf"
start_oriond_fails "$conf" "size="

# ---- a sparse file and an O_DIRECT one
nbd_config "$conf"
cat >>"$conf" <<CONF
[node f]
type = file
path = $tmp/disk.img
size = 64M

[node d]
type = file
path = $tmp/direct.img
size = 16M
direct = on

[export f]
node = f
protocols = nbd

[export d]
node = d
protocols = nbd
CONF
loopdev=
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null && truncate -s 32M "$tmp/loop.img" &&
        loopdev=$(losetup -f --show "$tmp/loop.img" 2>/dev/null); then
        cleanup_fn "losetup -d $loopdev"
        printf '[node blk]\ntype = file\npath = %s\n\n[export blk]\nnode = blk\nprotocols = nbd\n' "$loopdev" >>"$conf"
else
        echo "no loop device: block-device case not run" >&2
fi
start_oriond "$conf"
[ "$(stat -c %s "$tmp/disk.img")" = $((64 << 20)) ] || die "file not created with size="
[ "$(stat -c %b "$tmp/disk.img")" -lt 64 ] || die "created file is not sparse"

head -c $((4 << 20)) /dev/urandom >"$tmp/data"
for e in f d; do
        nbdsh -u "nbd://127.0.0.1:$NBD_PORT/$e" -c "
data = open('$tmp/data', 'rb').read()
h.pwrite(data, 8 << 20)
h.pwrite(data[:12345 - 12345 % 512], 1 << 20, nbd.CMD_FLAG_FUA)
h.flush()
assert h.pread(4 << 20, 8 << 20) == data
" || die "round trip through '$e' failed"
done
cmp <(dd if="$tmp/disk.img" bs=1M skip=8 count=4 status=none) "$tmp/data" || die "data not in the file"
cmp <(dd if="$tmp/direct.img" bs=1M skip=8 count=4 status=none) "$tmp/data" || die "data not in the O_DIRECT file"

# holes are reported, and trim punches one
nbdinfo --map "nbd://127.0.0.1:$NBD_PORT/f" >"$tmp/map"
awk '$1 == 0 && $3 == 3 {h=1} $1 == 8388608 && $3 == 0 {d=1} END {exit !(h && d)}' "$tmp/map" ||
        { cat "$tmp/map"; die "block status does not show the holes"; }
blocks=$(stat -c %b "$tmp/disk.img")
nbdsh -u "nbd://127.0.0.1:$NBD_PORT/f" -c 'h.trim(2 << 20, 8 << 20); h.flush(); assert h.pread(2 << 20, 8 << 20) == bytes(2 << 20)' ||
        die "trim failed"
[ "$(stat -c %b "$tmp/disk.img")" -lt "$blocks" ] || die "trim did not free space"
cmp <(dd if="$tmp/disk.img" bs=1M skip=10 count=2 status=none) <(tail -c $((2 << 20)) "$tmp/data") ||
        die "trim touched data beyond its range"

if [ -n "$loopdev" ]; then
        [ "$(nbdinfo --size "nbd://127.0.0.1:$NBD_PORT/blk")" = $((32 << 20)) ] || die "loop device size wrong"
        head -c $((32 << 20)) /dev/urandom >"$tmp/blkdata"
        nbdcopy "$tmp/blkdata" "nbd://127.0.0.1:$NBD_PORT/blk" || die "nbdcopy to the block device failed"
        nbdsh -u "nbd://127.0.0.1:$NBD_PORT/blk" -c 'h.flush(); h.zero(1 << 20, 4 << 20); h.flush()' || die "zero failed"
        head -c $((1 << 20)) /dev/zero | dd of="$tmp/blkdata" bs=1M seek=4 conv=notrunc status=none
        cmp "$tmp/blkdata" "$tmp/loop.img" || die "block device does not hold the data"
fi
stop_oriond
