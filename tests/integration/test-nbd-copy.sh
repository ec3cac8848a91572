#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# nbdcopy random data into a file-backed export and back out, byte-identical (TCP and unix
# socket, several connections), and qemu-img compare agrees.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
requires nbdcopy qemu-img

nbd_file_volume 24M

head -c 24M /dev/urandom >"$tmp/src.img"
# Leave a zero hole in the middle so sparse handling is exercised too.
dd if=/dev/zero of="$tmp/src.img" bs=1M seek=8 count=4 conv=notrunc status=none
nbdcopy --flush -C 4 "$tmp/src.img" "$uri" || die "nbdcopy upload failed"
nbdcopy "$uri" "$tmp/back.img" || die "nbdcopy download failed"
cmp "$tmp/src.img" "$tmp/back.img" || die "downloaded data differs"
nbdcopy "nbd+unix:///vol0?socket=$NBD_SOCK" "$tmp/back2.img" || die "nbdcopy over unix failed"
cmp "$tmp/src.img" "$tmp/back2.img" || die "data over the unix socket differs"
qemu-img compare -f raw -F raw "$tmp/src.img" "$uri" || die "qemu-img compare found a difference"
# And the reverse check can fail: change one byte and compare again.
printf 'X' | dd of="$tmp/src.img" bs=1 seek=12345 conv=notrunc status=none
if qemu-img compare -q -f raw -F raw "$tmp/src.img" "$uri"; then die "qemu-img compare missed a change"; fi
stop_oriond
# What was flushed is in the file itself.
cmp <(head -c 12345 "$tmp/back.img") <(head -c 12345 "$tmp/disk.img") || die "file content differs"
