#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# kill -9 oriond while raid5 and raid1 arrays take writes; after the restart the write-intent
# bitmap drives a resync of the dirty regions only, flushed data is intact, and a scrub then
# reports zero mismatches.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/raid-functions.sh"
requires nbdsh

conf=$tmp/oriond.conf
nbd_config "$conf"
raid_members "$conf" c 4
raid_members "$conf" m 2
start_oriond "$conf"
raid_create r5 5 "c0 c1 c2 c3" bitmap-chunk=1M
raid_create r1 1 "m0 m1" bitmap-chunk=1M
stop_oriond
cat >>"$conf" <<CONF
[node r5]
type = raid
level = 5
children = c0 c1 c2 c3

[node r1]
type = raid
level = 1
children = m0 m1

[export r5]
node = r5
protocols = nbd

[export r1]
node = r1
protocols = nbd
CONF
start_oriond "$conf"

# Writer: 4 KiB blocks in the first 4 MiB (partial stripes: read-modify-write), 16 in flight,
# a flush after every 64 batches, the flushed count logged; overwrites keep going until killed.
cat >"$tmp/writer.py" <<'PY'
import os, struct, sys
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
log = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
blk = lambda i, gen: struct.pack(">QQ", i, gen) * 256
gen = 0
try:
    while True:
        gen += 1
        for b in range(0, 1024, 16):
            cs = [h.aio_pwrite(blk(j, gen), j * 4096) for j in range(b, b + 16)]
            while h.aio_in_flight() > 0:
                h.poll(-1)
        h.flush()
        os.write(log, b"%d\n" % gen)
        os.fsync(log)
except nbd.Error:
    pass
PY
for n in r5 r1; do
        /usr/bin/python3 "$tmp/writer.py" "$(uri_of $n)" "$tmp/flushed-$n" 2>/dev/null &
        cleanup_fn "kill $! 2>/dev/null"
done
wait_for 60 sh -c "[ \"\$(tail -n1 '$tmp/flushed-r5' 2>/dev/null || echo 0)\" -ge 3 ] &&
        [ \"\$(tail -n1 '$tmp/flushed-r1' 2>/dev/null || echo 0)\" -ge 3 ]" || die "writers made no progress"
kill9_oriond
wait || true

start_oriond "$conf"
for n in r5 r1; do
        grep -q "raid '$n': resync of [0-9]* dirty regions started" "$tmp/oriond.log" ||
                die "$n: no bitmap resync after the crash"
        raid_wait $n
        resynced=$(orionctl --json stats $n | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$n']['resynced-bytes'])")
        [ "$resynced" -gt 0 ] && [ "$resynced" -lt $((16 << 20)) ] ||
                die "$n: resynced $resynced bytes: expected only the dirty regions"
        gen=$(tail -n1 "$tmp/flushed-$n")
        nbdsh -u "$(uri_of $n)" -c "
import struct
data = h.pread(4 << 20, 0)
for i in range(1024):
    idx, g = struct.unpack('>QQ', data[i * 4096:i * 4096 + 16])
    assert idx == i and g >= $gen, 'block %d: %d %d < flushed gen $gen' % (i, idx, g)
    assert data[i * 4096:(i + 1) * 4096] == data[i * 4096:i * 4096 + 16] * 256, 'block %d torn' % i
" || die "$n: flushed data lost"
        [ "$(raid_scrub $n)" = 0 ] || die "$n: scrub after the resync found mismatches"
done
stop_oriond
