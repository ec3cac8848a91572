#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# iscsi leaf: tgtd killed in the middle of a fio verify workload and restarted within
# retry-timeout (the workload verifies); then away past retry-timeout (EIO, degraded, recovery).
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/remote-functions.sh"
requires_root
requires tgtd tgtadm fio nbdsh
fio --enghelp 2>/dev/null | grep -qw nbd || skip "fio lacks the nbd engine"
cleanup_fn tgtd_kill
cleanup_fn stop_oriond_first

port=$(free_port)
ctl=$(tgtd_ctl_port "$port")
truncate -s 32M "$tmp/lun.img"
tgtd_start "$port" "$ctl" "$tmp/lun.img"
remote_volume lun iscsi "iscsi://127.0.0.1:$port/$TGT_IQN/1" 60

# ---- within the window: fio verifies across the restart
(cd "$tmp" && exec fio --name=verify --ioengine=nbd --uri="$orion" --rw=randwrite --bs=4k --size=16M --iodepth=16 \
        --verify=crc32c --do_verify=1 --verify_fatal=1 --output="$tmp/fio.out" >/dev/null 2>"$tmp/fio.err") &
fio_pid=$!
wait_for 120 stat_above 300 lun write ops ||
        die "workload did not start"
tgtd_kill
wait_health lun degraded 30 || die "the leaf did not notice the target going away"
kill -0 $fio_pid 2>/dev/null || die "fio ended while the target was down"
tgtd_start "$port" "$ctl" "$tmp/lun.img"
wait_health lun ok 60 || die "the leaf did not reconnect"
rc=0
wait $fio_pid || rc=$?
[ $rc -eq 0 ] || { cat "$tmp/fio.out" "$tmp/fio.err"; die "fio failed ($rc) across the target restart"; }
grep -q "err= 0" "$tmp/fio.out" || { cat "$tmp/fio.out"; die "fio reported errors"; }

# ---- past the window: EIO, degraded, then recovery
orionctl node-add short iscsi "url=iscsi://127.0.0.1:$port/$TGT_IQN/1" retry-timeout=2 >/dev/null ||
        die "node-add of a second iscsi node failed"
orionctl export-add short short protocols=nbd >/dev/null || die "export-add failed"
short=nbd://127.0.0.1:$NBD_PORT/short
nbdsh -u "$short" -c 'h.pwrite(b"q" * 4096, 4096); h.flush()' || die "write through the second node failed"
tgtd_kill
read_gets_eio 60 "$short" 4096 || die "clients did not get EIO past retry-timeout"
[ "$(node_health short)" = degraded ] || die "node not degraded"
tgtd_start "$port" "$ctl" "$tmp/lun.img"
wait_for 60 nbdsh -u "$short" -c 'assert h.pread(4096, 4096) == b"q" * 4096' || die "no recovery after the target returned"
[ "$(node_health short)" = ok ] || die "node still not ok"
stop_oriond
