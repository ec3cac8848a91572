#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Writes the seed corpus of fuzz-iscsi (tests/fuzz/corpus/iscsi/): initiator byte streams that
# log in to the fuzz target's LUNs and then exercise each PDU type. Run from tests/fuzz/.
import os
import struct

OUT = 'corpus/iscsi'
IQN = 'iqn.2026-11.org.orion:'
ISID = b'\x80\x12\x34\x56\x00\x01'


def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82f63b78 if crc & 1 else crc >> 1
    return crc ^ 0xffffffff


def pad(b):
    return b + b'\0' * ((4 - len(b) % 4) % 4)


class Stream:
    def __init__(self):
        self.out = b''
        self.itt = 1
        self.cmdsn = 1
        self.hdig = False

    def pdu(self, op, flags, rest=b'', data=b'', lun=0, itt=None):
        if itt is None:
            itt = self.itt
            self.itt += 1
        h = bytes([op, flags, 0, 0, 0]) + struct.pack('>I', len(data))[1:] + struct.pack('>Q', lun) + struct.pack('>I', itt)
        h += rest
        h += b'\0' * (48 - len(h))
        self.out += h
        if self.hdig:
            self.out += struct.pack('<I', crc32c(h))
        self.out += pad(data)
        return itt

    def login(self, keys, csg=1, nsg=3, transit=True):
        text = b''.join(k.encode() + b'\0' for k in keys)
        flags = (0x80 if transit else 0) | csg << 2 | (nsg if transit else 0)
        h = bytes([0x43, flags, 0, 0, 0]) + struct.pack('>I', len(text))[1:] + ISID + b'\0\0' + struct.pack('>I', self.itt)
        h += b'\0' * 4 + struct.pack('>II', self.cmdsn, 0)
        h += b'\0' * (48 - len(h))
        self.itt += 1
        self.out += h + pad(text)

    def normal(self, target='disk', extra=()):
        self.login(['InitiatorName=iqn.2026-11.test:fuzz', 'TargetName=' + IQN + target, 'SessionType=Normal',
                    'HeaderDigest=None', 'DataDigest=None', 'ImmediateData=Yes', 'InitialR2T=No',
                    'MaxRecvDataSegmentLength=8192', 'FirstBurstLength=16384', 'MaxBurstLength=65536'] + list(extra))

    def cmd(self, cdb, edtl=0, read=False, write=False, data=b'', final=True, lun=0, immediate=False):
        flags = (0x80 if final else 0) | (0x40 if read else 0) | (0x20 if write else 0) | 1
        rest = struct.pack('>III', edtl, self.cmdsn, 0) + cdb + b'\0' * (16 - len(cdb))
        if not immediate:
            self.cmdsn += 1
        return self.pdu(0x01 | (0x40 if immediate else 0), flags, rest, data, lun=lun)

    def data_out(self, itt, ttt, datasn, offset, data, final=True, lun=0):
        rest = struct.pack('>I', ttt) + b'\0' * 8 + struct.pack('>III', 0, datasn, offset)
        self.pdu(0x05, 0x80 if final else 0, rest, data, lun=lun, itt=itt)

    def text(self, keys):
        rest = struct.pack('>III', 0xffffffff, self.cmdsn, 0)
        self.cmdsn += 1
        self.pdu(0x04, 0x80, rest, b''.join(k.encode() + b'\0' for k in keys))

    def nop(self, data=b'hello'):
        rest = struct.pack('>III', 0xffffffff, self.cmdsn, 0)
        self.pdu(0x40, 0x80, rest, data)

    def tmf(self, fn, ref=0xffffffff, refsn=0, lun=0):
        rest = struct.pack('>IIII', ref, self.cmdsn, 0, refsn)
        self.pdu(0x42, 0x80 | fn, rest, lun=lun)

    def logout(self):
        rest = b'\0' * 4 + struct.pack('>II', self.cmdsn, 0)
        self.pdu(0x46, 0x80, rest)


