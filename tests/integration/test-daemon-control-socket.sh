#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The control socket as a raw client sees it: malformed lines get error replies and the
# connection keeps working, ids are echoed, over-long lines are refused, many clients at once,
# and a client of another uid is refused (SO_PEERCRED).
. "$(dirname "$0")/functions.sh"
requires python3

printf '[node m0]\ntype = memory\nsize = 1M\n' >"$tmp/oriond.conf"
start_oriond "$tmp/oriond.conf"

python3 - "$CTL_SOCK" <<'PY' || die "raw protocol checks failed"
import json, socket, sys, threading
path = sys.argv[1]

def conn():
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s, s.makefile("rb")

s, f = conn()
def ask(line):
    s.sendall(line + b"\n")
    reply = f.readline()
    assert reply.endswith(b"\n"), reply
    return json.loads(reply)

r = ask(b'{"cmd":"status","id":42}')
assert r["ok"] and r["id"] == 42 and r["result"]["nodes"][0]["name"] == "m0", r
for bad, code in [(b"garbage", 22), (b"{", 22), (b'{"cmd":1}', 22), (b'{"cmd":"x"}', 95),
                  (b'{"cmd":"status","args":[]}', 22), (b'{"cmd":"status"} {"cmd":"status"}', 22),
                  (b'\xff\xfe{}', 22), (b'{"cmd":"node-info","args":{"name":"nope"}}', 2)]:
    r = ask(bad)
    assert r["ok"] is False and r["errno"] == code and r["error"], (bad, r)
# blank lines are ignored, CRLF is fine, the connection still answers
s.sendall(b"\n\r\n")
assert ask(b'{"cmd":"node-list"}\r')["ok"]
# several requests in one write are answered in order
s.sendall(b'{"cmd":"status","id":1}\n{"cmd":"status","id":2}\n')
assert [json.loads(f.readline())["id"] for _ in range(2)] == [1, 2]

# a line over the 1 MiB cap: refused with E2BIG and the connection closed
s2, f2 = conn()
try:
    s2.sendall(b'{"cmd":"status","pad":"' + b"x" * (2 << 20))
except (BrokenPipeError, ConnectionResetError):
    pass
r = f2.readline()
assert json.loads(r)["errno"] == 7, r
assert f2.readline() == b""

# a last request without a newline is still answered at EOF
s3, f3 = conn()
s3.sendall(b'{"cmd":"status","id":"eof"}')
s3.shutdown(socket.SHUT_WR)
assert json.loads(f3.readline())["id"] == "eof"

# 20 clients at once
errors = []
def client(i):
    try:
        c, cf = conn()
        for _ in range(20):
            c.sendall(b'{"cmd":"node-info","args":{"name":"m0"}}\n')
            assert json.loads(cf.readline())["ok"]
        c.close()
    except Exception as e:
        errors.append(e)
ts = [threading.Thread(target=client, args=(i,)) for i in range(20)]
[t.start() for t in ts]
[t.join() for t in ts]
assert not errors, errors
assert ask(b'{"cmd":"status"}')["ok"]
PY

# another uid may not use the socket, even if the file mode allowed it
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
        chmod 0777 "$CTL_SOCK"
        chmod 0755 "$tmp"
        out=$(setpriv --reuid=65534 --regid=65534 --clear-groups python3 -c "
import socket
s = socket.socket(socket.AF_UNIX); s.connect('$CTL_SOCK')
# the refusal comes right after accept, before any request
print(s.makefile().readline().strip())") || die "setpriv client failed"
        echo "$out" | grep -q '"errno":13' || die "a client with another uid was served: $out"
fi
orionctl status >/dev/null || die "daemon unhealthy after the raw checks"
stop_oriond
