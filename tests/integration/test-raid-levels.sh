#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every level (0, 1, 5, 6, 10 and raid50 stacked on two raid5) through the NBD export: random
# data reads back; after a restart with the children listed in another order the arrays
# assemble from their superblocks and still hold it; inspect names a member's array.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/raid-functions.sh"
requires nbdcopy cmp

conf=$tmp/oriond.conf
nbd_config "$conf"
raid_members "$conf" a 3
raid_members "$conf" b 3
raid_members "$conf" c 4
raid_members "$conf" d 5
raid_members "$conf" e 4
raid_members "$conf" f 6
start_oriond "$conf"

raid_create r0 0 "a0 a1 a2" chunk=16K
raid_create r1 1 "b0 b1 b2"
raid_create r5 5 "c0 c1 c2 c3" chunk=32K
raid_create r6 6 "d0 d1 d2 d3 d4"
raid_create r10 10 "e0 e1 e2 e3"
orionctl format raid level=5 children="f0 f1 f2" >/dev/null || die "format f5a"
orionctl format raid level=5 children="f3 f4 f5" >/dev/null || die "format f5b"
orionctl node-add f5a raid level=5 children="f0 f1 f2" >/dev/null || die "node-add f5a"
orionctl node-add f5b raid level=5 children="f3 f4 f5" >/dev/null || die "node-add f5b"
raid_create r50 0 "f5a f5b"

for n in r0 r1 r5 r6 r10 r50; do
        random_file "$tmp/$n.data" "$(size_of $n)"
        put "$tmp/$n.data" $n
        check "$tmp/$n.data" $n
done
# sizes: 3x16M, 16M, 3x16M, 3x16M, 4x16M/2, 2 x (2x16M - metadata of the raid5 children)
[ "$(size_of r0)" = $((48 << 20)) ] || die "raid0 size $(size_of r0)"
[ "$(size_of r1)" = $((16 << 20)) ] || die "raid1 size"
[ "$(size_of r5)" = $((48 << 20)) ] || die "raid5 size"
[ "$(size_of r6)" = $((48 << 20)) ] || die "raid6 size"
[ "$(size_of r10)" = $((32 << 20)) ] || die "raid10 size"
orionctl --json inspect c2 | grep -q '"level":5' || die "inspect does not show the raid5 member"
orionctl inspect c2 | grep -q "role: 2" || die "inspect lacks the role"
stop_oriond

# Restart with the arrays in the config, children shuffled.
cat >>"$conf" <<CONF
[node r0]
type = raid
level = 0
children = a2 a0 a1

[node r1]
type = raid
level = 1
children = b1 b2 b0

[node r5]
type = raid
level = 5
children = c3 c1 c0 c2

[node r6]
type = raid
level = 6
children = d4 d2 d0 d3 d1

[node r10]
type = raid
level = 10
children = e2 e3 e1 e0

[node f5a]
type = raid
level = 5
children = f2 f0 f1

[node f5b]
type = raid
level = 5
children = f5 f4 f3

[node r50]
type = raid
level = 0
children = f5b f5a
CONF
for n in r0 r1 r5 r6 r10 r50; do printf '[export %s]\nnode = %s\nprotocols = nbd\n\n' $n $n >>"$conf"; done
start_oriond "$conf"
for n in r0 r1 r5 r6 r10 r50; do check "$tmp/$n.data" $n; done
for n in r1 r5 r6 r10; do
        [ "$(raid_scrub $n)" = 0 ] || die "$n: scrub found mismatches on a clean array"
done
# a member of another array is refused, and so is a wrong level
orionctl node-add bad raid level=5 children="c0 c1 d2 c3" 2>"$tmp/err" && die "mixed arrays assembled"
grep -q "another array" "$tmp/err" || die "unexpected error: $(cat "$tmp/err")"
orionctl node-add bad raid level=6 children="c0 c1 c2 c3" 2>"$tmp/err" && die "wrong level accepted"
stop_oriond
