#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The encrypt layer over a memory leaf, where reads decrypt straight out of the leaf's chunks
# (orion_bdev_read_view), checked against an independent AES-XTS through NBD, both sector
# sizes: data written through Orion reads back byte-identical; the raw leaf (its own export)
# decrypts with cryptsetup's view of the key to what Orion reads, never-written chunks (zero
# ciphertext, no memory behind them) included; ciphertext made by the independent XTS and
# put on the leaf reads through Orion as its plaintext.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/encrypt-functions.sh"

conf=$tmp/oriond.conf
vol=nbd://127.0.0.1:$NBD_PORT/vol
raw=nbd://127.0.0.1:$NBD_PORT/raw
len=$((8 << 20))

for sector in 4096 512; do
        nbd_config "$conf"
        cat >>"$conf" <<CONF
[node mem]
type = memory
size = 24M

[export raw]
node = mem
protocols = nbd
CONF
        start_oriond "$conf"
        orionctl format encrypt child=mem key-file="$tmp/pass1" sector-size="$sector" pbkdf=pbkdf2 \
                pbkdf-force-iterations=1000 >/dev/null || die "format failed"
        orionctl node-add vol encrypt child=mem key-file="$tmp/pass1" >/dev/null || die "node-add failed"
        orionctl export-add vol vol >/dev/null || die "export-add failed"
        wait_nbd "$NBD_PORT" vol || die "export not served"
        expect_eq "volume size" "$(nbdinfo --size "$vol")" "$len"

        # 3 MiB written from 1 MiB + 4 KiB on: chunks before and after it never written.
        head -c 3M /dev/urandom >"$tmp/src"
        nbdsh -u "$vol" -c "
h.pwrite(open('$tmp/src', 'rb').read(), 1052672)
h.flush()
" || die "$sector: write failed"
        nbdcopy "$vol" "$tmp/back" || die "$sector: download failed"
        cmp -i 0:1052672 -n 3145728 "$tmp/src" "$tmp/back" || die "$sector: data read back differs"

        # Orion's reads of the whole volume equal an independent decryption of the raw leaf.
        nbdcopy "$raw" "$tmp/mem.img" || die "$sector: raw download failed"
        $XTS noplain "$tmp/mem.img" "$tmp/src" || die "$sector: plaintext on the memory leaf"
        dump_vk "$tmp/mem.img" "$tmp/pass1" "$tmp/vk.bin"
        off=$(luks_offset "$tmp/mem.img")
        $XTS decrypt "$tmp/mem.img" "$off" "$sector" "$tmp/vk.bin" "$tmp/plain" "$len"
        cmp "$tmp/plain" "$tmp/back" || die "$sector: Orion's reads differ from independent decryption"
        cmp -s -n 65536 "$tmp/back" /dev/zero && die "$sector: a never-written chunk reads as zeroes"

        # Independent ciphertext put on the leaf reads as its plaintext through Orion.
        head -c 2M /dev/urandom >"$tmp/src2"
        $XTS encrypt "$tmp/mem.img" "$off" "$sector" "$tmp/vk.bin" "$tmp/src2"
        nbdcopy "$tmp/mem.img" "$raw" || die "$sector: raw upload failed"
        nbdsh -u "$vol" -c "
import sys
got = h.pread(2 << 20, 0)
sys.exit(0 if got == open('$tmp/src2', 'rb').read() else 1)
" || die "$sector: independent ciphertext does not read back as its plaintext"
        stop_oriond
done
echo ok
