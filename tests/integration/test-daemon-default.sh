#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# No config anywhere: oriond serves the built-in default, a sparse 1 GiB file volume "vol0" in
# the state directory, over NBD; and `orionctl shutdown` stops it cleanly.
. "$(dirname "$0")/functions.sh"
requires nbdinfo nbdsh python3
[ ! -e /etc/orion/oriond.conf ] || skip "/etc/orion/oriond.conf exists: the default is not used"

port=$(free_port)
# As root the default also mounts its FUSE file on /run/orion/fuse: do that in a private mount
# namespace so that concurrent runs (and a system oriond) do not collide.
launcher=()
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && unshare -m --propagation private true 2>/dev/null; then
        launcher=(unshare -m --propagation private)
fi
"${launcher[@]}" "$ORIOND" --foreground --pidfile "$tmp/oriond.pid" --control-socket "$CTL_SOCK" \
        --state-dir "$tmp/state" --nbd-listen "127.0.0.1:$port" >"$tmp/oriond.log" 2>&1 &
ORIOND_PID=$!
ready_or_dead() { [ -s "$tmp/oriond.pid" ] || ! kill -0 "$ORIOND_PID" 2>/dev/null; }
wait_for 60 ready_or_dead && [ -s "$tmp/oriond.pid" ] || { cat "$tmp/oriond.log"; die "oriond did not become ready"; }
[ "$(cat "$tmp/oriond.pid")" = "$ORIOND_PID" ] || die "pidfile holds the wrong pid"
grep -q "serving the built-in default" "$tmp/oriond.log" || die "no note about the default"

[ "$(nbdinfo --size "nbd://127.0.0.1:$port/vol0")" = 1073741824 ] || die "vol0 is not 1 GiB"
nbdinfo --list "nbd://127.0.0.1:$port" | grep -q 'export="vol0"' || die "vol0 not listed"
img=$tmp/state/vol0.img
[ -f "$img" ] || die "no volume file in the state directory"
[ "$(stat -c %s "$img")" = 1073741824 ] || die "volume file is not 1 GiB"
[ "$(stat -c %b "$img")" -lt 2048 ] || die "volume file is not sparse"
[ "$(stat -c %a "$tmp/state")" = 700 ] || die "state directory is not 0700"
[ "$(stat -c %a "$CTL_SOCK")" = 600 ] || die "control socket is not 0600"
orionctl --json node-info vol0 | grep -q '"type":"file"' || die "vol0 is not a file node"

# the FUSE file, where the default has one (root, /dev/fuse, FUSE built, private namespace)
if [ ${#launcher[@]} -gt 0 ] && [ -c /dev/fuse ] && orionctl --json export-list | grep -q '"fuse"'; then
        [ "$(nsenter -t "$ORIOND_PID" -m stat -c %s /run/orion/fuse/vol0.img)" = 1073741824 ] ||
                die "FUSE file of the default is not 1 GiB"
        echo "FUSE file checked"
fi

# data written through NBD lands in the file
nbdsh -u "nbd://127.0.0.1:$port/vol0" -c "h.pwrite(b'orion-default' * 100, 4096); h.flush()"
[ "$(dd if="$img" bs=1 skip=4096 count=13 status=none)" = orion-default ] || die "write not in the volume file"

orionctl shutdown | grep -q "shutting down" || die "shutdown reply"
rc=0
wait "$ORIOND_PID" || rc=$?
ORIOND_PID=
[ $rc = 0 ] || die "oriond exited $rc after orionctl shutdown"

# a restart serves the same volume with the data in it
"${launcher[@]}" "$ORIOND" --foreground --pidfile "$tmp/oriond.pid" --control-socket "$CTL_SOCK" \
        --state-dir "$tmp/state" --nbd-listen "127.0.0.1:$port" >>"$tmp/oriond.log" 2>&1 &
ORIOND_PID=$!
wait_for 60 ready_or_dead && [ -s "$tmp/oriond.pid" ] || die "oriond did not restart"
nbdsh -u "nbd://127.0.0.1:$port/vol0" -c "assert h.pread(13, 4096) == b'orion-default'" || die "data lost across restart"
stop_oriond
