#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cryptsetup -> Orion: volumes made by `cryptsetup luksFormat` (512- and 4096-byte sectors,
# argon2id, argon2i and pbkdf2, 512- and 256-bit keys) open in Orion; random data written through Orion's NBD export reads
# back byte-identical, decrypts sector by sector with the key cryptsetup dumps and an
# independent AES-XTS, and leaves no plaintext in the file; and the reverse: data encrypted
# by that independent AES-XTS reads back as plaintext through Orion.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/encrypt-functions.sh"

variant() { # SECTOR KEY-BITS PBKDF-ARGS...
        local sector=$1 bits=$2 img=$tmp/luks-$1.img conf=$tmp/oriond-$1.conf
        shift 2
        truncate -s 24M "$img"
        cryptsetup luksFormat --type luks2 --batch-mode --key-file "$tmp/pass1" --cipher aes-xts-plain64 \
                --key-size "$bits" --sector-size "$sector" "$@" "$img" || die "luksFormat failed"
        local off size
        off=$(luks_offset "$img")
        size=$(((24 << 20) - off))
        dump_vk "$img" "$tmp/pass1" "$tmp/vk.bin"

        encrypt_config "$conf" "$img" "$tmp/pass1"
        start_oriond "$conf"
        local uri=nbd://127.0.0.1:$NBD_PORT/vol
        [ "$(nbdinfo --size "$uri")" = "$size" ] || die "export size $(nbdinfo --size "$uri"), want $size"
        head -c "$size" /dev/urandom >"$tmp/src"
        nbdcopy --flush -C 2 "$tmp/src" "$uri" || die "nbdcopy upload failed"
        nbdcopy "$uri" "$tmp/back" || die "nbdcopy download failed"
        cmp "$tmp/src" "$tmp/back" || die "sector $sector: data read back differs"
        stop_oriond

        # Independent decryption of what Orion wrote.
        $XTS decrypt "$img" "$off" "$sector" "$tmp/vk.bin" "$tmp/plain" "$size"
        cmp "$tmp/src" "$tmp/plain" || die "sector $sector: independent AES-XTS disagrees with Orion"
        $XTS noplain "$img" "$tmp/src" || die "plaintext found in the backing file"
        # cryptsetup still accepts the header Orion opened.
        cryptsetup open --test-passphrase --key-file "$tmp/pass1" "$img" || die "cryptsetup rejects the header"

        # Reverse: independent encryption, Orion decrypts.
        head -c "$size" /dev/urandom >"$tmp/src2"
        $XTS encrypt "$img" "$off" "$sector" "$tmp/vk.bin" "$tmp/src2"
        start_oriond "$conf"
        nbdcopy "$uri" "$tmp/back2" || die "nbdcopy download failed"
        cmp "$tmp/src2" "$tmp/back2" || die "sector $sector: Orion misreads independently encrypted data"
        stop_oriond
        rm -f "$img" "$tmp/src" "$tmp/src2" "$tmp/back" "$tmp/back2" "$tmp/plain"
}

variant 4096 512 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --hash sha256
variant 512 512 --pbkdf argon2id --pbkdf-memory 32768 --pbkdf-force-iterations 4 --pbkdf-parallel 2
variant 4096 256 --pbkdf argon2i --pbkdf-memory 16384 --pbkdf-force-iterations 4 --pbkdf-parallel 1 --hash sha512
echo "ok"
