#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Levels 1, 5, 6, 10 under a fio verify workload through NBD: a member fails (error layer)
# in the middle and the workload still verifies; the hot spare takes over and is rebuilt; then
# a different member fails (raid6: two) and everything verifies again, which proves the
# rebuild wrote correct data. Finally `replace` swaps a member while it serves.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/raid-functions.sh"
requires fio nbdcopy cmp
fio --enghelp=nbd >/dev/null 2>&1 || skip "fio has no nbd engine"

conf=$tmp/oriond.conf
nbd_config "$conf"
raid_members "$conf" m 3   # raid1: 2 mirrors + spare
raid_members "$conf" p 5   # raid5: 4 + spare
raid_members "$conf" q 6   # raid6: 5 + spare
raid_members "$conf" t 5   # raid10: 4 + spare
start_oriond "$conf"
raid_create r1 1 "m0 m1" spares=m2
raid_create r5 5 "p0 p1 p2 p3" spares=p4
raid_create r6 6 "q0 q1 q2 q3 q4" spares=q5
raid_create r10 10 "t0 t1 t2 t3" spares=t4

# fio_verify NODE [extra fio args]: 12M of 4k random writes with crc32c, verified.
fio_verify() {
        local node=$1
        shift
        fio --name=v --ioengine=nbd --uri="$(uri_of "$node")" --rw=randwrite --bs=4k --iodepth=8 --size=12M \
                --verify=crc32c --verify_fatal=1 --do_verify=1 --randseed=42 "$@" >"$tmp/fio-$node.log" 2>&1
}
writes_of() {
        orionctl --json stats "$1" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$1']['write']['ops'])"
}

# busy NODE PID: fio (PID) has written a while, or has stopped
busy() { [ "$(writes_of "$1")" -ge 300 ] || ! kill -0 "$2" 2>/dev/null; }

for spec in "r1 m 1 0" "r5 p 1 2" "r6 q 1 3 4" "r10 t 1 2"; do
        set -- $spec
        node=$1 p=$2 first=$3
        shift 3
        fio_verify "$node" --rate_iops=,1500 &
        fio_pid=$!
        wait_for 60 busy "$node" $fio_pid || die "$node: no writes seen"
        kill -0 $fio_pid 2>/dev/null || { cat "$tmp/fio-$node.log"; die "$node: fio finished before the failure was injected"; }
        orionctl ctl "$p$first" enable >/dev/null
        wait $fio_pid || { cat "$tmp/fio-$node.log"; die "$node: fio verify failed with a member failing"; }
        # the spare took over; once rebuilt nothing is degraded
        raid_wait "$node"
        [ "$(raid_json "$node" "s['degraded']")" = 0 ] || die "$node: still degraded after the rebuild"
        [ "$(raid_json "$node" "s['faulty']")" = "['$p$first']" ] || die "$node: faulty list wrong"
        # a different member fails: the data must come through the rebuilt spare
        for second in "$@"; do orionctl ctl "$p$second" enable >/dev/null; done
        fio_verify "$node" --verify_only >/dev/null || { cat "$tmp/fio-$node.log"; die "$node: verify after rebuild failed"; }
        [ "$(raid_json "$node" "s['degraded']")" = "$#" ] || die "$node: degraded count wrong"
        # writes and reads still work degraded
        fio_verify "$node" --randseed=7 || { cat "$tmp/fio-$node.log"; die "$node: degraded fio failed"; }
done
orionctl --json stats r5 | grep -q '"rebuilt-bytes":16777216' || die "rebuilt bytes not counted"

# Hot replace (on the degraded raid10: t1 went to spare t4, t2 failed): t3 is copied to a
# fresh node while it keeps serving, then swapped out.
orionctl node-add x-d0 file path="$tmp/x-d0.img" size=17M >/dev/null || die "node-add x-d0"
orionctl node-add x0 error child=x-d0 enabled=off >/dev/null || die "node-add x0"
random_file "$tmp/r10.data" "$(size_of r10)"
put "$tmp/r10.data" r10
orionctl raid replace r10 t3 x0 --wait >/dev/null || die "replace failed"
[ "$(raid_json r10 "[m['name'] for m in s['members']]")" = "['t0', 't4', 't2', 'x0']" ] ||
        die "replace did not swap in x0: $(raid_json r10 "s['members']")"
check "$tmp/r10.data" r10
# heal the injected faults so that the shutdown flush of the error nodes succeeds
for e in m0 m1 p1 p2 q1 q3 q4 t1 t2; do orionctl ctl $e disable >/dev/null; done
stop_oriond
