#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# libiscsi's compliance suite (Debian's iscsi-test-cu 1.19) against a thin LUN (file node, can
# discard) and a thick one (iscsi-thin = off), each with two URLs so that MultipathIO runs:
# SCSI family >= 165 passed and 0 failed on both the thin and the thick LUN; the iSCSI
# family 15 passed, 0 failed (also with CRC32C header digests); ReadOnly on a read-only LUN.
# Excluded from the main runs: SCSI.CompareAndWrite.InvalidDataOutSize, which in 1.19 replaces
# the transport's queue_pdu and does not restore it when it skips, corrupting every later 16-byte
# CDB of the process (fixed upstream in cc3ddbf); it runs alone in its own process instead.
. "$(dirname "$0")/functions.sh"
requires iscsi-test-cu
. "$(dirname "$0")/iscsi-functions.sh"
count() { /usr/bin/python3 "$ORION_SOURCE_ROOT/tests/integration/iscsi-cu-count.py" "$@"; }

conf=$tmp/oriond.conf
iscsi_config "$conf"
cat >>"$conf" <<CONF
[node thin]
type = file
path = $tmp/thin.img
size = 64M

[node thick]
type = file
path = $tmp/thick.img
size = 64M

[node ro]
type = memory
size = 16M

[node slowmem]
type = memory
size = 16M

[node slow]
type = delay
child = slowmem
write-delay = 300ms

[export thin]
node = thin
protocols = iscsi

[export thick]
node = thick
protocols = iscsi
iscsi-thin = off

[export ro]
node = ro
protocols = iscsi
read-only = on

[export slow]
node = slow
protocols = iscsi
CONF
start_oriond "$conf"
wait_iscsi

iscsi-test-cu -l | grep '^SCSI\.[A-Za-z0-9_]*\.' | grep -v -e '^SCSI\.CompareAndWrite\.InvalidDataOutSize$' \
        -e '^SCSI\.Sanitize\.Reset$' >"$tmp/scsi.list"
[ "$(wc -l <"$tmp/scsi.list")" -ge 200 ] || die "iscsi-test-cu lists too few SCSI tests"

# run NAME ARGS...: one iscsi-test-cu process; its exit status is not the verdict (CUnit's is
# unreliable), the log is.
run() {
        local name=$1
        shift
        timeout 900 iscsi-test-cu --dataloss "$@" >"$tmp/$name.log" 2>&1 || true
        count "$tmp/$name.log" >"$tmp/$name.count"
        echo "== $name" >&2
        cat "$tmp/$name.count" >&2
        grep -q "^TOTAL " "$tmp/$name.count" || die "$name: no results"
}
field() { sed -n 's/^TOTAL \([0-9]*\) \([0-9]*\) \([0-9]*\)$/\'"$2"'/p' "$tmp/$1.count"; }

# Sanitize.Reset checks that a SANITIZE still runs 3 s after it started, through ABORT TASK,
# LUN and target resets and a new login: a 16 MiB LU that takes 300 ms per write lasts that
# long (our 64 MiB files are overwritten in well under a second). It runs beside the others
# and then waits a minute for the sanitize to end (the test's own sleep).
timeout 900 iscsi-test-cu --dataloss --allow-sanitize -t SCSI.Sanitize.Reset "$(iscsi_url slow)" \
        >"$tmp/sreset.log" 2>&1 &
sreset_pid=$!

run thin --allow-sanitize -t "$tmp/scsi.list" "$(iscsi_url thin)" "$(iscsi_url thin)"
run thick --allow-sanitize -t "$tmp/scsi.list" "$(iscsi_url thick)" "$(iscsi_url thick)"
run idos -t SCSI.CompareAndWrite.InvalidDataOutSize "$(iscsi_url thin)"
run iscsi -t 'iSCSI.*' "$(iscsi_url thin)"
run iscsi-crc -t 'iSCSI.*' "$(iscsi_url thin)?header_digest=crc32c"
run ro -t 'SCSI.ReadOnly.*' "$(iscsi_url ro)"

wait $sreset_pid || true
count "$tmp/sreset.log" >"$tmp/sreset.count"
echo "== sreset" >&2
cat "$tmp/sreset.count" >&2

for r in thin thick idos iscsi iscsi-crc ro sreset; do
        [ "$(field $r 2)" = 0 ] || die "$r: $(field $r 2) failed: $(grep ^FAILED "$tmp/$r.count" | tr '\n' ' ')"
done
[ "$(field thin 1)" -ge 165 ] || die "thin LUN: only $(field thin 1) SCSI tests passed (want >= 165)"
[ "$(field thick 1)" -ge 165 ] || die "thick LUN: only $(field thick 1) SCSI tests passed (want >= 165)"
grep -q "^MultipathIO *4 *0 *0" "$tmp/thin.count" || die "MultipathIO did not pass on the thin LUN"
grep -q "^Unmap *3 *0 *0" "$tmp/thin.count" || die "Unmap did not run on the thin LUN"
grep -q "^Unmap *0 *0 *3" "$tmp/thick.count" || die "Unmap should skip on the thick LUN"
grep -q "^Sanitize *1 *0 *0" "$tmp/sreset.count" || die "Sanitize.Reset did not pass on the slow LUN"
# SANITIZE: overwrite, block erase (thin only), failure-mode exit, SWP and reservations ran
grep -q "^Sanitize *7 *0 *3" "$tmp/thin.count" || die "Sanitize did not run as expected on the thin LUN"
grep -q "^Sanitize *6 *0 *4" "$tmp/thick.count" || die "Sanitize did not run as expected on the thick LUN"
for r in thin thick; do
        grep -q "^ExtendedCopy *6 *0 *0" "$tmp/$r.count" || die "$r: ExtendedCopy did not pass"
        grep -q "^ReceiveCopyResults *2 *0 *0" "$tmp/$r.count" || die "$r: ReceiveCopyResults did not pass"
done
expect_eq "iSCSI family passed" "$(field iscsi 1)" 15
expect_eq "iSCSI family passed (CRC32C)" "$(field iscsi-crc 1)" 15
expect_eq "ReadOnly passed" "$(field ro 1)" 1
# The target is still healthy after all of it.
iscsi-inq "$(iscsi_url thin)" >/dev/null || die "target stopped answering"
stop_oriond