def lun16(n):
    return n << 48


seeds = {}

s = Stream()
s.normal()
s.cmd(b'\x12\0\0\0\xff\0', 255, read=True)
s.cmd(b'\x12\x01\x83\0\xff\0', 255, read=True)
s.cmd(b'\x12\x01\xb0\0\xff\0', 255, read=True)
s.cmd(b'\x9e\x10' + b'\0' * 8 + struct.pack('>I', 32) + b'\0\0', 32, read=True)
s.cmd(b'\xa0\0\0\0\0\0' + struct.pack('>I', 256) + b'\0\0', 256, read=True)
s.cmd(b'\x1a\0\x3f\0\xff\0', 255, read=True)
s.cmd(b'\xa3\x0c\x80\0\0\0' + struct.pack('>I', 4096) + b'\0\0', 4096, read=True)
s.logout()
seeds['inquiry'] = s.out

s = Stream()
s.normal()
s.cmd(b'\x2a\0\0\0\0\x10\0\0\x02\0', 1024, write=True, data=b'A' * 1024)
s.cmd(b'\x28\0\0\0\0\x10\0\0\x02\0', 1024, read=True)
itt = s.cmd(b'\x2a\0\0\0\0\x20\0\0\x40\0', 32768, write=True, data=b'B' * 4096, final=False)
s.data_out(itt, 0xffffffff, 0, 4096, b'C' * 8192, final=False)
s.data_out(itt, 0xffffffff, 1, 12288, b'D' * 4096, final=True)
s.data_out(itt, 1, 0, 16384, b'E' * 16384, final=True)
s.cmd(b'\x35' + b'\0' * 9)
s.cmd(b'\x89\0' + struct.pack('>Q', 16) + b'\0\0\0\x01\0\0', 1024, write=True, data=b'A' * 512 + b'Z' * 512)
s.cmd(b'\x93\x08' + struct.pack('>Q', 64) + struct.pack('>I', 16) + b'\0\0', 512, write=True, data=b'\0' * 512)
s.cmd(b'\x42\0\0\0\0\0\0\0\x18\0', 24, write=True,
      data=struct.pack('>HH', 22, 16) + b'\0' * 4 + struct.pack('>QI', 100, 8) + b'\0' * 4)
s.cmd(b'\x9e\x12' + struct.pack('>Q', 0) + struct.pack('>I', 1024) + b'\0\0', 1024, read=True)
s.cmd(b'\x2f\x02' + struct.pack('>I', 16) + b'\0\0\x01\0', 512, write=True, data=b'A' * 512)
seeds['write-r2t'] = s.out

s = Stream()
s.normal()
s.cmd(b'\x5f\x00\0\0\0\0\0\0\x18\0', 24, write=True, data=b'\0' * 8 + struct.pack('>Q', 0x1234) + b'\0' * 8)
s.cmd(b'\x5f\x01\x01\0\0\0\0\0\x18\0', 24, write=True, data=struct.pack('>Q', 0x1234) + b'\0' * 16)
s.cmd(b'\x5e\x00\0\0\0\0\0\x10\0\0', 4096, read=True)
s.cmd(b'\x5e\x01\0\0\0\0\0\x10\0\0', 4096, read=True)
s.cmd(b'\x5e\x03\0\0\0\0\0\x10\0\0', 4096, read=True)
s.cmd(b'\x16\0\0\0\0\0')
s.cmd(b'\x17\0\0\0\0\0')
s.cmd(b'\x28\0\0\0\0\0\0\0\x01\0', 4096, read=True, lun=lun16(3))
s.cmd(b'\x00' * 6, lun=lun16(9))
seeds['reservations'] = s.out

s = Stream()
s.normal()
itt = s.cmd(b'\x2a\0\0\0\0\0\0\0\x40\0', 32768, write=True)
s.tmf(1, itt, 2)
s.tmf(2)
s.tmf(5)
s.tmf(6)
s.nop()
s.text(['SendTargets='])
s.logout()
seeds['tmf'] = s.out

