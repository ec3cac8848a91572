#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A tgtd that keeps its sessions open but stops answering (SIGSTOP): past request-timeout the
# iscsi leaf drops the session and logs in again. Resumed within retry-timeout, the waiting
# requests finish and their data is on the LUN; frozen for longer, clients get EIO (nothing
# hangs), the node is degraded, and it recovers on SIGCONT.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/remote-functions.sh"
requires_root
requires tgtd tgtadm nbdsh
tgtd_cont() { [ -z "${TGTD_PID:-}" ] || kill -CONT "$TGTD_PID" 2>/dev/null || true; }
cleanup_fn tgtd_kill
cleanup_fn stop_oriond_first
cleanup_fn tgtd_cont # runs first: a stopped tgtd would hold up oriond's final flush

port=$(free_port)
ctl=$(tgtd_ctl_port "$port")
truncate -s 16M "$tmp/lun.img"
tgtd_start "$port" "$ctl" "$tmp/lun.img"
conf=$tmp/oriond.conf
nbd_config "$conf"
cat >>"$conf" <<CONF
[node patient]
type = iscsi
url = iscsi://127.0.0.1:$port/$TGT_IQN/1
request-timeout = 1
retry-timeout = 60

[export patient]
node = patient
protocols = nbd
CONF
start_oriond "$conf"
patient=nbd://127.0.0.1:$NBD_PORT/patient
nbdsh -u "$patient" -c 'h.pwrite(b"x" * 4096, 0); h.flush()' || die "first write failed"

dropped() { node_stat "$1" dropped_unanswering; }
[ "$(dropped patient)" = 0 ] || die "a session was dropped while the target answered"

# Frozen, then back within retry-timeout: the requests issued meanwhile complete.
kill -STOP "$TGTD_PID"
nbdsh -u "$patient" -c 'h.pwrite(b"y" * 4096, 8192); h.flush(); assert h.pread(4096, 0) == b"x" * 4096' \
        >"$tmp/patient.log" 2>&1 &
client=$!
wait_for 60 stat_above 0 patient dropped_unanswering ||
        die "the unanswered session was not dropped"
kill -0 "$client" 2>/dev/null || die "the client finished while the target was frozen: $(cat "$tmp/patient.log")"
kill -CONT "$TGTD_PID"
timeout 120 tail --pid="$client" -f /dev/null || die "client still waiting after the target came back"
wait "$client" || die "requests failed although the target came back in time: $(cat "$tmp/patient.log")"
cmp <(dd if="$tmp/lun.img" bs=4096 skip=2 count=1 status=none) <(head -c 4096 /dev/zero | tr '\0' y) ||
        die "the write issued while the target was frozen is not on the LUN"

# Frozen for longer than retry-timeout: EIO, degraded, and recovery after SIGCONT.
orionctl node-add impatient iscsi "url=iscsi://127.0.0.1:$port/$TGT_IQN/1" request-timeout=1 retry-timeout=2 \
        >/dev/null || die "node-add failed"
orionctl export-add impatient impatient protocols=nbd >/dev/null || die "export-add failed"
impatient=nbd://127.0.0.1:$NBD_PORT/impatient
kill -STOP "$TGTD_PID"
timeout 120 nbdsh -u "$impatient" -c '
import errno
try:
    h.pread(4096, 0)
    raise AssertionError("read succeeded from a frozen target")
except nbd.Error as e:
    assert e.errnum == errno.EIO, e.errnum
' || die "clients did not get EIO from a frozen target"
[ "$(node_health impatient)" = degraded ] || die "node not degraded"
[ "$(dropped impatient)" -ge 1 ] || die "no dropped session counted"
kill -CONT "$TGTD_PID"
wait_for 60 nbdsh -u "$impatient" -c 'assert h.pread(4096, 0) == b"x" * 4096' ||
        die "no recovery after the target resumed"
wait_health impatient ok 60 || die "node still not ok"
stop_oriond
