#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Without --foreground oriond returns only once everything listens (so `oriond && client`
# works), keeps serving in the background, and reports a startup failure in its exit status.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"

conf=$tmp/oriond.conf
nbd_config "$conf"
printf '[node m0]\ntype = memory\nsize = 2M\n[export m0]\nnode = m0\n' >>"$conf"
"$ORIOND" --config "$conf" --pidfile "$tmp/oriond.pid" --control-socket "$CTL_SOCK" \
        --state-dir "$tmp/state" >"$tmp/oriond.log" 2>&1 || die "oriond (background) failed to start"
# no waiting: ready when the parent returns
[ -s "$tmp/oriond.pid" ] || die "parent returned before the pidfile was written"
ORIOND_PID=$(cat "$tmp/oriond.pid")
kill -0 "$ORIOND_PID" || die "daemon not running"
[ "$(nbdinfo --size "nbd://127.0.0.1:$NBD_PORT/m0")" = 2097152 ] || die "export not served after return"
orionctl status | grep -q "pid $ORIOND_PID" || die "status shows another pid"
# it left our session (setsid) and is not our child
[ "$(ps -o sid= -p "$ORIOND_PID" | tr -d ' ')" = "$ORIOND_PID" ] || die "daemon is not a session leader"
kill -TERM "$ORIOND_PID"
wait_for 60 sh -c "! kill -0 $ORIOND_PID 2>/dev/null" || die "daemon did not stop"
ORIOND_PID=
[ ! -e "$tmp/oriond.pid" ] || die "pidfile left behind"

# a startup failure is the parent's exit status
printf '[node m0]\ntype = memory\nsize = nope\n' >"$tmp/bad.conf"
rc=0
"$ORIOND" --config "$tmp/bad.conf" --control-socket "$CTL_SOCK" --state-dir "$tmp/state" 2>"$tmp/err" || rc=$?
[ $rc = 1 ] || die "background start with a bad config exited $rc"
grep -q "'nope' is not a size" "$tmp/err" || die "error message not shown"
