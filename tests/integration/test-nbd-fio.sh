#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# fio through its nbd engine: random writes with crc32c verification over two connections at
# queue depth 16 each, against a file node.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
requires fio
fio --enghelp=nbd >/dev/null 2>&1 || skip "fio has no nbd engine"

nbd_file_volume 16M

# Each job writes its own 8M region (offset_increment), so verification is exact.
fio --name=verify --ioengine=nbd --uri="nbd://127.0.0.1:$NBD_PORT/vol0" --rw=randwrite --bs=4k \
    --iodepth=16 --numjobs=2 --size=8M --offset_increment=8M --verify=crc32c --verify_fatal=1 \
    --do_verify=1 --verify_state_save=0 --group_reporting --output-format=json --output="$tmp/fio.json" >"$tmp/fio.err" 2>&1 ||
        { cat "$tmp/fio.err"; die "fio failed"; }
/usr/bin/python3 - "$tmp/fio.json" <<'PY' || die "fio result check failed"
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
assert j["error"] == 0, j["error"]
assert j["write"]["io_bytes"] == 16 << 20, j["write"]["io_bytes"]
assert j["read"]["io_bytes"] == 16 << 20, j["read"]["io_bytes"]   # the verify pass read it all back
PY
stop_oriond
