#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The remote nbdkit is killed in the middle of a fio verify workload running through Orion and
# restarted within retry-timeout: the workload finishes and every block verifies.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/remote-functions.sh"
requires nbdkit fio
fio --enghelp 2>/dev/null | grep -qw nbd || skip "fio lacks the nbd engine"
cleanup_fn nbdkit_kill
cleanup_fn stop_oriond_first

remote_port=$(free_port)
truncate -s 64M "$tmp/remote.img"
nbdkit_start "$remote_port" file "$tmp/remote.img"
remote_volume remote nbd "nbd://127.0.0.1:$remote_port/" 60

(cd "$tmp" && exec fio --name=verify --ioengine=nbd --uri="nbd://127.0.0.1:$NBD_PORT/vol" --rw=randwrite --bs=4k --size=24M \
        --iodepth=16 --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=1 \
        --output="$tmp/fio.out" >/dev/null 2>"$tmp/fio.err") &
fio_pid=$!
# Kill the server once the workload is under way, then bring it back after Orion noticed.
wait_for 120 stat_above 500 remote write ops ||
        die "workload did not start"
nbdkit_kill
wait_health remote degraded 30 || die "the leaf did not notice the server going away"
kill -0 $fio_pid 2>/dev/null || die "fio ended while the server was down"
nbdkit_start "$remote_port" file "$tmp/remote.img"
wait_health remote ok 60 || die "the leaf did not reconnect"

rc=0
wait $fio_pid || rc=$?
cat "$tmp/fio.err" >&2
[ $rc -eq 0 ] || { cat "$tmp/fio.out"; die "fio failed ($rc) across the server restart"; }
grep -q "err= 0" "$tmp/fio.out" || { cat "$tmp/fio.out"; die "fio reported errors"; }
grep -qi "verify" "$tmp/fio.err" && die "fio verify errors"
orionctl stats remote | grep -E "reconnects" | grep -qv " 0$" || die "no reconnect counted"
stop_oriond
