#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The remote nbdkit stays away longer than retry-timeout: clients get EIO (nothing hangs), the
# node shows degraded in orionctl status, and it recovers when the server returns.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/remote-functions.sh"
requires nbdkit nbdsh
cleanup_fn nbdkit_kill
cleanup_fn stop_oriond_first

remote_port=$(free_port)
truncate -s 16M "$tmp/remote.img"
nbdkit_start "$remote_port" file "$tmp/remote.img"
remote_volume remote nbd "nbd://127.0.0.1:$remote_port/" 2
nbdsh -u "$orion" -c 'h.pwrite(b"x" * 4096, 0); h.flush()' || die "first write failed"

nbdkit_kill
timeout 60 nbdsh -u "$orion" -c '
import errno
for op in ("read", "write", "flush"):
    try:
        if op == "read": h.pread(4096, 0)
        elif op == "write": h.pwrite(b"y" * 4096, 8192)
        else: h.flush()
        raise AssertionError(op + " succeeded with the server gone")
    except nbd.Error as e:
        assert e.errnum == errno.EIO, (op, e.errnum)
' || die "clients did not get EIO past retry-timeout"
[ "$(node_health remote)" = degraded ] || die "node not degraded"
orionctl status | grep -E "^remote +nbd .* degraded" || die "orionctl status does not show the node degraded"

nbdkit_start "$remote_port" file "$tmp/remote.img"
wait_for 60 nbdsh -u "$orion" -c 'assert h.pread(4096, 0) == b"x" * 4096' || die "no recovery after the server returned"
[ "$(node_health remote)" = ok ] || die "node still not ok"
# the write that failed with EIO was never acknowledged, and may or may not be there; a new
# write works and reaches the server
nbdsh -u "$orion" -c 'h.pwrite(b"z" * 4096, 12288); h.flush()' || die "write after recovery failed"
cmp <(dd if="$tmp/remote.img" bs=4096 skip=3 count=1 status=none) <(head -c 4096 /dev/zero | tr '\0' z) ||
        die "write after recovery not on the server"
stop_oriond
