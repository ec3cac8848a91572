#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Node errors reach FUSE callers as the right errno and never hang: EIO on reads and writes,
# ENOSPC, EROFS, a failing flush fails fsync; transient errors heal.
source "$ORION_SOURCE_ROOT/tests/integration/functions.sh"
source "$ORION_SOURCE_ROOT/tests/integration/fuse-lib.sh"
requires timeout

cat >"$tmp/oriond.conf" <<CONF
[daemon]
fuse-mountpoint = $mnt

[node ram]
type = memory
size = 16M

[node badread]
type = error
child = ram
ops = read
error = EIO
offset = 4M
length = 1M

[node full]
type = error
child = ram
ops = write
error = ENOSPC

[node rofs]
type = error
child = ram
ops = write zeroes
error = EROFS

[node badflush]
type = error
child = ram
ops = flush
error = EIO
count = 1

[export badread]
node = badread
protocols = fuse

[export full]
node = full
protocols = fuse

[export rofs]
node = rofs
protocols = fuse

[export badflush]
node = badflush
protocols = fuse
fuse-cache = page
CONF
start_oriond "$tmp/oriond.conf"
for e in badread full rofs badflush; do fuse_wait "$mnt/$e.img"; done

# expect_err MESSAGE CMD...: the command fails, within bounds, with MESSAGE.
expect_err() {
        local msg=$1 rc=0
        shift
        timeout 30 "$@" 2>"$tmp/err" >/dev/null || rc=$?
        [ $rc -ne 124 ] || die "'$*' hung"
        [ $rc -ne 0 ] || die "'$*' succeeded"
        grep -q "$msg" "$tmp/err" || { cat "$tmp/err" >&2; die "'$*': expected '$msg'"; }
}

# Reads: outside the bad range fine, inside EIO (direct I/O and the page cache alike).
dd if="$mnt/badread.img" of=/dev/null bs=1M count=4 status=none || die "good range failed"
expect_err "Input/output error" dd if="$mnt/badread.img" of=/dev/null bs=64k skip=64 count=1 status=none
expect_err "Input/output error" dd if="$mnt/badread.img" of=/dev/null bs=4k skip=1100 count=1 iflag=direct status=none

# Writes: the node's errno, not a generic one.
expect_err "No space left on device" dd if=/dev/zero of="$mnt/full.img" bs=4k count=1 conv=notrunc status=none
expect_err "Read-only file system" dd if=/dev/zero of="$mnt/rofs.img" bs=64k count=1 conv=notrunc status=none
expect_err "Read-only file system" fallocate --punch-hole --offset 0 --length 4096 "$mnt/rofs.img"

# A failing flush fails fsync (here in page-cache mode); the error is transient and heals.
expect_err "Input/output error" dd if=/dev/zero of="$mnt/badflush.img" bs=4k count=1 conv=notrunc,fsync status=none
dd if=/dev/zero of="$mnt/badflush.img" bs=4k count=1 conv=notrunc,fsync status=none || die "fsync did not heal"

# The daemon still serves after all this.
dd if="$mnt/full.img" of=/dev/null bs=1M count=1 status=none || die "reads broken after errors"
exit 0
