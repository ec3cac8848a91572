#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# nbd leaf over a remote nbdkit: data written through an Orion export lands byte-identical on
# the remote and the reverse; block status of the sparse remote is visible through Orion.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/remote-functions.sh"
requires nbdkit nbdcopy nbdsh
cleanup_fn nbdkit_kill
cleanup_fn stop_oriond_first

remote_port=$(free_port)
nbdkit_start "$remote_port" memory 32M
remote_volume remote nbd "nbd://127.0.0.1:$remote_port/" 10
direct=nbd://127.0.0.1:$remote_port/

[ "$(nbdinfo --size "$orion")" = $((32 << 20)) ] || die "size through Orion is wrong"
# nbdkit memory advertises multi-conn: the leaf opens several connections
orionctl --json node-info remote | grep -q '"connections":2' || die "multi-conn not used"

# Orion -> remote
head -c $((8 << 20)) /dev/urandom >"$tmp/a"
nbdcopy "$tmp/a" "$orion" || die "nbdcopy into Orion failed"
nbdsh -u "$direct" -c "open('$tmp/a.direct','wb').write(h.pread(8 << 20, 0))" || die "direct read failed"
cmp "$tmp/a" "$tmp/a.direct" || die "remote does not hold what was written through Orion"

# remote -> Orion
head -c $((4 << 20)) /dev/urandom >"$tmp/b"
nbdsh -u "$direct" -c "h.pwrite(open('$tmp/b','rb').read(), 20 << 20); h.flush()" || die "direct write failed"
nbdsh -u "$orion" -c "open('$tmp/b.orion','wb').write(h.pread(4 << 20, 20 << 20))" || die "read through Orion failed"
cmp "$tmp/b" "$tmp/b.orion" || die "Orion does not show what the remote holds"

# block status: [0,8M) data, [8M,20M) hole, [20M,24M) data, rest hole
nbdinfo --map "$orion" >"$tmp/map" || die "nbdinfo --map failed"
cat "$tmp/map"
awk '$1 == 8388608 && $3 == 3 {h1=1} $1 == 20971520 && $3 == 0 {d=1} $1 == 25165824 && $3 == 3 {h2=1}
     END {exit !(h1 && d && h2)}' "$tmp/map" || die "block status of the sparse remote not visible through Orion"

# trim and zero through Orion reach the remote
nbdsh -u "$orion" -c 'h.zero(1 << 20, 0); h.trim(1 << 20, 1 << 20); h.flush()' || die "zero/trim failed"
nbdsh -u "$direct" -c 'assert h.pread(1 << 20, 0) == bytes(1 << 20)' || die "zeroes did not reach the remote"
stop_oriond
