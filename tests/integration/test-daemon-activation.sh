#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Socket activation (LISTEN_FDS): oriond stays in the foreground, uses the built-in default when
# there is no config, and runs without a control socket when another oriond holds it.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"

# A captive daemon that outlives a failed nbdinfo must not hang the test: it gets a pidfile, and
# nbdinfo's output goes to a file (a $(...) would wait for the daemon's copy of the pipe).
kill_captive() { local f; for f in "$tmp"/cap*.pid; do [ -s "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done; true; }
cleanup_fn kill_captive

nbd_config "$tmp/oriond.conf"
printf '[node m0]\ntype = memory\nsize = 3M\n[export m0]\nnode = m0\n' >>"$tmp/oriond.conf"
start_oriond "$tmp/oriond.conf"      # owns $CTL_SOCK

# a captive daemon on the same control socket: a warning, and it serves anyway
printf '[node c0]\ntype = memory\nsize = 5M\n[export c0]\nnode = c0\n' >"$tmp/captive.conf"
nbdinfo --size -- [ "$ORIOND" --config "$tmp/captive.conf" --control-socket "$CTL_SOCK" \
        --state-dir "$tmp/state2" --pidfile "$tmp/cap1.pid" ] >"$tmp/size1" 2>"$tmp/captive.log" ||
        { cat "$tmp/captive.log"; die "captive oriond failed"; }
[ "$(cat "$tmp/size1")" = 5242880 ] || die "captive daemon served $(cat "$tmp/size1") bytes"
grep -q "in use.*running without a control socket" "$tmp/captive.log" || { cat "$tmp/captive.log"; die "no warning"; }
orionctl node-info m0 >/dev/null || die "the first daemon lost its control socket"
stop_oriond

# no config at all: the built-in default, 1 GiB (in a private mount namespace as root, where
# the default also mounts its FUSE file)
[ ! -e /etc/orion/oriond.conf ] || skip "/etc/orion/oriond.conf exists"
launcher=()
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && unshare -m --propagation private true 2>/dev/null; then
        launcher=(unshare -m --propagation private)
fi
nbdinfo --size -- [ "${launcher[@]}" "$ORIOND" --control-socket "$tmp/c2.sock" --state-dir "$tmp/state3" \
        --pidfile "$tmp/cap2.pid" ] >"$tmp/size2" 2>"$tmp/default.log" || { cat "$tmp/default.log"; die "captive default failed"; }
[ "$(cat "$tmp/size2")" = 1073741824 ] || die "captive default served $(cat "$tmp/size2") bytes"
[ -f "$tmp/state3/vol0.img" ] || die "no vol0.img in the state directory"
