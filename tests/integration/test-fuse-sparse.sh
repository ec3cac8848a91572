#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Sparseness through the FUSE image: SEEK_DATA/SEEK_HOLE follow the node's block status,
# st_blocks reflects allocation, cp --sparse=always makes a sparse copy, and
# fallocate --punch-hole frees blocks of the backing file and reads back as zeroes.
source "$ORION_SOURCE_ROOT/tests/integration/functions.sh"
source "$ORION_SOURCE_ROOT/tests/integration/fuse-lib.sh"
requires fallocate du cmp

cat >"$tmp/oriond.conf" <<CONF
[daemon]
fuse-mountpoint = $mnt

[node disk]
type = file
path = $tmp/disk.img
size = 256M

[export vol0]
node = disk
protocols = fuse
CONF
start_oriond "$tmp/oriond.conf"
img=$mnt/vol0.img
fuse_wait "$img"
M=$((1 << 20))

# Two data islands in an otherwise empty 256 MiB volume.
head -c $((4 * M)) /dev/urandom >"$tmp/a"
head -c $((2 * M)) /dev/urandom >"$tmp/b"
dd if="$tmp/a" of="$img" bs=1M seek=16 conv=notrunc,fsync status=none || die "write a"
dd if="$tmp/b" of="$img" bs=1M seek=200 conv=notrunc,fsync status=none || die "write b"

# lseek: first data at 16 MiB, the hole after it at 20 MiB, no data after 202 MiB.
out=$(/usr/bin/python3 - "$img" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
M = 1 << 20
res = [os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 16 * M, os.SEEK_HOLE), os.lseek(fd, 20 * M, os.SEEK_DATA)]
try:
    os.lseek(fd, 203 * M, os.SEEK_DATA)
    res.append("data")
except OSError as e:
    res.append(e.errno)
res.append(os.lseek(fd, 250 * M, os.SEEK_HOLE))
print(" ".join(str(x) for x in res))
PY
)
ENXIO=6
[ "$out" = "$((16 * M)) $((20 * M)) $((200 * M)) $ENXIO $((250 * M))" ] || die "lseek gave '$out'"

# st_blocks counts allocated data only (6 MiB here, give or take file system rounding).
wait_for 10 sh -c "[ \$(stat -c %b '$img') -ge $((6 * M / 512)) ]" || die "st_blocks $(stat -c %b "$img") too small"
[ "$(stat -c %b "$img")" -lt $((16 * M / 512)) ] || die "st_blocks $(stat -c %b "$img") claims too much"

# A sparse copy: same bytes, only the data allocated.
cp --sparse=always "$img" "$tmp/copy.img" || die "cp failed"
cmp "$img" "$tmp/copy.img" || die "copy differs"
used=$(du -k "$tmp/copy.img" | cut -f1)
[ "$used" -lt $((16 * 1024)) ] || die "copy is not sparse: ${used}K used"
rm -f "$tmp/copy.img"

# Punching a hole through FUSE frees blocks of the backing file and reads back as zeroes,
# also for an unaligned range (its edges are zeroed in place).
before=$(du -k "$tmp/disk.img" | cut -f1)
fallocate --punch-hole --offset $((16 * M)) --length $((4 * M)) "$img" || die "punch-hole failed"
after=$(du -k "$tmp/disk.img" | cut -f1)
[ $((before - after)) -ge 3072 ] || die "punch-hole freed only $((before - after))K (before ${before}K after ${after}K)"
cmp -n $((4 * M)) -i $((16 * M)):0 "$img" /dev/zero || die "punched range does not read zeroes"
fallocate --punch-hole --offset $((200 * M + 1000)) --length 5000 "$img" || die "unaligned punch failed"
cmp -n 5000 -i $((200 * M + 1000)):0 "$img" /dev/zero || die "unaligned punched range not zero"
cmp -n 1000 -i $((200 * M)):0 "$img" "$tmp/b" || die "bytes before the unaligned punch changed"
cmp -n $((2 * M - 6000)) -i $((200 * M + 6000)):6000 "$img" "$tmp/b" || die "bytes after the unaligned punch changed"

# ZERO_RANGE zeroes too; plain allocation past the end cannot grow the file.
fallocate --zero-range --offset $((200 * M)) --length $M "$img" || die "zero-range failed"
cmp -n $M -i $((200 * M)):0 "$img" /dev/zero || die "zero-range does not read zeroes"
if fallocate --offset $((256 * M)) --length $M "$img" 2>"$tmp/err"; then die "file grew past the node"; fi
grep -q "No space left" "$tmp/err" || { cat "$tmp/err" >&2; die "expected ENOSPC growing the file"; }
[ "$(size_of "$img")" = $((256 * M)) ] || die "size changed"
exit 0
