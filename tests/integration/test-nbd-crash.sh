#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# kill -9 oriond during a parallel write + flush workload on a file node; after a restart every
# write acknowledged before a successful flush is there.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
requires nbdsh

nbd_file_volume 64M

# Writer: block i (4 KiB at i * 4 KiB) holds its sequence number; 16 writes in flight, then a
# flush; after each successful flush it records (fsync'd) the highest sequence it covers.
cat >"$tmp/writer.py" <<'PY'
import os, struct, sys
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
log = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
blk = lambda i: struct.pack(">Q", i + 1) * 512
i = 0
try:
    while i + 16 <= 16384:
        cookies = [h.aio_pwrite(blk(j), j * 4096) for j in range(i, i + 16)]
        while h.aio_in_flight() > 0:
            h.poll(-1)
        for c in cookies:
            assert h.aio_command_completed(c)   # raises if the write failed
        h.flush()
        i += 16
        os.write(log, b"%d\n" % i)
        os.fsync(log)
except nbd.Error:
    pass
PY
/usr/bin/python3 "$tmp/writer.py" "$uri" "$tmp/flushed" 2>/dev/null &
writer=$!
cleanup_fn "kill $writer 2>/dev/null"
# Let it run a while (a few hundred flushes), then kill the daemon under load.
wait_for 60 sh -c "[ \"\$(tail -n1 '$tmp/flushed' 2>/dev/null || echo 0)\" -ge 1600 ]" ||
        die "the writer made no progress"
kill9_oriond
wait "$writer" || true
flushed=$(tail -n1 "$tmp/flushed")
echo "writes acknowledged before a flush: $flushed"

start_oriond "$tmp/oriond.conf"
nbdsh -u "$uri" -c "
import struct
n = $flushed
data = h.pread(n * 4096, 0) if n * 4096 <= (32 << 20) else None
assert data is not None
for i in range(n):
    want = struct.pack('>Q', i + 1) * 512
    if data[i * 4096:(i + 1) * 4096] != want:
        raise AssertionError('block %d lost after the crash' % i)
print('verified', n, 'blocks')
" || die "flushed data lost after kill -9"
stop_oriond
