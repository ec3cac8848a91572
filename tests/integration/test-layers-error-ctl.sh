#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The error and delay layers driven at run time through orionctl: set/enable/disable/status
# change what an NBD client sees; transient counts heal; bad arguments are refused.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
requires nbdsh
[ -e "$ORION_PLUGIN_DIR/orion-error.so" ] || skip "error plugin not built"

conf=$tmp/oriond.conf
nbd_config "$conf"
cat >>"$conf" <<CONF
[node m]
type = memory
size = 8M

[node slow]
type = delay
child = m

[node faulty]
type = error
child = slow
enabled = off

[export vol]
node = faulty
protocols = nbd
CONF
start_oriond "$conf"
uri=nbd://127.0.0.1:$NBD_PORT/vol

nbdsh -u "$uri" -c 'h.pwrite(b"a" * 65536, 0); assert h.pread(65536, 0) == b"a" * 65536' ||
        die "disabled error layer failed requests"

# reads of [64K, 128K) fail with ENOSPC, twice, then heal
orionctl ctl faulty set error=ENOSPC ops=read offset=64K length=64K count=2 enabled=on >/dev/null || die "ctl set failed"
nbdsh -u "$uri" -c '
import errno
assert h.pread(4096, 0) == b"a" * 4096
for i in range(2):
    try:
        h.pread(4096, 65536)
        raise AssertionError("read did not fail")
    except nbd.Error as e:
        assert e.errnum == errno.ENOSPC, e.errnum
h.pread(4096, 65536)      # healed after count=2
' || die "ctl-set rule not applied as configured"
orionctl --json ctl faulty status >"$tmp/status.json" || die "ctl status failed"
/usr/bin/python3 - "$tmp/status.json" <<'PY' || die "status does not report the injections"
import json, sys
d = json.load(open(sys.argv[1]))
d = d.get("result", d)
assert d["injected"] == 2, d
assert d["error"] == "ENOSPC", d
PY

# JSON form, then disable
orionctl ctl faulty set '{"error":"EIO","ops":"write flush","count":0,"offset":0,"length":0}' >/dev/null || die "ctl set (JSON) failed"
nbdsh -u "$uri" -c '
import errno
try:
    h.pwrite(b"b" * 4096, 0)
    raise AssertionError("write did not fail")
except nbd.Error as e:
    assert e.errnum == errno.EIO
assert h.pread(4096, 0) == b"a" * 4096   # the failed write never reached the child
' || die "EIO on write not seen"
orionctl ctl faulty disable >/dev/null || die "ctl disable failed"
nbdsh -u "$uri" -c 'h.pwrite(b"c" * 4096, 0); h.flush(); assert h.pread(4096, 0) == b"c" * 4096' ||
        die "disable did not heal"

# bad arguments are refused with a reason and a non-zero exit
if orionctl ctl faulty set rate=7 >"$tmp/bad" 2>&1; then die "rate=7 accepted"; fi
grep -q "rate" "$tmp/bad" || die "no reason given for a bad rate"
if orionctl ctl faulty frobnicate >"$tmp/bad" 2>&1; then die "unknown verb accepted"; fi

# the delay layer: latency changed at run time shows in its status
orionctl ctl slow set read-delay=20ms >/dev/null || die "delay set failed"
orionctl --json ctl slow status | grep -q '"read-delay":20000' || die "delay status wrong"
nbdsh -u "$uri" -c '
import time
t = time.monotonic(); h.pread(4096, 0)
assert time.monotonic() - t >= 0.02, "read was not delayed"
' || die "read-delay not applied"
if orionctl ctl slow set read-delay=soon >/dev/null 2>&1; then die "bad duration accepted"; fi
stop_oriond
