#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# SIGTERM: a write in flight is finished and answered, every node is flushed, oriond exits 0;
# if the final flush fails, oriond says so and exits non-zero.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
requires nbdsh python3
[ -e "$ORION_PLUGIN_DIR/orion-delay.so" ] || skip "delay plugin not built"
[ -e "$ORION_PLUGIN_DIR/orion-error.so" ] || skip "error plugin not built"

# ---- drain and exit 0
conf=$tmp/oriond.conf
nbd_config "$conf"
cat >>"$conf" <<CONF
[node f0]
type = file
path = $tmp/f0.img
size = 4M

[node slow]
type = delay
child = f0
write-delay = 1500ms

[export slow]
node = slow
CONF
start_oriond "$conf"
head -c 65536 /dev/urandom >"$tmp/data"
# A write that takes 1.5 s in the daemon; SIGTERM arrives while it is in flight.
nbdsh -u "nbd://127.0.0.1:$NBD_PORT/slow" -c "
h.pwrite(open('$tmp/data','rb').read(), 1048576)
open('$tmp/acked','w').write('ok')
" >"$tmp/client.log" 2>&1 &
client=$!
delayed() { orionctl --json stats slow | python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin)['slow']['delayed'] >= 1 else 1)"; }
wait_for 60 delayed || die "the write never reached the delay node"
kill -TERM "$ORIOND_PID"
rc=0
wait "$ORIOND_PID" || rc=$?
ORIOND_PID=
[ $rc = 0 ] || die "oriond exited $rc after SIGTERM"
wait $client || { cat "$tmp/client.log"; die "the in-flight write was not answered"; }
[ -e "$tmp/acked" ] || die "client did not see its write acknowledged"
cmp -i 0:1048576 -n 65536 "$tmp/data" "$tmp/f0.img" || die "acknowledged write missing from the file after SIGTERM"
grep -q "received SIGTERM, shutting down" "$tmp/oriond.log" || die "no shutdown message"
grep -q "stopped" "$tmp/oriond.log" || die "no stop message"
[ ! -e "$tmp/oriond.pid" ] || die "pidfile left behind"

# ---- a failing final flush makes the exit status non-zero
conf2=$tmp/oriond2.conf
nbd_config "$conf2"
cat >>"$conf2" <<CONF
[node m0]
type = memory
size = 1M

[node broken]
type = error
child = m0
ops = flush
error = EIO
CONF
start_oriond "$conf2"
kill -TERM "$ORIOND_PID"
rc=0
wait "$ORIOND_PID" || rc=$?
ORIOND_PID=
[ $rc != 0 ] || die "oriond exited 0 although the final flush failed"
grep -q "flushing at shutdown failed" "$tmp/oriond.log" || die "no message about the failed flush"

# ---- SIGINT behaves as SIGTERM; SIGHUP is logged and ignored
start_oriond "$conf"
kill -HUP "$ORIOND_PID"
wait_for 30 grep -q "SIGHUP ignored" "$tmp/oriond.log" || die "SIGHUP not logged"
orionctl status >/dev/null || die "oriond died on SIGHUP"
kill -INT "$ORIOND_PID"
rc=0
wait "$ORIOND_PID" || rc=$?
ORIOND_PID=
[ $rc = 0 ] || die "oriond exited $rc after SIGINT"
