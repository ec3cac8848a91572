#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# FUSE image of a file-backed volume: losetup, mkfs.ext4, mount, a tree of files with known
# checksums, unmount, e2fsck -fn clean, mount again and verify every checksum.
source "$ORION_SOURCE_ROOT/tests/integration/functions.sh"
source "$ORION_SOURCE_ROOT/tests/integration/fuse-lib.sh"
requires mkfs.ext4 e2fsck sha256sum

cat >"$tmp/oriond.conf" <<CONF
[daemon]
fuse-mountpoint = $mnt

[node disk]
type = file
path = $tmp/disk.img
size = 128M

[export vol0]
node = disk
protocols = fuse
CONF
start_oriond "$tmp/oriond.conf"
img=$mnt/vol0.img
fuse_wait "$img"
[ "$(size_of "$img")" = $((128 << 20)) ] || die "image size $(size_of "$img")"
[ "$(stat -c %a "$img")" = 600 ] || die "default mode $(stat -c %a "$img")"

dev=$(fuse_losetup "$img")
mkfs.ext4 -q -F "$dev" || die "mkfs.ext4 failed"
mkdir -p "$tmp/m"
mount "$dev" "$tmp/m" || die "mount failed"
cleanup_fn "umount '$tmp/m' 2>/dev/null"

# A tree: nested directories, files from empty to a few MiB, a sparse file.
for d in a a/b a/b/c e; do mkdir -p "$tmp/m/$d"; done
i=0
for d in . a a/b a/b/c e; do
        for s in 0 1 4095 4096 65537 1048576 3000000; do
                head -c "$s" /dev/urandom >"$tmp/m/$d/f$i"
                i=$((i + 1))
        done
done
truncate -s 50M "$tmp/m/e/sparse"
echo tail >>"$tmp/m/e/sparse"
(cd "$tmp/m" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$tmp/sums"
[ "$(wc -l <"$tmp/sums")" -eq 36 ] || die "expected 36 files"
umount "$tmp/m"

e2fsck -fn "$dev" || die "e2fsck found problems"
mount "$dev" "$tmp/m" || die "second mount failed"
(cd "$tmp/m" && sha256sum --quiet -c "$tmp/sums") || die "checksums differ after remount"
umount "$tmp/m"
losetup -d "$dev"

# The data is in the backing file, not only in a cache: the file checks clean from outside.
stop_oriond
e2fsck -fn "$tmp/disk.img" || die "backing file is not a clean ext4 after shutdown"
mountpoint -q "$mnt" && die "mount point still mounted after shutdown"
exit 0
