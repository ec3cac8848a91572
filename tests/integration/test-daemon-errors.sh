#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Refusals with clear messages: orionctl without a daemon, config errors naming the line or the
# node, bad options, a control socket already in use.
. "$(dirname "$0")/functions.sh"
requires python3

# orionctl with nothing listening: exit 3 and the hint
rc=0
orionctl status >"$tmp/out" 2>"$tmp/err" || rc=$?
[ $rc = 3 ] || die "orionctl without oriond: exit $rc, want 3"
grep -q "cannot connect to $CTL_SOCK: .*(is oriond running?)" "$tmp/err" || { cat "$tmp/err"; die "no connect hint"; }
rc=0
"$ORIONCTL" --socket /nonexistent/dir/oriond.sock node-list 2>"$tmp/err" || rc=$?
[ $rc = 3 ] && grep -q "No such file or directory (is oriond running?)" "$tmp/err" || die "missing socket message"

# config syntax errors name the file and the line
printf '[daemon]\nstate-dir = %s\n\n[node a]\ntype = memory\nthis line is wrong\n' "$tmp/state" >"$tmp/bad1.conf"
start_oriond_fails "$tmp/bad1.conf" "bad1.conf: line 6"
printf '[daemon]\nworkers = lots\n' >"$tmp/bad2.conf"
start_oriond_fails "$tmp/bad2.conf" "line 2: workers = 'lots'"
printf '[node a]\ntype = memory\nsize = 1M\n[export e]\nnode = b\n' >"$tmp/bad3.conf"
start_oriond_fails "$tmp/bad3.conf" "no node named 'b'"
# semantic errors name the node
printf '[node a]\ntype = memory\nsize = huge\n' >"$tmp/bad4.conf"
start_oriond_fails "$tmp/bad4.conf" "node 'a'.*'huge' is not a size"
printf '[node a]\ntype = teleport\n' >"$tmp/bad5.conf"
start_oriond_fails "$tmp/bad5.conf" "unknown node type 'teleport'"
start_oriond_fails "$tmp/does-not-exist.conf" "cannot open config '$tmp/does-not-exist.conf'"
[ ! -e "$tmp/never.pid" ] || die "a pidfile was written by a daemon that failed"
[ ! -e "$CTL_SOCK" ] || die "a failed daemon left its control socket"

# usage errors: exit 2
rc=0; "$ORIOND" --no-such-option 2>/dev/null || rc=$?
[ $rc = 2 ] || die "oriond --no-such-option: exit $rc, want 2"
rc=0; "$ORIOND" --json 2>"$tmp/err" || rc=$?
[ $rc = 2 ] && grep -q "only goes with --list-types" "$tmp/err" || die "--json alone accepted"
"$ORIOND" --version | grep -qx "oriond [0-9.]*" || die "--version"
"$ORIOND" --help | grep -q -- "--nbd-listen ADDR" || die "--help"
"$ORIONCTL" --help | grep -q "Exit status" || die "orionctl --help"
"$ORIONCTL" node-add --help | grep -q "Usage: orionctl node-add NAME TYPE" || die "orionctl VERB --help"

# a second daemon on the same control socket is refused, the first keeps serving
printf '[node a]\ntype = memory\nsize = 1M\n' >"$tmp/ok.conf"
start_oriond "$tmp/ok.conf"
start_oriond_fails "$tmp/ok.conf" "control socket '$CTL_SOCK' is in use"
orionctl node-info a >/dev/null || die "first daemon lost its socket"
# a stale socket file (no one listening) is replaced
stop_oriond
python3 -c "import socket; s=socket.socket(socket.AF_UNIX); s.bind('$CTL_SOCK')"
[ -S "$CTL_SOCK" ] || die "could not make a stale socket"
start_oriond "$tmp/ok.conf"
orionctl node-info a >/dev/null || die "stale socket not replaced"
stop_oriond
[ ! -e "$CTL_SOCK" ] || die "control socket left after exit"
