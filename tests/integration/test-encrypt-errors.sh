#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Encrypt error paths and documented behaviour: a wrong passphrase is a clear error and
# touches nothing; a truncated header and a header with both copies damaged are clear
# errors; a damaged primary header is served from the secondary (with a warning) and
# repaired; discard only with allow-discards; write-zeroes reads back zeroes but stores
# ciphertext; format refuses small devices and needs --force over a LUKS header.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/encrypt-functions.sh"
requires nbdsh

img=$tmp/disk.img
truncate -s 20M "$img"
cryptsetup luksFormat --type luks2 --batch-mode --key-file "$tmp/pass1" --pbkdf pbkdf2 \
        --pbkdf-force-iterations 1000 --sector-size 4096 "$img" || die "luksFormat failed"
cp "$img" "$tmp/pristine.img"
conf=$tmp/oriond.conf
uri() { echo "nbd://127.0.0.1:$NBD_PORT/vol"; }

# Wrong passphrase: oriond refuses to start, says why, and the image is untouched.
encrypt_config "$conf" "$img" "$tmp/wrong"
start_oriond_fails "$conf" "no key available with this passphrase"
cmp "$img" "$tmp/pristine.img" || die "a failed unlock modified the image"

# Same through node-add on a running daemon.
nbd_config "$conf"
printf '[node disk]\ntype = file\npath = %s\n' "$img" >>"$conf"
start_oriond "$conf"
if orionctl node-add vol encrypt child=disk key-file="$tmp/wrong" 2>"$tmp/err"; then die "wrong key accepted"; fi
grep -q "no key available" "$tmp/err" || die "unclear error: $(cat "$tmp/err")"
if orionctl node-add vol encrypt child=disk key-file="$tmp/missing" 2>"$tmp/err"; then die "missing key file"; fi
grep -q "cannot open key file" "$tmp/err" || die "unclear error: $(cat "$tmp/err")"
cmp "$img" "$tmp/pristine.img" || die "failed unlocks modified the image"

# Documented behaviour: no discard by default; write-zeroes stores encrypted zeroes.
orionctl node-add vol encrypt child=disk key-file="$tmp/pass1" >/dev/null || die "node-add failed"
orionctl export-add vol vol >/dev/null || die "export-add failed"
wait_nbd "$NBD_PORT" vol || die "export not served"
if nbdinfo --can trim "$(uri)"; then die "discard advertised without allow-discards"; fi
head -c 1M /dev/urandom >"$tmp/r"
nbdcopy --flush "$tmp/r" "$(uri)" || die "upload failed"
nbdsh -u "$(uri)" -c 'h.zero(65536, 4096); assert h.pread(65536, 4096) == bytes(65536); h.flush()' \
        || die "write-zeroes did not read back as zeroes"
off=$(luks_offset "$img")
if cmp -s -n 65536 -i "$((off + 4096)):0" "$img" /dev/zero; then die "zeroes stored in clear"; fi
orionctl export-remove vol >/dev/null
orionctl node-remove vol >/dev/null
orionctl node-add vol encrypt child=disk key-file="$tmp/pass1" allow-discards=on >/dev/null || die "node-add failed"
orionctl export-add vol vol >/dev/null
wait_nbd "$NBD_PORT" vol || die "export not served"
nbdinfo --can trim "$(uri)" || die "allow-discards=on does not advertise discard"
orionctl export-remove vol >/dev/null
orionctl node-remove vol >/dev/null

# format: --force needed over LUKS; a device too small for the metadata is refused.
if orionctl format encrypt child=disk key-file="$tmp/pass2" 2>"$tmp/err"; then die "format without --force"; fi
grep -q "LUKS header" "$tmp/err" || die "unclear refusal: $(cat "$tmp/err")"
truncate -s 8M "$tmp/small.img"
orionctl node-add small file path="$tmp/small.img" >/dev/null
if orionctl format encrypt child=small key-file="$tmp/pass2" 2>"$tmp/err"; then die "format on 8M"; fi
grep -q "too small" "$tmp/err" || die "unclear refusal: $(cat "$tmp/err")"
stop_oriond

# Truncated header: the file ends inside the JSON area.
head -c 8192 "$tmp/pristine.img" >"$tmp/trunc.img"
encrypt_config "$conf" "$tmp/trunc.img" "$tmp/pass1"
start_oriond_fails "$conf" "truncated"

# Damaged primary: served from the secondary with a warning, then repaired.
cp "$tmp/pristine.img" "$img"
printf 'garbage!' | dd of="$img" bs=1 seek=5000 conv=notrunc status=none
encrypt_config "$conf" "$img" "$tmp/pass1"
start_oriond "$conf"
grep -q "primary LUKS2 header is damaged" "$tmp/oriond.log" || die "no warning about the primary header"
grep -q "rewrote the primary LUKS2 header" "$tmp/oriond.log" || die "primary header not repaired"
orionctl --json node-info vol | grep -q '"header-primary": *"ok"' || die "status does not show the repair"
nbdcopy "$(uri)" "$tmp/back" || die "read through the secondary header failed"
stop_oriond
cmp -n 4096 "$tmp/back" "$tmp/pristine.img" >/dev/null 2>&1 && die "plaintext equals ciphertext?"
cryptsetup luksDump --debug "$img" 2>&1 | grep -q "requires recovery" && die "cryptsetup still sees a damaged header"

# Both copies damaged: a clear error.
printf 'garbage!' | dd of="$img" bs=1 seek=5000 conv=notrunc status=none
printf 'garbage!' | dd of="$img" bs=1 seek=$((16384 + 5000)) conv=notrunc status=none
start_oriond_fails "$conf" "both LUKS2 header copies are damaged"
echo ok
