#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# NBD exports at run time: export-add makes an export visible at once, export-remove
# disconnects its clients (after their requests) so the node can be removed; a client that
# stalls in the handshake is dropped after nbd-handshake-timeout; nbd-max-connections holds.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
requires nbdsh

conf=$tmp/oriond.conf
nbd_config "$conf"
cat >>"$conf" <<CONF
nbd-handshake-timeout = 3
nbd-max-connections = 3

[node m0]
type = memory
size = 4M

[export vol0]
node = m0
protocols = nbd
CONF
start_oriond "$conf"
uri=nbd://127.0.0.1:$NBD_PORT

orionctl node-add m1 memory size=2M >/dev/null || die "node-add failed"
orionctl export-add vol1 m1 protocols=nbd >/dev/null || die "export-add failed"
expect_eq "size of an export added at run time" "$(nbdinfo --size "$uri/vol1")" 2097152

# A client holds vol1 open while it is removed: its connection ends, and the node is free.
cat >"$tmp/client.py" <<'PY'
import sys, time
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(b"k" * 4096, 0)
open(sys.argv[2], "w").write("connected\n")
for _ in range(600):
    try:
        h.pread(512, 0)
    except nbd.Error:
        print("disconnected")
        sys.exit(0)
    time.sleep(0.1)
sys.exit(1)
PY
/usr/bin/python3 "$tmp/client.py" "$uri/vol1" "$tmp/connected" >"$tmp/client.out" 2>&1 &
client=$!
wait_for 30 test -s "$tmp/connected" || die "client did not connect"
orionctl export-remove vol1 >/dev/null || die "export-remove failed"
wait "$client" || { cat "$tmp/client.out"; die "client was not disconnected by export-remove"; }
orionctl node-remove m1 >/dev/null || die "node still busy after its export was removed"
if nbdinfo --size "$uri/vol1" 2>/dev/null; then die "removed export still served"; fi

# A client that connects and says nothing is dropped after the handshake timeout.
/usr/bin/python3 - "$NBD_PORT" <<'PY' || die "silent client was not dropped"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
t = time.time()
data = b""
while True:
    d = s.recv(100)
    if not d:
        break
    data += d
assert len(data) == 18, data          # the greeting, then nothing but the close
assert time.time() - t < 25
PY

# nbd-max-connections = 3: with three clients connected, a fourth is closed at once.
/usr/bin/python3 - "$NBD_PORT" <<'PY' || die "connection limit not enforced"
import socket, struct, sys, time
port = int(sys.argv[1])
held = []
for _ in range(3):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    assert len(s.recv(18)) == 18
    s.sendall(struct.pack(">I", 3))
    held.append(s)
s = socket.create_connection(("127.0.0.1", port), timeout=30)
assert s.recv(18) == b"", "fourth connection was served"
PY
wait_for 30 nbdinfo --size "$uri/vol0" || die "server unusable after the limit test"
stop_oriond
