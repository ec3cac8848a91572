#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# fuse-allow-other: without it only the daemon's user reaches the mount; with it the kernel
# applies the configured owner and mode (default_permissions) to other users.
source "$ORION_SOURCE_ROOT/tests/integration/functions.sh"
source "$ORION_SOURCE_ROOT/tests/integration/fuse-lib.sh"
requires setpriv

chmod 0711 "$tmp"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

write_conf() { # ALLOW-OTHER
        cat >"$tmp/oriond.conf" <<CONF
[daemon]
fuse-mountpoint = $mnt
fuse-allow-other = $1
fuse-mode = 0644

[node ram]
type = memory
size = 4M

[export pub]
node = ram
protocols = fuse

[export mine]
node = ram
protocols = fuse
fuse-uid = 65534
fuse-mode = 0600
CONF
}

write_conf off
start_oriond "$tmp/oriond.conf"
fuse_wait "$mnt/pub.img"
if as_nobody cat "$mnt/pub.img" >/dev/null 2>"$tmp/err"; then die "another user read without allow_other"; fi
grep -q "Permission denied" "$tmp/err" || { cat "$tmp/err" >&2; die "expected EACCES"; }
stop_oriond

write_conf on
start_oriond "$tmp/oriond.conf"
fuse_wait "$mnt/pub.img"
as_nobody cmp -n $((4 << 20)) "$mnt/pub.img" /dev/zero || die "nobody cannot read a 0644 image with allow_other"
if as_nobody dd if=/dev/zero of="$mnt/pub.img" bs=4k count=1 conv=notrunc status=none 2>"$tmp/err"; then
        die "nobody wrote to a 0644 root-owned image"
fi
grep -q "Permission denied" "$tmp/err" || { cat "$tmp/err" >&2; die "expected EACCES on write"; }
# Owned by nobody with 0600: nobody writes, and root (the daemon's user) reads it back.
echo hello | as_nobody dd of="$mnt/mine.img" conv=notrunc,fsync status=none || die "owner could not write"
[ "$(head -c 6 "$mnt/pub.img")" = hello ] || die "write by nobody not visible"
exit 0
