#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# sd_notify without libsystemd: READY=1 once serving and STOPPING=1 at shutdown, to a socket
# path and to an abstract socket, as systemd's NOTIFY_SOCKET gives either.
. "$(dirname "$0")/functions.sh"
requires python3

printf '[node m0]\ntype = memory\nsize = 1M\n' >"$tmp/oriond.conf"

# listener ADDRESS OUTFILE: receive datagrams into OUTFILE until STOPPING=1 (or 60 s)
listener() {
        python3 - "$1" "$2" <<'PY' &
import socket, sys
addr, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
s.settimeout(60)
open(out + ".bound", "w").close()
with open(out, "a") as f:
    while True:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            break
        f.write(msg + "\n---\n")
        f.flush()
        if "STOPPING=1" in msg:
            break
PY
}

for addr in "$tmp/notify.sock" "@orion-test-notify-$$"; do
        out=$tmp/notify.$RANDOM
        listener "$addr" "$out"
        lpid=$!
        wait_for 30 test -e "$out.bound" || die "notify listener did not start"
        NOTIFY_SOCKET=$addr start_oriond "$tmp/oriond.conf"
        wait_for 30 grep -q "READY=1" "$out" || die "no READY=1 on $addr"
        orionctl status >/dev/null || die "READY sent but the control socket does not answer"
        stop_oriond
        wait_for 30 grep -q "STOPPING=1" "$out" || die "no STOPPING=1 on $addr"
        wait $lpid || true
        # READY comes before STOPPING
        [ "$(grep -n READY=1 "$out" | cut -d: -f1)" -lt "$(grep -n STOPPING=1 "$out" | cut -d: -f1)" ] ||
                die "STOPPING before READY"
done
