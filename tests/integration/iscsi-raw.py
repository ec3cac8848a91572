#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Hostile iSCSI initiator for test-iscsi-malformed.sh: garbage and truncated PDUs, oversized
# data segments, unknown opcodes, bad AHS, stray Data-Out, a client vanishing mid-command.
# Usage: iscsi-raw.py HOST PORT TARGET-IQN [sanitize-immed]. Exits 1 with a message when the
# target misbehaves.
import socket
import struct
import sys
import time

HOST, PORT, IQN = sys.argv[1], int(sys.argv[2]), sys.argv[3]
INITIATOR = 'iqn.2026-11.test:raw'


def fail(msg):
    print('FAIL: ' + msg, file=sys.stderr)
    sys.exit(1)


def connect():
    s = socket.create_connection((HOST, PORT), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def pad(b):
    return b + b'\0' * ((4 - len(b) % 4) % 4)


def bhs(op, flags, itt, rest=b'', dsl=0, lun=0, ahs=0):
    h = bytes([op, flags, 0, 0, ahs]) + struct.pack('>I', dsl)[1:] + struct.pack('>Q', lun) + struct.pack('>I', itt)
    h += rest
    return h + b'\0' * (48 - len(h))


def recv_exact(s, n):
    buf = b''
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def recv_pdu(s):
    h = recv_exact(s, 48)
    if h is None:
        return None, None
    dsl = int.from_bytes(h[5:8], 'big')
    data = recv_exact(s, (dsl + 3) & ~3) if dsl else b''
    return h, (data or b'')[:dsl]


def recv_reply(s):
    """Next PDU that is not a keepalive ping of the target (those are skipped)."""
    while True:
        h, data = recv_pdu(s)
        if h is None or not (h[0] & 0x3f == 0x20 and h[16:20] == b'\xff' * 4):
            return h, data


def closed(s, timeout=10):
    """True when the target closes the connection (reads drain to EOF)."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def login(s, isid=b'\x80\x12\x34\x56\x00\x01'):
    text = pad(('InitiatorName=%s\0TargetName=%s\0SessionType=Normal\0'
                'HeaderDigest=None\0DataDigest=None\0ImmediateData=Yes\0InitialR2T=Yes\0' % (INITIATOR, IQN)).encode())
    dsl = len(text.rstrip(b'\0')) + 1
    h = bytes([0x43, 0x87, 0, 0, 0]) + struct.pack('>I', dsl)[1:] + isid + b'\0\0' + struct.pack('>I', 1)
    h += b'\0' * 4 + struct.pack('>II', 1, 0)
    h += b'\0' * (48 - len(h))
    s.sendall(h + pad(text[:dsl]))
    r, data = recv_pdu(s)
    if r is None or r[0] & 0x3f != 0x23:
        fail('no login response')
    if r[36] != 0 or not (r[1] & 0x80) or (r[1] & 3) != 3:
        fail('login refused: class %d detail %d' % (r[36], r[37]))
    return struct.unpack('>I', r[24:28])[0] + 1  # ExpStatSN


class Sess:
    def __init__(self):
        self.s = connect()
        self.statsn = login(self.s)
        self.cmdsn = 1
        self.itt = 100

    def cmd(self, cdb, edtl=0, read=False, write=False, final=True, data=b''):
        self.itt += 1
        flags = (0x80 if final else 0) | (0x40 if read else 0) | (0x20 if write else 0) | 1
        rest = struct.pack('>III', edtl, self.cmdsn, self.statsn) + cdb + b'\0' * (16 - len(cdb))
        self.cmdsn += 1
        self.s.sendall(bhs(0x01, flags, self.itt, rest, dsl=len(data)) + pad(data))
        return self.itt

    def nop(self, payload=b'ping'):
        self.itt += 1
        rest = struct.pack('>III', 0xffffffff, self.cmdsn, self.statsn)
        self.s.sendall(bhs(0x00 | 0x40, 0x80, self.itt, rest, dsl=len(payload)) + pad(payload))
        while True:
            r, data = recv_reply(self.s)
            if r is None:
                fail('connection closed while waiting for NOP-In')
            if r[0] & 0x3f == 0x20 and struct.unpack('>I', r[16:20])[0] == self.itt:
                if data != payload:
                    fail('NOP-In does not echo the ping data')
                return


# Not a hostile case: with a fourth argument "sanitize-immed", start SANITIZE OVERWRITE with IMMED
# and return once the target accepted it (test-iscsi-sanitize-cancel.sh removes the export while
# it runs).
if len(sys.argv) > 4 and sys.argv[4] == 'sanitize-immed':
    ss = Sess()
    param = bytes([1, 0]) + struct.pack('>H', 4) + b'\xde\xad\xbe\xef'  # one pass, 4-byte pattern
    ss.cmd(b'\x48\x81' + b'\0' * 5 + struct.pack('>H', len(param)) + b'\0', edtl=len(param), write=True,
           data=param)
    r, _ = recv_reply(ss.s)
    if r is None or r[0] & 0x3f != 0x21 or r[2] != 0 or r[3] != 0:
        fail('SANITIZE not accepted: %r' % (r[:4] if r else None))
    print('ok')
    sys.exit(0)

# 1. Garbage instead of a login: the target drops the connection.
s = connect()
s.sendall(bytes(range(48)) * 3)
if not closed(s):
    fail('target kept a connection that sent garbage before login')

# 2. Oversized data segment in full feature phase: dropped.
ss = Sess()
ss.s.sendall(bhs(0x01, 0x80 | 0x20 | 1, 7, struct.pack('>III', 1 << 24, 1, 1) + b'\x2a', dsl=(1 << 24) - 1))
if not closed(ss.s):
    fail('target accepted a 16 MiB data segment')

# 3. Unknown opcode: Reject, then the session still works.
ss = Sess()
ss.s.sendall(bhs(0x1c, 0x80, 9))
r, data = recv_reply(ss.s)
if r is None or r[0] & 0x3f != 0x3f:
    fail('no Reject for an unknown opcode')
if data[:1] != b'\x1c':
    fail('Reject does not carry the offending header')
ss.nop()

# 4. SCSI command with an AHS longer than announced: Reject or drop, never a crash.
ss = Sess()
ahs = struct.pack('>HBB', 200, 1, 0)
ss.s.sendall(bhs(0x01, 0x80 | 0x40 | 1, 11, struct.pack('>III', 512, 1, 1) + b'\x28', ahs=1) + ahs)
ss.s.settimeout(10)
try:
    r, _ = recv_reply(ss.s)
    if r is not None and r[0] & 0x3f != 0x3f:
        fail('bad AHS answered with opcode 0x%02x' % (r[0] & 0x3f))
except socket.timeout:
    fail('no answer to a bad AHS')

# 5. Stray Data-Out for a task that does not exist, then a Text request without '=': ignored /
#    answered, the connection stays usable.
ss = Sess()
ss.s.sendall(bhs(0x05, 0x80, 0x4242, struct.pack('>I', 0x77) + b'\0' * 12 + struct.pack('>II', 0, 0), dsl=512) +
             b'x' * 512)
rest = struct.pack('>III', 0xffffffff, ss.cmdsn, ss.statsn)
ss.cmdsn += 1
ss.s.sendall(bhs(0x04, 0x80, 0x99, rest, dsl=9) + pad(b'garbage\0\0'))
r, _ = recv_reply(ss.s)
if r is None or r[0] & 0x3f != 0x24:
    fail('no Text Response')
ss.nop()

# 6. Truncated PDU then EOF, and a PDU with a huge AHS count then EOF.
for junk in (bhs(0x01, 0x81, 5)[:24], bhs(0x01, 0x81, 5, ahs=255) + b'\0' * 100):
    ss = Sess()
    ss.s.sendall(junk)
    ss.s.close()

# 7. A client that vanishes mid-command: a write waiting for its R2T data, and many reads.
ss = Sess()
ss.cmd(b'\x2a\0\0\0\0\0\0\0\x08\0', edtl=4096, write=True)
r, _ = recv_reply(ss.s)
if r is None or r[0] & 0x3f != 0x31:
    fail('no R2T for a write without immediate data')
for i in range(32):
    ss.cmd(b'\x28\0\0\0\0\0\0\0\x80\0', edtl=65536, read=True)
ss.s.close()

# 8. Login with a wrong target name: refused with "not found".
s = connect()
text = pad(b'InitiatorName=%s\0TargetName=iqn.2026-11.org.orion:nosuch\0' % INITIATOR.encode())
h = bytes([0x43, 0x87, 0, 0, 0]) + struct.pack('>I', len(text))[1:] + b'\x80\0\0\0\0\2\0\0' + struct.pack('>I', 1)
s.sendall(h + b'\0' * (48 - len(h)) + text)
r, _ = recv_pdu(s)
if r is None or r[36] != 2 or r[37] != 3:
    fail('unknown target not refused with 0x0203')
s.close()
# 9. Keepalive (the test runs the target with iscsi-nop-interval = 1, iscsi-nop-count = 2):
#    an answered ping keeps the session, an idle initiator that never answers is dropped.
ss = Sess()
ss.s.settimeout(10)
r, _ = recv_pdu(ss.s)
if r is None or r[0] & 0x3f != 0x20 or r[16:20] != b'\xff' * 4 or r[20:24] == b'\xff' * 4:
    fail('no NOP-In ping from the target on an idle session')
rest = r[20:24] + struct.pack('>II', ss.cmdsn, ss.statsn)
ss.s.sendall(bhs(0x40, 0x80, 0xffffffff, rest))  # the answer: ITT reserved, TTT echoed
ss.nop()
t0 = time.time()
if not closed(ss.s, timeout=20):
    fail('an initiator that ignores pings was not dropped')
if time.time() - t0 < 1.5:
    fail('dropped before the unanswered pings')
print('ok')
