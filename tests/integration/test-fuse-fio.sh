#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# fio random writes with verification on the FUSE image, with the psync and io_uring engines,
# in both cache modes (direct I/O and the kernel page cache).
source "$ORION_SOURCE_ROOT/tests/integration/functions.sh"
source "$ORION_SOURCE_ROOT/tests/integration/fuse-lib.sh"
requires fio

cat >"$tmp/oriond.conf" <<CONF
[daemon]
fuse-mountpoint = $mnt

[node disk]
type = file
path = $tmp/disk.img
size = 64M

[node ram]
type = memory
size = 64M

[export vol0]
node = disk
protocols = fuse

[export vol1]
node = ram
protocols = fuse
fuse-cache = page
CONF
start_oriond "$tmp/oriond.conf"
fuse_wait "$mnt/vol0.img"
fuse_wait "$mnt/vol1.img"

run_fio() { # FILE ENGINE DIRECT BS
        fio --name="fuse-$2" --filename="$1" --ioengine="$2" --direct="$3" --rw=randwrite --bs="$4" \
                --size=64M --io_size=16M --iodepth=8 --verify=crc32c --verify_fatal=1 --do_verify=1 \
                --randrepeat=0 --output="$tmp/fio.out" ||
                { cat "$tmp/fio.out" >&2; die "fio $2 direct=$3 bs=$4 on $1 failed"; }
        grep -q "err= 0" "$tmp/fio.out" || { cat "$tmp/fio.out" >&2; die "fio reported errors"; }
}
for f in "$mnt/vol0.img" "$mnt/vol1.img"; do
        run_fio "$f" psync 0 4k
        run_fio "$f" psync 1 64k
        if fio --enghelp=io_uring >/dev/null 2>&1; then
                run_fio "$f" io_uring 1 4k
                run_fio "$f" io_uring 0 16k
        fi
done
exit 0
