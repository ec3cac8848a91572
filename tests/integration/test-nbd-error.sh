#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Errors injected by the `error` layer reach NBD clients with the right NBD error values
# (structured and simple replies), and the connection keeps serving the healthy ranges.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
requires nbdsh
[ -e "$ORION_PLUGIN_DIR/orion-error.so" ] || skip "error plugin not built"

conf=$tmp/oriond.conf
nbd_config "$conf"
cat >>"$conf" <<CONF
[node m0]
type = memory
size = 8M

[node bad]
type = error
child = m0
error = EIO
ops = read
offset = 1M
length = 1M

[node m1]
type = memory
size = 8M

[node full]
type = error
child = m1
error = ENOSPC
ops = write
offset = 4M
length = 1M

[node m2]
type = memory
size = 8M

[node noflush]
type = error
child = m2
error = EIO
ops = flush

[export bad]
node = bad
protocols = nbd

[export full]
node = full
protocols = nbd

[export noflush]
node = noflush
protocols = nbd
CONF
start_oriond "$conf"

for structured in True False; do
nbdsh -c "h.set_request_structured_replies($structured)" -u "nbd://127.0.0.1:$NBD_PORT/bad" -c '
import errno
assert h.pread(4096, 0) == bytes(4096)
for off in (1 << 20, (2 << 20) - 512, (1 << 20) - 100):
    try:
        h.pread(4096, off)
        raise AssertionError("read at %d did not fail" % off)
    except nbd.Error as e:
        assert e.errnum == errno.EIO, e.errno
h.pwrite(b"w" * 4096, 1 << 20)       # writes are not affected
assert h.pread(4096, 3 << 20) == bytes(4096)
print("bad ok")
' || die "EIO on read did not reach the client (structured=$structured)"
done

nbdsh -u "nbd://127.0.0.1:$NBD_PORT/full" -c '
import errno
h.pwrite(b"a" * 4096, 0)
try:
    h.pwrite(b"a" * 4096, 4 << 20)
    raise AssertionError("write did not fail")
except nbd.Error as e:
    assert e.errnum == errno.ENOSPC, e.errno
assert h.pread(4096, 0) == b"a" * 4096
assert h.pread(4096, 4 << 20) == bytes(4096)  # the failed write never reached the child
' || die "ENOSPC on write did not reach the client"

nbdsh -u "nbd://127.0.0.1:$NBD_PORT/noflush" -c '
import errno
h.pwrite(b"a" * 4096, 0)
try:
    h.flush()
    raise AssertionError("flush did not fail")
except nbd.Error as e:
    assert e.errnum == errno.EIO, e.errno
assert h.pread(4096, 0) == b"a" * 4096       # still serving
' || die "EIO on flush did not reach the client"
# Heal the flush fault at run time, after which flushes work again (and oriond can exit 0).
orionctl ctl noflush disable >/dev/null || die "orionctl ctl noflush disable failed"
nbdsh -u "nbd://127.0.0.1:$NBD_PORT/noflush" -c 'h.flush()' || die "flush still failing after disable"
stop_oriond
