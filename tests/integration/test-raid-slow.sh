#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Members that wait (delay layer with a latency and a shared rate, under an error layer): the
# array notices and submits member batches in parallel; raid0 and raid5 data read back through
# that path, also with a raid5 member failing mid-way (degraded reads and writes in parallel).
# Memory members are CPU work: those batches run inline. Nothing here asserts a speed.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/raid-functions.sh"
requires nbdcopy cmp
[ -e "$ORION_PLUGIN_DIR/orion-delay.so" ] || skip "delay plugin not built"

conf=$tmp/oriond.conf
nbd_config "$conf"
# slow_members PREFIX N: memory PREFIX-mI under delay PREFIX-sI under error PREFIXI
slow_members() {
        local p=$1 n=$2 i
        for ((i = 0; i < n; i++)); do
                printf '[node %s-m%d]\ntype = memory\nsize = 17M\n\n' "$p" $i >>"$conf"
                printf '[node %s-s%d]\ntype = delay\nchild = %s-m%d\nread-delay = 2ms\nwrite-delay = 2ms\nrate = 200M\n\n' \
                        "$p" $i "$p" $i >>"$conf"
                printf '[node %s%d]\ntype = error\nchild = %s-s%d\nenabled = off\n\n' "$p" $i "$p" $i >>"$conf"
        done
}
slow_members a 3
slow_members b 4
for i in 0 1 2; do printf '[node c%d]\ntype = memory\nsize = 17M\n\n' $i >>"$conf"; done
start_oriond "$conf"

orionctl --json ctl a-s0 status | grep -q '"rate":209715200' || die "delay status does not show the rate"
raid_create r0 0 "a0 a1 a2"
raid_create r5 5 "b0 b1 b2 b3"
raid_create m0 0 "c0 c1 c2"

stat_of() {
        orionctl --json stats "$1" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$1']['$2'])"
}
for n in r0 r5 m0; do
        random_file "$tmp/$n.data" "$(size_of $n)"
        put "$tmp/$n.data" $n
        check "$tmp/$n.data" $n
done
for n in r0 r5; do
        [ "$(stat_of $n parallel-batches)" -gt 0 ] || die "$n: members wait, yet no batch went out in parallel"
done
[ "$(stat_of m0 inline-batches)" -gt 0 ] || die "m0: memory members, yet no batch ran inline"

# a raid5 member fails: reads reconstruct, writes go on, all through the parallel path
orionctl ctl b2 enable >/dev/null
check "$tmp/r5.data" r5
random_file "$tmp/r5.data" "$(size_of r5)"
put "$tmp/r5.data" r5
check "$tmp/r5.data" r5
[ "$(raid_json r5 "s['degraded']")" = 1 ] || die "r5: the failed member is not counted"
[ "$(stat_of r5 degraded-reads)" -gt 0 ] || die "r5: no degraded reads counted"
# injection off again, or the shutdown flush of b2 itself fails
orionctl ctl b2 disable >/dev/null
stop_oriond
