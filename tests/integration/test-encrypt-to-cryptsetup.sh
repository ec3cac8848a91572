#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Orion -> cryptsetup: `orionctl format encrypt` writes a LUKS2 header that cryptsetup
# parses and unlocks; format refuses to overwrite it without --force; data written through
# the NBD export is byte-identical on the way out, holds no plaintext on disk, and decrypts
# with cryptsetup's key; keys added and removed by Orion are seen so by cryptsetup, a key
# added by cryptsetup (while Orion runs) survives Orion's later header writes and opens the
# volume in Orion; header backups made by Orion are LUKS2 to cryptsetup.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/encrypt-functions.sh"

img=$tmp/disk.img
conf=$tmp/oriond.conf
nbd_config "$conf"
cat >>"$conf" <<CONF
[node disk]
type = file
path = $img
size = 24M
CONF
start_oriond "$conf"

orionctl format encrypt child=disk key-file="$tmp/pass1" sector-size=512 pbkdf=argon2id pbkdf-memory=32768 \
        pbkdf-force-iterations=2 pbkdf-parallel=2 label=orion-made >/dev/null || die "format failed"
cryptsetup luksDump "$img" >"$tmp/dump" || die "cryptsetup cannot parse Orion's header"
grep -q "orion-made" "$tmp/dump" || die "label lost"
grep -q "argon2id" "$tmp/dump" || die "keyslot kdf not argon2id"
grep -q "sector: 512" "$tmp/dump" || die "sector size not 512"
cryptsetup open --test-passphrase --key-file "$tmp/pass1" "$img" || die "cryptsetup rejects Orion's passphrase"
if cryptsetup open --test-passphrase --key-file "$tmp/wrong" "$img" 2>/dev/null; then
        die "cryptsetup accepted a wrong passphrase"
fi
if orionctl format encrypt child=disk key-file="$tmp/pass2" pbkdf=pbkdf2 pbkdf-force-iterations=1000 \
        2>"$tmp/err"; then
        die "format overwrote a LUKS header without --force"
fi
grep -q "force" "$tmp/err" || die "refusal does not mention --force: $(cat "$tmp/err")"
orionctl inspect disk >"$tmp/inspect" || die "inspect failed"
grep -q "LUKS2" "$tmp/inspect" || die "inspect does not recognise LUKS2"

orionctl node-add vol encrypt child=disk key-file="$tmp/pass1" >/dev/null || die "node-add failed"
orionctl export-add vol vol >/dev/null || die "export-add failed"
uri=nbd://127.0.0.1:$NBD_PORT/vol
wait_nbd "$NBD_PORT" vol || die "export not served"
size=$(nbdinfo --size "$uri")
[ "$size" = $((8 << 20)) ] || die "size $size"
head -c "$size" /dev/urandom >"$tmp/src"
nbdcopy --flush -C 2 "$tmp/src" "$uri" || die "nbdcopy upload failed"
nbdcopy "$uri" "$tmp/back" || die "nbdcopy download failed"
cmp "$tmp/src" "$tmp/back" || die "data differs"
$XTS noplain "$img" "$tmp/src" || die "plaintext on disk"

# Keys: Orion adds pass2; cryptsetup (behind Orion's back) adds pass3; Orion removes pass1.
orionctl encrypt add-key vol new-key-file="$tmp/pass2" key-file="$tmp/pass1" pbkdf=pbkdf2 \
        pbkdf-force-iterations=1000 >/dev/null || die "add-key failed"
cryptsetup open --test-passphrase --key-file "$tmp/pass2" "$img" || die "cryptsetup rejects the added key"
cryptsetup luksAddKey --batch-mode --key-file "$tmp/pass2" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
        "$img" "$tmp/pass3" || die "cryptsetup luksAddKey failed"
orionctl encrypt remove-key vol key-file="$tmp/pass1" >/dev/null || die "remove-key failed"
if cryptsetup open --test-passphrase --key-file "$tmp/pass1" "$img" 2>/dev/null; then
        die "cryptsetup still accepts the removed key"
fi
cryptsetup open --test-passphrase --key-file "$tmp/pass3" "$img" || die "Orion's header write lost cryptsetup's key"
orionctl --json encrypt dump vol >"$tmp/dump.json" || die "dump failed"
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(sorted(d["keyslots"]) != ["1","2"])' \
        "$tmp/dump.json" || die "dump keyslots: $(cat "$tmp/dump.json")"
orionctl encrypt header-backup vol "$tmp/hdr.bak" >/dev/null || die "header-backup failed"
cryptsetup isLuks --type luks2 "$tmp/hdr.bak" || die "the backup is not LUKS2 to cryptsetup"
cryptsetup open --test-passphrase --key-file "$tmp/pass3" --header "$tmp/hdr.bak" "$img" \
        || die "cryptsetup cannot unlock with the backup header"
stop_oriond

# The key cryptsetup added opens the volume in Orion; the data is intact.
encrypt_config "$conf.2" "$img" "$tmp/pass3"
start_oriond "$conf.2"
nbdcopy "$uri" "$tmp/back2" || die "nbdcopy download failed"
cmp "$tmp/src" "$tmp/back2" || die "data differs after reopening with cryptsetup's key"
stop_oriond
# And cryptsetup's view of the key decrypts what Orion wrote.
dump_vk "$img" "$tmp/pass3" "$tmp/vk.bin"
$XTS decrypt "$img" "$(luks_offset "$img")" 512 "$tmp/vk.bin" "$tmp/plain" "$size"
cmp "$tmp/src" "$tmp/plain" || die "independent decryption differs"
echo ok
