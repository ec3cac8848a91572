#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# One volume exported over NBD and FUSE at once: a write through either is read back through
# the other after a flush.
source "$ORION_SOURCE_ROOT/tests/integration/functions.sh"
source "$ORION_SOURCE_ROOT/tests/integration/fuse-lib.sh"
requires nbdsh nbdcopy cmp

port=$(free_port)
cat >"$tmp/oriond.conf" <<CONF
[daemon]
fuse-mountpoint = $mnt
nbd-listen = 127.0.0.1:$port

[node disk]
type = file
path = $tmp/disk.img
size = 32M

[export vol0]
node = disk
protocols = nbd fuse
CONF
start_oriond "$tmp/oriond.conf"
img=$mnt/vol0.img
fuse_wait "$img"
uri=$(nbd_uri "$port" vol0)
wait_nbd "$port" vol0

# FUSE -> NBD
head -c $((3 << 20)) /dev/urandom >"$tmp/a"
dd if="$tmp/a" of="$img" bs=64k seek=16 conv=notrunc,fsync status=none || die "FUSE write failed"
nbdcopy "$uri" "$tmp/whole" || die "nbdcopy failed"
cmp -n $((3 << 20)) -i $((1 << 20)):0 "$tmp/whole" "$tmp/a" || die "NBD does not see the FUSE write"

# NBD -> FUSE (direct I/O mode: no stale page cache on the FUSE side)
head -c $((1 << 20)) /dev/urandom >"$tmp/b"
nbdsh -u "$uri" -c "
with open('$tmp/b', 'rb') as f:
    data = f.read()
h.pwrite(data, 20 << 20)
h.flush()
" || die "nbdsh write failed"
cmp -n $((1 << 20)) -i $((20 << 20)):0 "$img" "$tmp/b" || die "FUSE does not see the NBD write"

# Zeroes through NBD read as zeroes through FUSE; SEEK_HOLE sees the hole NBD made.
nbdsh -u "$uri" -c "h.zero(1 << 20, 20 << 20); h.flush()" || die "nbdsh zero failed"
cmp -n $((1 << 20)) -i $((20 << 20)):0 "$img" /dev/zero || die "FUSE does not see the NBD zeroes"
exit 0
