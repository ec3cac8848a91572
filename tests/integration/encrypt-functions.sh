# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for the encrypt (LUKS2) integration tests: source after functions.sh and
# nbd-functions.sh.
requires cryptsetup nbdcopy
/usr/bin/python3 -c 'import cryptography' 2>/dev/null || skip "python3-cryptography not installed"
XTS="/usr/bin/python3 $(dirname "${BASH_SOURCE[0]}")/luks-xts.py"

# Passphrase files: cryptsetup --key-file and Orion's key-file both take the whole file,
# trailing newline included.
printf 'orion test passphrase\n' >"$tmp/pass1"
printf 'second-key' >"$tmp/pass2"
printf 'third key from cryptsetup' >"$tmp/pass3"
printf 'wrong' >"$tmp/wrong"

# luks_offset IMG: data segment offset in bytes, from cryptsetup's own parser.
luks_offset() { cryptsetup luksDump "$1" | awk '$1 == "offset:" { print $2; exit }'; }
# dump_vk IMG KEYFILE OUT: the volume key as cryptsetup sees it.
dump_vk() {
        rm -f "$3"
        cryptsetup luksDump --dump-volume-key --batch-mode --key-file "$2" --volume-key-file "$3" "$1" >/dev/null \
                || die "cryptsetup could not dump the volume key of $1"
}
# encrypt_config CONF IMG KEYFILE: file leaf + encrypt node 'vol' + NBD export 'vol'.
encrypt_config() {
        nbd_config "$1"
        cat >>"$1" <<CONF
[node disk]
type = file
path = $2

[node vol]
type = encrypt
child = disk
key-file = $3

[export vol]
node = vol
protocols = nbd
CONF
}
