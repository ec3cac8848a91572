#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Malformed PDUs, oversized segments and clients vanishing mid-command (iscsi-raw.py) while a
# well-behaved initiator copies the volume: the target keeps serving it and everyone after.
# Keepalive pings every second: silent initiators are dropped, libiscsi answers and stays.
. "$(dirname "$0")/functions.sh"
requires qemu-img cmp
. "$(dirname "$0")/iscsi-functions.sh"
qemu-img --help | grep -q '^Supported formats:.* iscsi' || skip "qemu-img without iSCSI (qemu-block-extra)"

conf=$tmp/oriond.conf
iscsi_config "$conf" "iscsi-nop-interval = 1" "iscsi-nop-count = 2"
cat >>"$conf" <<CONF
[node disk]
type = memory
size = 48M

[export vol0]
node = disk
protocols = iscsi
CONF
start_oriond "$conf"
wait_iscsi

head -c 48M /dev/urandom >"$tmp/src.raw"
qemu-img convert -n -f raw -O raw "$tmp/src.raw" "$(iscsi_url vol0)" || die "initial copy failed"
# A good client works through the whole attack.
(for i in 1 2 3; do qemu-img convert -f raw -O raw "$(iscsi_url vol0)" "$tmp/copy$i.raw" || exit 1; done) &
good=$!
for i in 1 2 3; do
        /usr/bin/python3 "$ORION_SOURCE_ROOT/tests/integration/iscsi-raw.py" 127.0.0.1 "$ISCSI_PORT" \
                "$ISCSI_PREFIX:vol0" || die "hostile client round $i"
done
wait "$good" || die "the well-behaved client failed during the attack"
for i in 1 2 3; do cmp "$tmp/src.raw" "$tmp/copy$i.raw" || die "copy $i differs"; done
kill -0 "$ORIOND_PID" || die "oriond died"
iscsi-inq "$(iscsi_url vol0)" >/dev/null || die "target does not answer after the attack"
qemu-img compare -f raw -F raw "$tmp/src.raw" "$(iscsi_url vol0)" || die "data changed"
# Every hostile connection is gone (none leaked).
wait_for 30 sh -c "! $ORIONCTL --socket $CTL_SOCK --json status | grep -q '\"connections\":[1-9]'" ||
        die "connections leaked: $(orionctl --json status)"
stop_oriond
