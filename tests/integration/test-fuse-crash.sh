#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# kill -9 oriond while the FUSE image is mounted and in use: the mount point fails cleanly
# with ENOTCONN, nothing hangs; a restart detaches the stale mount, mounts again, and every
# write that was fsync'ed before the kill is there.
source "$ORION_SOURCE_ROOT/tests/integration/functions.sh"
source "$ORION_SOURCE_ROOT/tests/integration/fuse-lib.sh"
requires timeout

cat >"$tmp/oriond.conf" <<CONF
[daemon]
fuse-mountpoint = $mnt

[node disk]
type = file
path = $tmp/disk.img
size = 64M

[node disk2]
type = file
path = $tmp/disk2.img
size = 64M

[export vol0]
node = disk
protocols = fuse

[export cached]
node = disk2
protocols = fuse
fuse-cache = page
CONF
start_oriond "$tmp/oriond.conf"
img=$mnt/vol0.img
fuse_wait "$img"

# Durable part: written and fsync'ed (page-cache writes, then fdatasync; and direct writes).
head -c $((8 << 20)) /dev/urandom >"$tmp/a"
head -c $((4 << 20)) /dev/urandom >"$tmp/b"
dd if="$tmp/a" of="$img" bs=1M conv=notrunc,fdatasync status=none || die "write a"
dd if="$tmp/b" of="$img" bs=1M seek=16 oflag=direct conv=notrunc,fsync status=none || die "write b"
# Page-cache mode keeps the promise too: after fsync the data is in the node.
dd if="$tmp/a" of="$mnt/cached.img" bs=1M conv=notrunc,fsync status=none || die "write cached"

# Keep a writer busy (not synced) while the daemon dies: it must fail, not hang.
dd if=/dev/urandom of="$img" bs=64k seek=512 count=100000 conv=notrunc status=none 2>/dev/null &
writer=$!
exec 8<"$img" # an open file across the crash
kill9_oriond

# The mount point answers ENOTCONN at once; users get errors, nobody hangs.
out=$(timeout 20 stat "$mnt" 2>&1) && die "stat on a dead mount succeeded"
echo "$out" | grep -q "Transport endpoint is not connected" || die "stat gave: $out"
if timeout 20 cat /dev/fd/8 >/dev/null 2>"$tmp/err"; then die "read of an open file after the crash worked"; fi
grep -q "Transport endpoint is not connected\|Input/output error" "$tmp/err" || { cat "$tmp/err" >&2; die "read error"; }
exec 8<&-
wait_for 20 sh -c "! kill -0 $writer 2>/dev/null" || die "writer hangs after the crash"

# Restart on the same mount point: the stale mount is detached and replaced.
start_oriond "$tmp/oriond.conf"
fuse_wait "$img"
grep -q "stale mount" "$tmp/oriond.log" || die "restart did not report the stale mount"
cmp -n $((8 << 20)) "$img" "$tmp/a" || die "fsync'ed data a lost"
cmp -n $((4 << 20)) -i $((16 << 20)):0 "$img" "$tmp/b" || die "fsync'ed data b lost"
cmp -n $((8 << 20)) "$mnt/cached.img" "$tmp/a" || die "fsync'ed data of the page-cache export lost"

# Shutdown while a loop device still uses the image: oriond stops, the mount goes away, and
# the loop device's I/O fails instead of hanging.
dev=$(fuse_losetup "$img")
stop_oriond
grep -q "still in use" "$tmp/oriond.log" || die "busy shutdown not reported"
mountpoint -q "$mnt" && die "still mounted after stop"
rc=0
timeout 20 dd if="$dev" of=/dev/null bs=4k count=1 iflag=direct status=none 2>"$tmp/err" || rc=$?
[ $rc -ne 0 ] || die "loop device still reads after oriond stopped"
[ $rc -ne 124 ] || die "loop device I/O hangs after oriond stopped"
losetup -d "$dev" || die "losetup -d failed"
exit 0
