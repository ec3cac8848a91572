#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# iscsi leaf over tgtd with a file-backed LUN: data written through an Orion NBD export lands
# byte-identical in the LUN's file and the reverse, with and without CHAP; a wrong CHAP secret
# is refused with a clear error. The thin LUN's holes show through Orion's block status; the
# thick one (no thin provisioning) reads as all data.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/remote-functions.sh"
requires_root
requires tgtd tgtadm nbdcopy nbdsh nbdinfo
cleanup_fn tgtd_kill
cleanup_fn stop_oriond_first

port=$(free_port)
ctl=$(tgtd_ctl_port "$port")
truncate -s 32M "$tmp/lun.img"
tgtd_start "$port" "$ctl" "$tmp/lun.img"
# thin provisioning: tgtd then offers UNMAP and WRITE SAME (Logical Block Provisioning VPD)
tgtadm -C "$ctl" --lld iscsi --mode logicalunit --op update --tid 1 --lun 1 --params thin_provisioning=1 ||
        die "tgtadm: cannot enable thin provisioning"
remote_volume lun iscsi "iscsi://127.0.0.1:$port/$TGT_IQN/1" 10
conf=$tmp/oriond.conf
[ "$(nbdinfo --size "$orion")" = $((32 << 20)) ] || die "size through Orion is wrong"

head -c $((8 << 20)) /dev/urandom >"$tmp/a"
nbdcopy "$tmp/a" "$orion" || die "nbdcopy into Orion failed"
nbdsh -u "$orion" -c 'h.flush()' || die "flush failed"
cmp "$tmp/a" <(head -c $((8 << 20)) "$tmp/lun.img") || die "LUN does not hold what was written through Orion"

# the reverse: write the LUN file behind tgtd's back (it reads it without caching: bs=rdwr)
head -c $((2 << 20)) /dev/urandom >"$tmp/b"
dd if="$tmp/b" of="$tmp/lun.img" bs=1M seek=20 conv=notrunc,fsync status=none
nbdsh -u "$orion" -c "open('$tmp/b.orion','wb').write(h.pread(2 << 20, 20 << 20))" || die "read through Orion failed"
cmp "$tmp/b" "$tmp/b.orion" || die "Orion does not show what the LUN holds"

# block status of the thin LUN (GET LBA STATUS): what was never written reads as a hole
map_at() { nbdinfo --map "$orion" | awk -v o="$1" '$1 <= o && o < $1 + $2 { print $4 }'; }
[ "$(map_at 0)" = data ] && [ "$(map_at $((21 << 20)))" = data ] || { nbdinfo --map "$orion"; die "written ranges not data"; }
[ "$(map_at $((12 << 20)))" = hole,zero ] && [ "$(map_at $((30 << 20)))" = hole,zero ] ||
        { nbdinfo --map "$orion"; die "the LUN's holes are not visible through Orion"; }

# UNMAP and WRITE SAME, learnt from the VPD pages, reach the LUN
orionctl --json node-info lun | tr -d ' \n' | grep -q '"caps":\["flush","fua","discard","write-zeroes"' ||
        { orionctl --json node-info lun; die "iscsi leaf did not pick up UNMAP/WRITE SAME"; }
used=$(du -k "$tmp/lun.img" | cut -f1)
nbdsh -u "$orion" -c 'h.zero(1 << 20, 0); h.trim(2 << 20, 2 << 20); h.flush(); assert h.pread(1 << 20, 0) == bytes(1 << 20)' ||
        die "zeroing/trim through the iscsi leaf failed"
cmp <(head -c $((1 << 20)) "$tmp/lun.img") <(head -c $((1 << 20)) /dev/zero) || die "zeroes not on the LUN"
[ "$(map_at $((3 << 20)))" = hole,zero ] || { nbdinfo --map "$orion"; die "trimmed range not a hole"; }
[ "$(du -k "$tmp/lun.img" | cut -f1)" -lt "$used" ] || die "UNMAP did not free space on the LUN"
orionctl stats lun | grep -E "^lun +discard +1 " || die "discard did not go to the target"
stop_oriond
tgtd_kill

# CHAP: the right secret works, a wrong one is refused with a clear message
tgtd_start "$port" "$ctl" "$tmp/lun.img" orionuser orionsecret12
cat >"$conf" <<CONF
[daemon]
state-dir = $tmp/state
nbd-listen = 127.0.0.1:$NBD_PORT

[node lun]
type = iscsi
url = iscsi://orionuser%orionsecret12@127.0.0.1:$port/$TGT_IQN/1

[export vol]
node = lun
protocols = nbd
CONF
start_oriond "$conf"
cmp <(nbdsh -u "$orion" -c 'import sys; sys.stdout.buffer.write(h.pread(8 << 20, 0))') <(head -c $((8 << 20)) "$tmp/lun.img") ||
        die "read with CHAP failed"
[ "$(map_at $((12 << 20)))" = data ] || { nbdinfo --map "$orion"; die "a thick LUN shows holes"; }
# CHAP with the secret in a file: it shows nowhere in node-info
printf 'orionsecret12\n' >"$tmp/secret"
orionctl node-add lun2 iscsi "url=iscsi://127.0.0.1:$port/$TGT_IQN/1" user=orionuser "secret-file=$tmp/secret" \
        >/dev/null || die "CHAP with secret-file failed"
orionctl --json node-info lun2 | grep -q orionsecret12 && die "secret-file secret visible in node-info"
orionctl node-remove lun2 >/dev/null || die "node-remove failed"
if orionctl node-add bad iscsi "url=iscsi://orionuser%wrongsecret99@127.0.0.1:$port/$TGT_IQN/1" \
        >"$tmp/bad.out" 2>&1; then
        die "a wrong CHAP secret was accepted"
fi
cat "$tmp/bad.out"
grep -qi "login failed" "$tmp/bad.out" || die "wrong secret: unclear error"
grep -q wrongsecret99 "$tmp/bad.out" && die "the secret leaked into the error message"
stop_oriond
