#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Image files follow exports added and removed at run time; owner, group and mode come from the
# daemon keys and per-export overrides; read-only exports refuse writes with EROFS; bad fuse-*
# keys are refused; an export removed while open keeps serving its opener.
source "$ORION_SOURCE_ROOT/tests/integration/functions.sh"
source "$ORION_SOURCE_ROOT/tests/integration/fuse-lib.sh"

cat >"$tmp/oriond.conf" <<CONF
[daemon]
fuse-mountpoint = $mnt
fuse-uid = 1234
fuse-gid = 4321
fuse-mode = 0640

[node ram0]
type = memory
size = 8M

[node ram1]
type = memory
size = 16M

[export first]
node = ram0
protocols = fuse
CONF
start_oriond "$tmp/oriond.conf"
fuse_wait "$mnt/first.img"
[ "$(stat -c '%u %g %a %s' "$mnt/first.img")" = "1234 4321 640 $((8 << 20))" ] ||
        die "daemon defaults not applied: $(stat -c '%u %g %a %s' "$mnt/first.img")"

# A second daemon on the same mount point refuses to start instead of stacking on it.
if "$ORIOND" --foreground --config "$tmp/oriond.conf" --pidfile "$tmp/two.pid" --control-socket "$tmp/two.sock" \
        --state-dir "$tmp/state2" >"$tmp/two.log" 2>&1; then
        die "a second oriond mounted over the first"
fi
grep -q "already a FUSE mount" "$tmp/two.log" || { cat "$tmp/two.log" >&2; die "no reason for refusing"; }
[ -e "$mnt/first.img" ] || die "the first daemon's mount was disturbed"

# Add at run time: the name appears (even after the kernel looked it up and found nothing).
[ -e "$mnt/second.img" ] && die "second.img exists before export-add"
orionctl export-add second ram1 protocols=fuse fuse-uid=0 fuse-mode=0604 >/dev/null || die "export-add failed"
[ -e "$mnt/second.img" ] || die "second.img did not appear"
[ "$(stat -c '%u %g %a %s' "$mnt/second.img")" = "0 4321 604 $((16 << 20))" ] ||
        die "export overrides not applied: $(stat -c '%u %g %a %s' "$mnt/second.img")"
ls "$mnt" | grep -qx second.img || die "readdir does not list second.img"
orionctl status >"$tmp/status" || die "status failed"
grep -q "mountpoint: $mnt" "$tmp/status" && grep -q "mounted: yes" "$tmp/status" && grep -q "files: 2" "$tmp/status" ||
        { cat "$tmp/status" >&2; die "status does not describe the FUSE server"; }
head -c 65536 /dev/urandom >"$tmp/data"
dd if="$tmp/data" of="$mnt/second.img" conv=notrunc,fsync status=none || die "write to second.img failed"
cmp -n 65536 "$mnt/second.img" "$tmp/data" || die "second.img reads back wrong"

# Remove at run time: the name goes away.
orionctl export-remove second >/dev/null || die "export-remove failed"
[ -e "$mnt/second.img" ] && die "second.img still there after export-remove"
ls "$mnt" | grep -q second.img && die "readdir still lists second.img"

# Removal while open: the opener keeps working until it closes; then the node is free.
orionctl export-add third ram1 protocols=fuse >/dev/null || die "export-add third failed"
exec 7<>"$mnt/third.img"
orionctl export-remove third >/dev/null || die "export-remove third failed"
[ -e "$mnt/third.img" ] && die "third.img still listed"
cmp -n 65536 /dev/fd/7 "$tmp/data" || die "open file of a removed export lost its data"
if orionctl node-remove ram1 2>/dev/null; then die "node removed while a FUSE file is open"; fi
exec 7>&-
wait_for 10 orionctl node-remove ram1 || die "node still busy after the last close"

# Read-only export: no write bits, writes and punches fail with EROFS, reads work.
orionctl export-add ro ram0 protocols=fuse read-only=on >/dev/null || die "export-add ro failed"
[ "$(stat -c %a "$mnt/ro.img")" = 440 ] || die "read-only mode $(stat -c %a "$mnt/ro.img")"
if dd if=/dev/zero of="$mnt/ro.img" bs=4k count=1 conv=notrunc status=none 2>"$tmp/err"; then
        die "write to a read-only export succeeded"
fi
grep -q "Read-only file system" "$tmp/err" || { cat "$tmp/err" >&2; die "expected EROFS"; }
if fallocate --punch-hole --offset 0 --length 4096 "$mnt/ro.img" 2>"$tmp/err"; then die "punch on read-only"; fi
cmp -n 4096 "$mnt/ro.img" "$mnt/first.img" || die "read-only export does not read the node"

# Bad keys are refused with a reason, and nothing appears.
for kv in fuse-mode=999 fuse-mode=abc fuse-cache=maybe fuse-uid=nosuchuser-x fuse-colour=red; do
        if orionctl export-add bad ram0 protocols=fuse "$kv" 2>"$tmp/err"; then die "export-add accepted $kv"; fi
        grep -q "fuse" "$tmp/err" || { cat "$tmp/err" >&2; die "no reason given for $kv"; }
        [ -e "$mnt/bad.img" ] && die "bad.img appeared for $kv"
done

# Resizing or re-owning an image is refused; touching it is fine.
if truncate -s 1M "$mnt/first.img" 2>/dev/null; then die "truncate succeeded"; fi
if chmod 0666 "$mnt/first.img" 2>/dev/null; then die "chmod succeeded"; fi
touch "$mnt/first.img" || die "touch failed"
[ "$(size_of "$mnt/first.img")" = $((8 << 20)) ] || die "size changed"
# Writes past the end: ENOSPC, never a larger file.
if dd if=/dev/zero of="$mnt/first.img" bs=4k count=1 seek=$((2048)) conv=notrunc status=none 2>"$tmp/err"; then
        die "write past the end succeeded"
fi
grep -q "No space left" "$tmp/err" || { cat "$tmp/err" >&2; die "expected ENOSPC"; }
exit 0