s = Stream()
s.normal()
ctl = b'\x0a\x0a\0\x10\x08\0\0\0\xff\xff\0\0'
s.cmd(b'\x15\x10\0\0\x10\0', 16, write=True, data=b'\0\0\0\0' + ctl)
s.cmd(b'\x2a\0\0\0\0\0\0\0\x01\0', 512, write=True, data=b'w' * 512)
s.cmd(b'\x55\x10\0\0\0\0\0\0\x14\0', 20, write=True, data=b'\0' * 8 + ctl[:4] + b'\0' + ctl[5:])
s.cmd(b'\x48\x01\0\0\0\0\0\0\x06\0', 6, write=True, data=b'\x82\0\0\x02\x0f\xf0')
s.cmd(b'\x48\x02\0\0\0\0\0\0\0\0')
s.cmd(b'\x48\x1f\0\0\0\0\0\0\0\0')
s.cmd(b'\x03\0\0\0\x12\0', 18, read=True)
s.cmd(b'\x37\0\x18\0\0\0\0\0\x20\0', 32, read=True)
s.cmd(b'\xb7\x1d\0\0\0\0\0\0\0\x20\0\0', 32, read=True)
s.logout()
seeds['sanitize-swp'] = s.out

def naa(name):
    h = 0xcbf29ce484222325
    for ch in ('orion:' + name).encode():
        h = ((h ^ ch) * 0x100000001b3) & 0xffffffffffffffff
    return struct.pack('>Q', (3 << 60) | (h & 0x0fffffffffffffff))


s = Stream()
s.normal()
tdesc = b'\xe4\0\0\0\x01\x03\0\x08' + naa('disk') + b'\0' * 13 + b'\0\x02\0'
seg = b'\x02\0\0\x18\0\0\0\0\0\0\0\x08' + struct.pack('>QQ', 0, 64)
plist = b'\x01\0\0\x20\0\0\0\0' + struct.pack('>II', len(seg), 0) + tdesc + seg
s.cmd(b'\x83' + b'\0' * 9 + struct.pack('>I', len(plist)) + b'\0\0', len(plist), write=True, data=plist)
s.cmd(b'\x84\x00\x01' + b'\0' * 7 + struct.pack('>I', 64) + b'\0\0', 64, read=True)
s.cmd(b'\x84\x03\0' + b'\0' * 7 + struct.pack('>I', 64) + b'\0\0', 64, read=True)
bad = plist[:16] + b'\xe0' + plist[17:]
s.cmd(b'\x83' + b'\0' * 9 + struct.pack('>I', len(bad)) + b'\0\0', len(bad), write=True, data=bad)
s.logout()
seeds['xcopy'] = s.out

s = Stream()
s.login(['InitiatorName=iqn.2026-11.test:fuzz', 'SessionType=Discovery'])
s.text(['SendTargets=All'])
s.text(['SendTargets=' + IQN + 'disk', 'Bogus=1'])
s.logout()
seeds['discovery'] = s.out

s = Stream()
s.login(['InitiatorName=iqn.2026-11.test:fuzz', 'TargetName=' + IQN + 'ro', 'AuthMethod=None'], csg=0, nsg=1)
s.login(['HeaderDigest=CRC32C', 'DataDigest=None', 'MaxRecvDataSegmentLength=4096', 'X-foo=bar'], csg=1, nsg=3)
s.hdig = True
s.cmd(b'\x28\0\0\0\0\0\0\0\x08\0', 4096, read=True)
s.cmd(b'\x2a\0\0\0\0\0\0\0\x01\0', 512, write=True, data=b'x' * 512)
s.nop(b'')
s.logout()
seeds['digest-ro'] = s.out

s = Stream()
s.login(['InitiatorName=iqn.2026-11.test:fuzz', 'TargetName=' + IQN + 'disk'], transit=False)
s.out += b'\x43\xc7' + b'\0' * 46
seeds['login-bad'] = s.out

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(data)
