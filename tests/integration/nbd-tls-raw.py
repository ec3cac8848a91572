#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# STARTTLS checks for test-nbd-tls.sh against a server with nbd-tls = require and X.509
# certificates: options before TLS get ERR_TLS_REQD, EXPORT_NAME before TLS disconnects, and
# nothing negotiated before STARTTLS survives it. Usage: nbd-tls-raw.py PORT CA-FILE EXPORT
import socket
import ssl
import struct
import sys

PORT, CA, EXPORT = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
IHAVEOPT = 0x49484156454F5054
ACK = 1
ERR = lambda n: (1 << 31) | n
ERR_INVALID, ERR_TLS_REQD = ERR(3), ERR(5)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def recv(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise EOFError
        buf += d
    return buf


def opt(s, o, data=b""):
    s.sendall(struct.pack(">QII", IHAVEOPT, o, len(data)) + data)


def final(s):
    while True:
        magic, o, t, ln = struct.unpack(">QIII", recv(s, 20))
        recv(s, ln)
        if t not in (2, 3, 4):
            return t


def connect():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=20)
    recv(s, 18)
    s.sendall(struct.pack(">I", 3))
    return s


def closed(s):
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, socket.timeout):
        return True


s_ = lambda b: struct.pack(">I", len(b)) + b
meta = s_(EXPORT) + struct.pack(">I", 1) + s_(b"base:allocation")

s = connect()
opt(s, 3)
check(final(s) == ERR_TLS_REQD, "LIST before STARTTLS")
opt(s, 99, b"abc")
check(final(s) == ERR_TLS_REQD, "unknown option before STARTTLS")
opt(s, 8)
check(final(s) == ERR_TLS_REQD, "STRUCTURED_REPLY before STARTTLS")
opt(s, 5)
check(final(s) == ACK, "STARTTLS")
ctx = ssl.create_default_context(cafile=CA)
t = ctx.wrap_socket(s, server_hostname="localhost")
opt(t, 10, meta)
check(final(t) == ERR_INVALID, "SET_META_CONTEXT right after STARTTLS (structured replies must be reset)")
opt(t, 8)
check(final(t) == ACK, "STRUCTURED_REPLY inside TLS")
opt(t, 10, meta)
check(final(t) == ACK, "SET_META_CONTEXT inside TLS")
opt(t, 5)
check(final(t) == ERR_INVALID, "second STARTTLS")
opt(t, 3)
check(final(t) == ACK, "LIST inside TLS")
opt(t, 2)
check(final(t) == ACK, "ABORT")

s = connect()
opt(s, 1, EXPORT)
check(closed(s), "EXPORT_NAME before STARTTLS must disconnect")

# Structured replies negotiated in clear text do not carry over either.
s = connect()
opt(s, 5)
final(s)
t = ssl.create_default_context(cafile=CA).wrap_socket(s, server_hostname="localhost")
opt(t, 7, s_(EXPORT) + b"\0\0")
check(final(t) == ACK, "GO inside TLS")
t.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 5, 0, 512))
magic, err, cookie = struct.unpack(">IIQ", recv(t, 16))
check(magic == 0x67446698 and err == 0 and cookie == 5, "simple read reply over TLS")
check(len(recv(t, 512)) == 512, "read data over TLS")
t.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 6, 0, 0))

print("%d failures" % len(failures))
sys.exit(1 if failures else 0)
