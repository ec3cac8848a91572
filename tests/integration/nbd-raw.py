#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Raw-bytes NBD client for test-nbd-malformed.sh: sends malformed handshakes and requests and
# checks that the server answers as the protocol requires (or drops the connection where it
# must), and never desynchronises. Usage: nbd-raw.py HOST PORT EXPORT
import socket
import struct
import sys

HOST, PORT, EXPORT = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
IHAVEOPT = 0x49484156454F5054
REP_MAGIC = 0x3e889045565a9
ACK, SERVER, INFO, META = 1, 2, 3, 4
ERR = lambda n: (1 << 31) | n
ERR_UNSUP, ERR_POLICY, ERR_INVALID, ERR_UNKNOWN, ERR_TOO_BIG = ERR(1), ERR(2), ERR(3), ERR(6), ERR(9)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


class Conn:
    def __init__(self, cflags=3):
        self.s = socket.create_connection((HOST, PORT), timeout=20)
        hello = self.recv(18)
        magic, opt, hflags = struct.unpack(">QQH", hello)
        assert magic == 0x4e42444d41474943 and opt == IHAVEOPT and hflags & 1, hello
        if cflags is not None:
            self.s.sendall(struct.pack(">I", cflags))

    def recv(self, n):
        buf = b""
        while len(buf) < n:
            d = self.s.recv(n - len(buf))
            if not d:
                raise EOFError("closed after %d of %d bytes" % (len(buf), n))
            buf += d
        return buf

    def closed(self):
        """True if the server closes the connection (without sending anything more)."""
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def opt(self, o, data=b""):
        self.s.sendall(struct.pack(">QII", IHAVEOPT, o, len(data)) + data)

    def reply(self):
        magic, o, rtype, ln = struct.unpack(">QIII", self.recv(20))
        assert magic == REP_MAGIC, hex(magic)
        return o, rtype, self.recv(ln)

    def final(self):
        """Collect replies up to the final one: (list of non-final, final type)."""
        items = []
        while True:
            o, t, d = self.reply()
            if t in (SERVER, INFO, META):
                items.append((t, d))
            else:
                return items, t, o

    def go(self, name=EXPORT):
        self.opt(7, struct.pack(">I", len(name)) + name + b"\0\0")
        items, t, _ = self.final()
        assert t == ACK, hex(t)
        return items

    def req(self, typ, off, ln, flags=0, cookie=0x1122334455667788, payload=b""):
        self.s.sendall(struct.pack(">IHHQQI", 0x25609513, flags, typ, cookie, off, ln) + payload)

    def simple(self):
        magic, err, cookie = struct.unpack(">IIQ", self.recv(16))
        assert magic == 0x67446698, hex(magic)
        return err, cookie


s_ = lambda b: struct.pack(">I", len(b)) + b

# 1. Unknown client flags: hard disconnect.
c = Conn(cflags=0x80000001)
c.opt(3)
check(c.closed(), "unknown client flag not refused")

# 2. Bad option magic: disconnect.
c = Conn()
c.s.sendall(struct.pack(">QII", 0x1234567812345678, 3, 0))
check(c.closed(), "bad option magic not refused")

# 3. Unknown option with a payload: ERR_UNSUP, payload consumed exactly, next option parsed.
c = Conn()
c.opt(99, b"0123456789")
_, t, o = c.final()
check(t == ERR_UNSUP and o == 99, "unknown option: reply %x" % t)
c.opt(3)
items, t, _ = c.final()
check(t == ACK and any(d[4:4 + len(EXPORT)] == EXPORT for (_, d) in items), "LIST after unknown option")

# 4. LIST with data: ERR_INVALID, stream stays in step.
c.opt(3, b"junk")
_, t, _ = c.final()
check(t == ERR_INVALID, "LIST with data: %x" % t)
# 5. INFO whose name length runs past the option: ERR_INVALID.
c.opt(6, struct.pack(">I", 1000) + b"abc")
_, t, _ = c.final()
check(t == ERR_INVALID, "INFO bad name length: %x" % t)
# 6. INFO with a trailing odd byte in the request list: ERR_INVALID.
c.opt(6, s_(EXPORT) + b"\0\1\0")
_, t, _ = c.final()
check(t == ERR_INVALID, "INFO bad request count: %x" % t)
# 7. INFO of an unknown export: ERR_UNKNOWN; of a real one: EXPORT info with the size, then ACK.
c.opt(6, s_(b"no-such-export") + b"\0\0")
_, t, _ = c.final()
check(t == ERR_UNKNOWN, "INFO unknown export: %x" % t)
c.opt(6, s_(EXPORT) + b"\0\1\0\1")
items, t, _ = c.final()
exp = [d for (k, d) in items if k == INFO and d[:2] == b"\0\0"]
check(t == ACK and len(exp) == 1 and struct.unpack(">Q", exp[0][2:10])[0] > 0, "INFO reply")
check(any(d[:2] == b"\0\1" and d[2:] == EXPORT for (k, d) in items), "INFO name")
# 8. SET_META_CONTEXT before structured replies: ERR_INVALID.
c.opt(10, s_(EXPORT) + struct.pack(">I", 1) + s_(b"base:allocation"))
_, t, _ = c.final()
check(t == ERR_INVALID, "SET_META_CONTEXT without structured replies: %x" % t)
# 9. STARTTLS: unsupported (never TLS_REQD).
c.opt(5)
_, t, _ = c.final()
check(t in (ERR_UNSUP, ERR_POLICY), "STARTTLS: %x" % t)
# 10. STRUCTURED_REPLY twice: ACK, then ERR_INVALID.
c.opt(8)
_, t, _ = c.final()
check(t == ACK, "STRUCTURED_REPLY: %x" % t)
c.opt(8)
_, t, _ = c.final()
check(t == ERR_INVALID, "second STRUCTURED_REPLY: %x" % t)
# 11. A truncated meta context query: ERR_INVALID; a good one lists base:allocation only once.
c.opt(9, s_(EXPORT) + struct.pack(">I", 2) + s_(b"base:allocation") + struct.pack(">I", 50) + b"x")
_, t, _ = c.final()
check(t == ERR_INVALID, "truncated meta query: %x" % t)
c.opt(9, s_(EXPORT) + struct.pack(">I", 2) + s_(b"qemu:nothing") + s_(b"base:"))
items, t, _ = c.final()
check(t == ACK and [d[4:] for (k, d) in items] == [b"base:allocation"], "LIST_META_CONTEXT base: %r" % items)
# 12. An option over 64 KiB: refused with ERR_TOO_BIG after being consumed.
c.opt(3, b"\0" * 100000)
_, t, _ = c.final()
check(t == ERR_TOO_BIG, "long option: %x" % t)
# 13. ABORT: ACK, then the server closes.
c.opt(2)
_, t, _ = c.final()
check(t == ACK, "ABORT: %x" % t)
check(c.closed(), "ABORT did not close")

