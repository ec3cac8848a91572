#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A member failed while the array went on writing; after a restart with the member healthy
# again its older event count marks it stale, so it is rebuilt, never trusted. The rebuild is
# checkpointed: a daemon killed in the middle resumes where the superblock says.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/raid-functions.sh"
requires nbdcopy cmp

conf=$tmp/oriond.conf
nbd_config "$conf"
raid_members "$conf" s 4 33M
start_oriond "$conf"
raid_create r5 5 "s0 s1 s2 s3"
random_file "$tmp/a" "$(size_of r5)"
put "$tmp/a" r5
orionctl raid fail r5 s1 >/dev/null || die "fail s1"
orionctl raid fail r5 s2 2>"$tmp/err" && die "a second failure on raid5 was accepted"
random_file "$tmp/b" "$(size_of r5)"
put "$tmp/b" r5
check "$tmp/b" r5
stop_oriond

# restart: s1 has an old event count; a slow rebuild (rate limit) is killed half way
cat >>"$conf" <<CONF
[node r5]
type = raid
level = 5
children = s3 s2 s1 s0
rebuild-rate = 1M

[export r5]
node = r5
protocols = nbd
CONF
start_oriond "$conf"
grep -q "'s1' is stale" "$tmp/oriond.log" || die "stale member not detected"
[ "$(raid_json r5 "s['members'][1]['state']")" = rebuilding ] || die "stale member not rebuilding"
# At 1 MiB/s the 32 MiB member takes half a minute: reading the array first could let a
# faster rebuild finish before the kill, so the data check comes after the restart.
wait_for 120 sh -c "[ \$($ORIONCTL --socket $CTL_SOCK --json raid status r5 | /usr/bin/python3 -c \
        'import json,sys; print(json.load(sys.stdin)[\"members\"][1].get(\"recovery\", 0))') -ge $((8 << 20)) ]" ||
        die "rebuild made no progress"
kill9_oriond
start_oriond "$conf"
pos=$(raid_json r5 "s['members'][1].get('recovery', 0)")
[ "$pos" -ge $((4 << 20)) ] || die "rebuild restarted from $pos instead of its checkpoint"
grep -q "resumes rebuilding" "$tmp/oriond.log" || die "no resume message"
check "$tmp/b" r5   # served from the others while the rebuild goes on
raid_wait r5
[ "$(raid_json r5 "s['degraded']")" = 0 ] || die "still degraded"
# the rebuilt member carries data: lose another one
orionctl raid fail r5 s3 >/dev/null || die "fail s3"
check "$tmp/b" r5
stop_oriond
