#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A remote nbdkit that keeps its connections open but stops answering (SIGSTOP): past
# request-timeout the nbd leaf drops the connection and reconnects. Resumed within
# retry-timeout, the waiting requests finish and their data is on the server; frozen for
# longer, clients get EIO (nothing hangs), the node is degraded, and it recovers on SIGCONT.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/remote-functions.sh"
requires nbdkit nbdsh
nbdkit_cont() { [ -z "${NBDKIT_PID:-}" ] || kill -CONT "$NBDKIT_PID" 2>/dev/null || true; }
cleanup_fn nbdkit_kill
cleanup_fn stop_oriond_first
cleanup_fn nbdkit_cont # runs first: a stopped nbdkit would hold up oriond's final flush

remote_port=$(free_port)
truncate -s 16M "$tmp/remote.img"
nbdkit_start "$remote_port" file "$tmp/remote.img"
conf=$tmp/oriond.conf
nbd_config "$conf"
cat >>"$conf" <<CONF
[node patient]
type = nbd
uri = nbd://127.0.0.1:$remote_port/
connections = 2
request-timeout = 1
retry-timeout = 60

[node impatient]
type = nbd
uri = nbd://127.0.0.1:$remote_port/
request-timeout = 1
retry-timeout = 2

[export patient]
node = patient
protocols = nbd

[export impatient]
node = impatient
protocols = nbd
CONF
start_oriond "$conf"
patient=nbd://127.0.0.1:$NBD_PORT/patient
impatient=nbd://127.0.0.1:$NBD_PORT/impatient
nbdsh -u "$patient" -c 'h.pwrite(b"x" * 4096, 0); h.flush()' || die "first write failed"

[ "$(node_stat patient dropped_unanswering)" = 0 ] || die "a connection was dropped while the server answered"

# Frozen, then back within retry-timeout: the requests issued meanwhile complete.
frozen_within_window "$NBDKIT_PID" "$tmp/remote.img"

# Frozen for longer than retry-timeout: EIO, degraded, and recovery after SIGCONT.
frozen_past_window "$NBDKIT_PID"

# Up but always slower than request-timeout (reads take 3 s): each attempt is dropped and each
# reconnect works; the read still ends, with EIO, after request-timeout + retry-timeout.
slow_port=$(free_port)
nbdkit -f --exit-with-parent -i 127.0.0.1 -p "$slow_port" --filter=delay file "$tmp/remote.img" rdelay=3 \
        >>"$tmp/nbdkit-slow.log" 2>&1 &
slow_pid=$!
cleanup_fn "kill -KILL $slow_pid 2>/dev/null"
wait_for 60 nbdinfo --size "nbd://127.0.0.1:$slow_port/" || die "slow nbdkit did not start"
orionctl node-add slow nbd "uri=nbd://127.0.0.1:$slow_port/" request-timeout=1 retry-timeout=2 >/dev/null ||
        die "node-add of the slow node failed"
orionctl export-add slow slow protocols=nbd >/dev/null || die "export-add failed"
nbdsh -u "nbd://127.0.0.1:$NBD_PORT/slow" -c 'h.pwrite(b"s" * 4096, 16384)' || die "write to the slow server failed"
read_gets_eio 120 "nbd://127.0.0.1:$NBD_PORT/slow" 0 || die "a request to an always-too-slow server did not end with EIO"
cmp <(dd if="$tmp/remote.img" bs=4096 skip=4 count=1 status=none) <(head -c 4096 /dev/zero | tr '\0' s) ||
        die "the write to the slow server is not on it"
stop_oriond