# 14. Option length absurd: disconnect without reading it all.
c = Conn()
c.s.sendall(struct.pack(">QII", IHAVEOPT, 3, 0xffffffff))
check(c.closed(), "4 GiB option not refused")

# 15. EXPORT_NAME: unknown name ends the connection; known name with NO_ZEROES gives 10 bytes.
c = Conn()
c.opt(1, b"no-such-export")
check(c.closed(), "EXPORT_NAME unknown export not refused")
c = Conn(cflags=3)
c.opt(1, EXPORT)
size, flags = struct.unpack(">QH", c.recv(10))
check(size > 0 and flags & 1, "EXPORT_NAME reply")
c.req(0, 0, 512, cookie=7)
err, cookie = c.simple()
check(err == 0 and cookie == 7, "read after EXPORT_NAME")
c.recv(512)
c = Conn(cflags=1)
c.opt(1, EXPORT)
check(len(c.recv(134)) == 134, "EXPORT_NAME reply with zero padding")

# 16. Transmission with simple replies: unknown command, unknown flag, DF without structured
# replies, block status without a context, zero-length requests, oversize write (drained),
# out-of-range write. The connection stays usable after each.
c = Conn()
c.go()
for what, args, want in [
        ("unknown command", (42, 0, 0), 22),
        ("unknown flag", (0, 0, 512, 0x40), 22),
        ("DF without structured replies", (0, 0, 512, 4), 22),
        ("block status without context", (7, 0, 512), 22),
        ("zero-length write", (1, 0, 0), 0),
        ("flush", (3, 0, 0), 0)]:
    c.req(*args)
    err, cookie = c.simple()
    check(err == want and cookie == 0x1122334455667788, "%s: error %d" % (what, err))
c.req(1, 0, (32 << 20) + 512, payload=b"\xee" * ((32 << 20) + 512))
err, _ = c.simple()
check(err == 22, "oversize write: error %d" % err)
c.req(1, 1 << 62, 512, payload=b"\xee" * 512)
err, _ = c.simple()
check(err == 28, "write past the end: error %d" % err)
c.req(0, 0, 512)
err, _ = c.simple()
check(err == 0 and c.recv(512) != b"\xee" * 512, "read after refused writes")
# 17. A write header claiming 4 GiB - 1: dropped (never allocated).
c.req(1, 0, 0xffffffff)
check(c.closed(), "4 GiB write not refused")

# 18. Structured replies: errors arrive as error chunks, reads as data chunks, cookies echoed.
c = Conn()
c.opt(8)
c.final()
c.go()
c.req(0, 1 << 62, 512, cookie=99)
magic, flags, typ, cookie, ln = struct.unpack(">IHHQI", c.recv(20))
payload = c.recv(ln)
check(magic == 0x668e33ef and typ == (1 << 15) + 1 and flags & 1 and cookie == 99, "structured error chunk")
check(struct.unpack(">I", payload[:4])[0] == 22, "structured error value")
c.req(0, 0, 0, cookie=100)
magic, flags, typ, cookie, ln = struct.unpack(">IHHQI", c.recv(20))
check(typ == 0 and flags & 1 and ln == 0 and cookie == 100, "zero-length read: NONE chunk")
# 19. Bad request magic: disconnect.
c.s.sendall(struct.pack(">IHHQQI", 0xdeadbeef, 0, 0, 1, 0, 512))
check(c.closed(), "bad request magic not refused")

# 20. Clients vanishing mid-handshake and mid-payload leave nothing stuck.
for cut in (b"\0\0", struct.pack(">QII", IHAVEOPT, 3, 100) + b"x" * 10):
    c = Conn()
    c.s.sendall(cut)
    c.s.close()
c = Conn()
c.go()
c.req(1, 0, 65536, payload=b"y" * 1000)
c.s.close()
c = Conn(cflags=None)
c.s.close()

print("%d failures" % len(failures))
sys.exit(1 if failures else 0)
