#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Authenticated modes (aes-gcm-random, chacha20-random + poly1305) end to end through NBD:
# format, random data in and out byte-identical, no plaintext in the backing file; a
# flipped bit in a sector (or in its tag) fails the reads of that sector only, with an error
# the client sees and a warning in the log; cryptsetup parses the header and, seeing the
# orion-aead-v1 requirement, checks the passphrase but refuses to change the header (its own
# authenticated layout, dm-integrity's, differs).
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/encrypt-functions.sh"
requires nbdsh

conf=$tmp/oriond.conf
uri="nbd://127.0.0.1:$NBD_PORT/vol"

for variant in "aes-gcm-random 4096" "chacha20-random 512"; do
        set -- $variant
        cipher=$1 sector=$2
        img=$tmp/$cipher.img
        rm -f "$img"
        truncate -s 24M "$img"
        nbd_config "$conf"
        printf '[node disk]\ntype = file\npath = %s\n' "$img" >>"$conf"
        start_oriond "$conf"
        orionctl format encrypt child=disk key-file="$tmp/pass1" cipher="$cipher" sector-size="$sector" \
                pbkdf=pbkdf2 pbkdf-force-iterations=1000 >/dev/null || die "format $cipher failed"
        orionctl node-add vol encrypt child=disk key-file="$tmp/pass1" >/dev/null || die "node-add failed"
        orionctl export-add vol vol >/dev/null || die "export-add failed"
        wait_nbd "$NBD_PORT" vol || die "export not served"
        orionctl --json node-info vol | grep -q '"integrity"' || die "node-info does not show the integrity mode"
        if nbdinfo --can trim "$uri"; then die "discard advertised on an authenticated volume"; fi
        head -c 3M /dev/urandom >"$tmp/r"
        nbdcopy --flush "$tmp/r" "$uri" || die "upload failed"
        nbdcopy "$uri" "$tmp/back" || die "download failed"
        cmp -n 3145728 "$tmp/r" "$tmp/back" || die "$cipher: data read back differs"
        stop_oriond

        /usr/bin/python3 - "$tmp/r" "$img" <<'PY' || die "$cipher: plaintext found in the backing file"
import sys
r, img = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
sys.exit(1 if any(r[o:o + 32] in img for o in range(0, len(r), 65536)) else 0)
PY
        cryptsetup luksDump "$img" >"$tmp/dump" || die "cryptsetup cannot parse the header"
        grep -q "orion-aead-v1" "$tmp/dump" || die "requirement not shown by cryptsetup: $(cat "$tmp/dump")"
        grep -q "$cipher" "$tmp/dump" || die "cipher not shown by cryptsetup"
        # The keyslots are cryptsetup's (aes-xts-plain64, 512-bit key): it checks the
        # passphrase; but it will not change a header whose requirements it does not know.
        cryptsetup open --test-passphrase --key-file "$tmp/pass1" "$img" || die "cryptsetup rejects the passphrase"
        if cryptsetup open --test-passphrase --key-file "$tmp/wrong" "$img" 2>/dev/null; then
                die "cryptsetup accepts a wrong passphrase"
        fi
        cp "$img" "$tmp/copy.img"
        if cryptsetup luksAddKey --batch-mode --key-file "$tmp/pass1" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
                "$tmp/copy.img" "$tmp/pass2" 2>"$tmp/err"; then
                die "cryptsetup changed a volume whose layout it does not know"
        fi
        grep -q "requirements" "$tmp/err" || die "unexpected cryptsetup refusal: $(cat "$tmp/err")"

        # One flipped bit in sector 2's ciphertext.
        off=$(luks_offset "$img")
        pos=$((off + 2 * sector + 100))
        byte=$(od -An -tu1 -j "$pos" -N1 "$img" | tr -d ' ')
        printf "$(printf '\\%03o' $((byte ^ 1)))" | dd of="$img" bs=1 seek="$pos" conv=notrunc status=none
        start_oriond "$conf"
        orionctl node-add vol encrypt child=disk key-file="$tmp/pass1" >/dev/null || die "reopen failed"
        orionctl export-add vol vol >/dev/null || die "export-add failed"
        wait_nbd "$NBD_PORT" vol || die "export not served"
        nbdsh -u "$uri" -c "
import sys
s = $sector
want = open('$tmp/r', 'rb').read()
assert h.pread(s, s) == want[s:2 * s]
assert h.pread(s, 3 * s) == want[3 * s:4 * s]
for off, n in ((2 * s, s), (0, 4 * s)):
    try:
        h.pread(n, off)
    except nbd.Error:
        continue
    sys.exit('tampered sector read without error')
" || die "$cipher: tampering not detected (or neighbours damaged)"
        grep -q "fails authentication" "$tmp/oriond.log" || die "no authentication warning in the log"
        # A rewrite seals it again.
        nbdsh -u "$uri" -c "
s = $sector
h.pwrite(b'\x5a' * s, 2 * s)
assert h.pread(s, 2 * s) == b'\x5a' * s
" || die "$cipher: rewritten sector does not read back"
        # Concurrent small writes share tag blocks (146 tags each): their read-modify-writes
        # must not lose each other's tags. fio verifies every block afterwards.
        if fio --enghelp=nbd >/dev/null 2>&1; then
                n0=$(grep -c "fails authentication" "$tmp/oriond.log")
                (cd "$tmp" && fio --name=tags --ioengine=nbd --uri="$uri" --rw=randwrite --bs="$((2 * sector))" \
                        --iodepth=16 --numjobs=2 --size=3M --offset_increment=3M --verify=crc32c --verify_fatal=1 \
                        --do_verify=1 --verify_state_save=0 --group_reporting >"$tmp/fio.out" 2>&1) ||
                        { cat "$tmp/fio.out"; die "$cipher: concurrent writes lost data or tags"; }
                [ "$(grep -c "fails authentication" "$tmp/oriond.log")" = "$n0" ] ||
                        die "$cipher: authentication failures under fio"
        fi
        stop_oriond
done
