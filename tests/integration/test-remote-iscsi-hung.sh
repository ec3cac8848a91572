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

[ "$(node_stat patient dropped_unanswering)" = 0 ] || die "a session was dropped while the target answered"

# Frozen, then back within retry-timeout: the requests issued meanwhile complete.
frozen_within_window "$TGTD_PID" "$tmp/lun.img"

# Frozen for longer than retry-timeout: EIO, degraded, and recovery after SIGCONT.
orionctl node-add impatient iscsi "url=iscsi://127.0.0.1:$port/$TGT_IQN/1" request-timeout=1 retry-timeout=2 \
        >/dev/null || die "node-add failed"
orionctl export-add impatient impatient protocols=nbd >/dev/null || die "export-add failed"
impatient=nbd://127.0.0.1:$NBD_PORT/impatient
frozen_past_window "$TGTD_PID"
stop_oriond
