# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for the FUSE export tests: source after functions.sh. Needs root and /dev/fuse.
requires_root
[ -c /dev/fuse ] || skip "no /dev/fuse"
requires mountpoint losetup

mnt=$tmp/fuse
# A mount left by a killed daemon must not outlive the test.
cleanup_fn "umount -l '$mnt' 2>/dev/null"

# fuse_wait FILE: until the image file appears.
fuse_wait() { wait_for 30 test -e "$1" || die "$1 did not appear"; }
# fuse_losetup FILE: attach a loop device, detached at exit; prints the device.
fuse_losetup() {
        local dev
        dev=$(losetup -f --show "$1") || die "losetup $1 failed"
        cleanup_fn "losetup -d '$dev'"
        echo "$dev"
}
# size_of FILE
size_of() { stat -c %s "$1"; }
