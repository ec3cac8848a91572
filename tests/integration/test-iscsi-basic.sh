#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Real initiators against Orion's target: discovery (iscsi-ls), INQUIRY and VPD (iscsi-inq),
# READ CAPACITY, qemu-img convert/compare over iscsi://, the same volume read back over NBD,
# several LUNs on one target, and export add/remove at run time without dropping a session.
. "$(dirname "$0")/functions.sh"
requires qemu-img nbdinfo iscsi-readcapacity16 cmp
NBD_PORT=$(free_port)
. "$(dirname "$0")/iscsi-functions.sh"
qemu-img --help | grep -q '^Supported formats:.* iscsi' || skip "qemu-img without iSCSI (qemu-block-extra)"

conf=$tmp/oriond.conf
iscsi_config "$conf"
cat >>"$conf" <<CONF
[node disk]
type = file
path = $tmp/disk.img
size = 32M

[node m1]
type = memory
size = 8M

[node m2]
type = memory
size = 4M
block-size = 4096

[export vol0]
node = disk
protocols = iscsi nbd

[export lun-a]
node = m1
protocols = iscsi
iscsi-target = shared

[export lun-b]
node = m2
protocols = iscsi
iscsi-target = shared
iscsi-lun = 5
CONF
start_oriond "$conf"
wait_iscsi

# Discovery lists both targets with our portal.
iscsi-ls "iscsi://$ISCSI_PORTAL" >"$tmp/ls" || die "iscsi-ls failed"
grep -q "Target:$ISCSI_PREFIX:vol0 Portal:$ISCSI_PORTAL,1" "$tmp/ls" || { cat "$tmp/ls"; die "vol0 not discovered"; }
grep -q "Target:$ISCSI_PREFIX:shared Portal:$ISCSI_PORTAL,1" "$tmp/ls" || { cat "$tmp/ls"; die "shared not discovered"; }
expect_eq "target count" "$(grep -c '^Target:' "$tmp/ls")" 2
# -s: a normal session lists the LUNs of each target.
iscsi-ls -s "iscsi://$ISCSI_PORTAL" >"$tmp/ls-s" || die "iscsi-ls -s failed"
grep -q "Lun:5" "$tmp/ls-s" || { cat "$tmp/ls-s"; die "LUN 5 of the shared target not listed"; }

# INQUIRY, VPD pages and capacity.
iscsi-inq "$(iscsi_url vol0)" >"$tmp/inq" || die "iscsi-inq failed"
grep -q "Vendor:ORION" "$tmp/inq" || die "wrong vendor"
grep -q "Peripheral Device Type:DIRECT_ACCESS" "$tmp/inq" || die "not a disk"
iscsi-inq -e 1 -c 131 "$(iscsi_url vol0)" >"$tmp/vpd83" || die "VPD 0x83 failed"
grep -aq "NAA" "$tmp/vpd83" || { cat "$tmp/vpd83"; die "no NAA designator"; }
naa1=$(grep -a -A3 "NAA" "$tmp/vpd83" | md5sum)
iscsi-inq -e 1 -c 178 "$(iscsi_url vol0)" >"$tmp/vpdb2" || die "VPD 0xB2 failed"
grep -q "provisioning type:2" "$tmp/vpdb2" || die "vol0 not reported thin"
expect_eq "vol0 size" "$(iscsi_size "$(iscsi_url vol0)")" 33554432
expect_eq "lun-a size" "$(iscsi_size "$(iscsi_url shared 0)")" 8388608
expect_eq "lun-b size" "$(iscsi_size "$(iscsi_url shared 5)")" 4194304
iscsi-readcapacity16 "$(iscsi_url shared 5)" | grep -q "LOGICAL BLOCK LENGTH IN BYTES:4096" || die "lun-b block size"
iscsi-readcapacity16 "$(iscsi_url vol0)" | grep -q "LBPME:1" || die "file node should be thin (LBPME)"
if iscsi-inq "$(iscsi_url shared 3)" >/dev/null 2>&1; then die "LUN 3 should not exist"; fi
if iscsi-inq "$(iscsi_url nosuch)" >/dev/null 2>&1; then die "unknown target accepted"; fi

# qemu-img convert in and out, compare, and the same bytes over NBD.
head -c 20M /dev/urandom >"$tmp/src.raw"
truncate -s 32M "$tmp/src.raw"
qemu-img convert -n -f raw -O raw "$tmp/src.raw" "$(iscsi_url vol0)" || die "qemu-img convert to iscsi failed"
qemu-img compare -f raw -F raw "$tmp/src.raw" "$(iscsi_url vol0)" || die "qemu-img compare over iscsi differs"
qemu-img convert -f raw -O raw "$(iscsi_url vol0)" "$tmp/back.raw" || die "qemu-img convert from iscsi failed"
cmp "$tmp/src.raw" "$tmp/back.raw" || die "data read back over iSCSI differs"
qemu-img compare -f raw -F raw "$tmp/src.raw" "nbd://127.0.0.1:$NBD_PORT/vol0" || die "NBD view differs"
# 4096-byte LUN too
head -c 4M /dev/urandom >"$tmp/b.raw"
qemu-img convert -n -f raw -O raw "$tmp/b.raw" "$(iscsi_url shared 5)" || die "convert to 4k LUN failed"
qemu-img compare -f raw -F raw "$tmp/b.raw" "$(iscsi_url shared 5)" || die "4k LUN differs"

# Run-time changes: a long-lived session on vol0 keeps working while LUNs come and go.
qemu-img convert -f raw -O raw "$(iscsi_url vol0)" "$tmp/during.raw" &
reader=$!
orionctl node-add m3 memory size=2M >/dev/null || die "node-add failed"
orionctl export-add lun-c m3 protocols=iscsi iscsi-target=shared iscsi-lun=7 >/dev/null || die "export-add failed"
expect_eq "new LUN size" "$(iscsi_size "$(iscsi_url shared 7)")" 2097152
orionctl export-remove lun-a >/dev/null || die "export-remove failed"
if iscsi-inq "$(iscsi_url shared 0)" >/dev/null 2>&1; then die "removed LUN still answers"; fi
expect_eq "LUN 5 still there" "$(iscsi_size "$(iscsi_url shared 5)")" 4194304
wait "$reader" || die "reader on vol0 failed during export changes"
cmp "$tmp/src.raw" "$tmp/during.raw" || die "reader got wrong data"
# The NAA designator is stable across restarts (derived from the export name).
stop_oriond
start_oriond "$conf"
wait_iscsi
iscsi-inq -e 1 -c 131 "$(iscsi_url vol0)" >"$tmp/vpd83b" || die "VPD 0x83 after restart failed"
expect_eq "NAA stable" "$(grep -a -A3 "NAA" "$tmp/vpd83b" | md5sum)" "$naa1"
qemu-img compare -f raw -F raw "$tmp/src.raw" "$(iscsi_url vol0)" || die "data lost across restart"
orionctl --json status >"$tmp/status.json" || die "status failed"
grep -q "$ISCSI_PORTAL" "$tmp/status.json" || die "status lacks the iSCSI portal"
stop_oriond
