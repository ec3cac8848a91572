#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Corrupt members behind the daemon's back: scrub counts the bad sectors, repair fixes them
# (raid6 locates the bad data block, raid1 with three mirrors outvotes it, raid5 rewrites a bad
# parity block), a second scrub finds nothing and the data reads back unchanged.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/raid-functions.sh"
requires nbdcopy cmp dd

conf=$tmp/oriond.conf
nbd_config "$conf"
raid_members "$conf" s 5
raid_members "$conf" p 4
raid_members "$conf" m 3
start_oriond "$conf"
raid_create r6 6 "s0 s1 s2 s3 s4"
raid_create r5 5 "p0 p1 p2 p3"
raid_create r1 1 "m0 m1 m2"

# corrupt FILE OFFSET: 8 KiB of junk (16 sectors) at member data offset OFFSET
corrupt() {
        head -c 8192 /dev/urandom | dd of="$1" bs=4096 seek=$(((1048576 + $2) / 4096)) conv=notrunc,fsync status=none
}
# raid6 on 5: row 0 has Q on member 0, P on 4, data on 1..3; row 1 P on 3, Q on 4, data 0..2.
# raid5 on 4: row 0 has P on member 3.
for spec in "r6 s-d2.img 8192" "r6 s-d0.img 65536" "r5 p-d3.img 4096" "r1 m-d1.img 0"; do
        set -- $spec
        n=$1
        [ -f "$tmp/$n.data" ] || { random_file "$tmp/$n.data" "$(size_of $n)"; put "$tmp/$n.data" $n; }
        orionctl flush "$n" >/dev/null 2>&1 || true
        [ "$(raid_scrub $n)" = 0 ] || die "$n: mismatches before the corruption"
        corrupt "$tmp/$2" "$3"
        [ "$(raid_scrub $n)" = 16 ] || die "$n: check did not count the 16 corrupt sectors of $2"
        [ "$(raid_scrub $n repair)" = 16 ] || die "$n: repair did not see the 16 sectors"
        [ "$(raid_scrub $n)" = 0 ] || die "$n: mismatches left after repair"
        check "$tmp/$n.data" $n
done
orionctl --json stats r6 | grep -q '"mismatches":0' || die "mismatch count not in stats"
orionctl raid scrub r6 bogus 2>/dev/null && die "bad scrub action accepted"
stop_oriond
