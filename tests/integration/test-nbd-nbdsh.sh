#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# nbdsh checks: trim and write-zeroes read back zeroes, block status of a sparse volume (with
# and without REQ_ONE), holes in structured reads, FUA, out-of-range and oversize requests get
# EINVAL/ENOSPC while the connection stays usable, read-only exports refuse writes with EPERM.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
requires nbdsh

conf=$tmp/oriond.conf
nbd_config "$conf"
cat >>"$conf" <<CONF
[node disk]
type = file
path = $tmp/disk.img
size = 64M

[node m1]
type = memory
size = 1M

[export vol0]
node = disk
protocols = nbd

[export ro]
node = m1
protocols = nbd
read-only = on
CONF
start_oriond "$conf"

nbdsh --base-allocation -u "nbd://127.0.0.1:$NBD_PORT/vol0" -c '
import errno
M = 1 << 20
def expect_err(what, code, fn):
    try:
        fn()
    except nbd.Error as e:
        assert e.errnum == code, "%s: got %s, want %s" % (what, e.errno, errno.errorcode[code])
        return
    raise AssertionError("%s: no error" % what)

assert h.get_structured_replies_negotiated()
assert h.can_meta_context("base:allocation")

# Sparse map: data at 1M and at 5M+7, the rest holes.
h.pwrite(b"A" * M, 1 * M)
h.pwrite(b"B" * 4096, 5 * M + 7, nbd.CMD_FLAG_FUA)
exts = []
def cb(ctx, off, ents, err):
    assert ctx == "base:allocation"
    exts.extend(zip(ents[0::2], ents[1::2]))
    return 0
h.block_status(8 * M, 0, cb)
pos, amap = 0, []
for ln, fl in exts:
    amap.append((pos, ln, fl)); pos += ln
assert pos >= 8 * M, amap
def flags_at(o):
    return [f for (p, l, f) in amap if p <= o < p + l][0]
assert flags_at(0) == 3, amap            # hole + zero
assert flags_at(1 * M) == 0, amap        # data
assert flags_at(3 * M) == 3, amap
assert flags_at(5 * M + 100) == 0, amap
one = []
h.block_status(8 * M, 1 * M, lambda c, o, e, err: one.extend(e) or 0, nbd.CMD_FLAG_REQ_ONE)
assert len(one) == 2 and one[0] == M and one[1] == 0, one

# A structured read over a sparse range sends holes as OFFSET_HOLE chunks.
chunks = []
def rcb(buf, off, st, err):
    chunks.append((off, len(buf), st)); return 0
data = h.pread_structured(4 * M, 0, rcb)
assert data[M:2 * M] == b"A" * M and data[:M] == bytes(M) and data[2 * M:] == bytes(2 * M)
assert any(st == nbd.READ_HOLE for (o, l, st) in chunks), chunks
assert any(st == nbd.READ_DATA for (o, l, st) in chunks), chunks
assert sum(l for (o, l, st) in chunks) == 4 * M

# Trim and write-zeroes read back zeroes (with and without NO_HOLE, and FAST_ZERO allowed to fail).
h.pwrite(b"C" * (2 * M), 10 * M)
h.trim(M, 10 * M)
h.zero(65536 + 3, 11 * M + 5)
h.zero(4096, 11 * M + 200000, nbd.CMD_FLAG_NO_HOLE)
d = h.pread(2 * M, 10 * M)
assert d[M + 5 : M + 5 + 65539] == bytes(65539)
assert d[M : M + 5] == b"CCCCC" and d[M + 5 + 65539 : M + 5 + 65539 + 10] == b"C" * 10
assert d[M + 200000 : M + 204096] == bytes(4096)
assert d[:M] in (bytes(M), b"C" * M) # trim is advisory: old data or zeroes, nothing else
try:
    h.zero(M, 20 * M, nbd.CMD_FLAG_FAST_ZERO)
    assert h.pread(M, 20 * M) == bytes(M)
except nbd.Error as e:
    assert e.errnum == errno.ENOTSUP, e

# FUA writes, flush, cache.
h.pwrite(b"F" * 4096, 30 * M, nbd.CMD_FLAG_FUA)
h.flush()
h.cache(M, 30 * M)
assert h.pread(4096, 30 * M) == b"F" * 4096

# Out-of-range and oversize requests: errors, and the connection stays usable.
size = h.get_size()
h.set_strict_mode(0)
expect_err("read past end", errno.EINVAL, lambda: h.pread(4096, size - 100))
expect_err("read at end+1", errno.EINVAL, lambda: h.pread(1, size + 1))
expect_err("write past end", errno.ENOSPC, lambda: h.pwrite(b"x" * 4096, size - 100))
expect_err("zero past end", errno.ENOSPC, lambda: h.zero(4096, size - 100))
expect_err("trim past end", errno.EINVAL, lambda: h.trim(4096, size - 100))
expect_err("block status past end", errno.EINVAL, lambda: h.block_status(4096, size, cb))
expect_err("oversize read", errno.EINVAL, lambda: h.pread((32 << 20) + 1, 0))
expect_err("oversize write", errno.EINVAL, lambda: h.pwrite(b"z" * ((32 << 20) + 1), 0))
expect_err("unknown flag", errno.EINVAL, lambda: h.pread(512, 0, 1 << 9))
assert h.pread(4096, 30 * M) == b"F" * 4096    # still serving, nothing was overwritten
assert h.pread(10, 0) == bytes(10)
print("vol0 ok")
' || die "nbdsh checks on vol0 failed"

nbdsh -u "nbd://127.0.0.1:$NBD_PORT/ro" -c '
import errno
assert h.is_read_only()
h.set_strict_mode(0)
for what, fn in [("write", lambda: h.pwrite(b"x" * 512, 0)), ("zero", lambda: h.zero(512, 0)), ("trim", lambda: h.trim(512, 0))]:
    try:
        fn()
        raise AssertionError(what + " on a read-only export succeeded")
    except nbd.Error as e:
        assert e.errnum == errno.EPERM, (what, e.errno)
assert h.pread(512, 0) == bytes(512)
print("ro ok")
' || die "nbdsh checks on the read-only export failed"
stop_oriond
