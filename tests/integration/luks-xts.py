#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# An AES-XTS implementation independent of Orion (python3-cryptography, i.e. OpenSSL) for the
# encrypt interop tests: decrypt or encrypt a LUKS2 data segment sector by sector with the
# volume key cryptsetup dumps, with plain64 IVs counted in 512-byte units.
#   luks-xts.py decrypt IMG OFFSET SECTOR VKFILE OUT LEN
#   luks-xts.py encrypt IMG OFFSET SECTOR VKFILE IN
#   luks-xts.py noplain IMG PLAIN     (no 512-byte sector of PLAIN appears in IMG)
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def xts(key, sector_no, data, encrypt):
    iv = sector_no.to_bytes(16, "little")
    c = Cipher(algorithms.AES(key), modes.XTS(iv))
    ctx = c.encryptor() if encrypt else c.decryptor()
    return ctx.update(data) + ctx.finalize()


def run(img, offset, sector, key, data, encrypt):
    out = bytearray()
    for pos in range(0, len(data), sector):
        out += xts(key, pos // 512, data[pos:pos + sector], encrypt)
    return bytes(out)


def main():
    cmd = sys.argv[1]
    if cmd == "noplain":
        img = open(sys.argv[2], "rb").read()
        plain = open(sys.argv[3], "rb").read()
        seen = {img[i:i + 512] for i in range(0, len(img) - 511, 512)}
        hits = sum(1 for i in range(0, len(plain) - 511, 512)
                   if plain[i:i + 512] in seen and plain[i:i + 512] != bytes(512))
        if hits:
            sys.exit(f"{hits} plaintext sectors found in {sys.argv[2]}")
        return
    img, offset, sector, vkfile = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    key = open(vkfile, "rb").read()
    if cmd == "decrypt":
        length = int(sys.argv[7])
        with open(img, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        open(sys.argv[6], "wb").write(run(img, offset, sector, key, data, False))
    elif cmd == "encrypt":
        data = open(sys.argv[6], "rb").read()
        with open(img, "r+b") as f:
            f.seek(offset)
            f.write(run(img, offset, sector, key, data, True))
    else:
        sys.exit("unknown command " + cmd)


main()
