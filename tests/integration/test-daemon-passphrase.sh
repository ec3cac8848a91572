#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# orionctl --passphrase-prompt / --new-passphrase-prompt with the encrypt layer: format, open,
# add a key through the type-verb sugar, reopen with the new key, refuse a wrong one; and
# format's --force and inspect on a recognised format.
. "$(dirname "$0")/functions.sh"
requires python3
[ -e "$ORION_PLUGIN_DIR/orion-encrypt.so" ] || skip "encrypt plugin not built"

printf '[node m0]\ntype = memory\nsize = 32M\n' >"$tmp/oriond.conf"
start_oriond "$tmp/oriond.conf"
fast="pbkdf=pbkdf2 pbkdf-force-iterations=1000"   # keep key derivation cheap in tests

# passphrases come from stdin (not a terminal here), never from the command line
printf 'first secret\n' | orionctl format encrypt child=m0 $fast --passphrase-prompt | grep -q "encrypt format written" ||
        die "format with --passphrase-prompt"
orionctl --json inspect m0 | grep -q '"type":"encrypt"' || die "inspect does not recognise the LUKS2 header"
# a recognised format is not overwritten without --force
rc=0
printf 'other\n' | orionctl format encrypt child=m0 $fast --passphrase-prompt 2>"$tmp/err" || rc=$?
[ $rc = 1 ] && grep -q "use --force to overwrite" "$tmp/err" || die "format over a LUKS2 header without --force: exit $rc"

printf 'first secret\n' | orionctl node-add v0 encrypt child=m0 --passphrase-prompt >/dev/null || die "open with the passphrase"
printf 'second secret\n' | orionctl encrypt add-key v0 --new-passphrase-prompt pbkdf=pbkdf2 pbkdf-force-iterations=1000 >/dev/null ||
        die "add-key through orionctl encrypt add-key --new-passphrase-prompt"
orionctl node-remove v0 >/dev/null
printf 'second secret\n' | orionctl node-add v0 encrypt child=m0 --passphrase-prompt >/dev/null || die "new key does not open"
orionctl node-remove v0 >/dev/null
rc=0
printf 'wrong\n' | orionctl node-add v0 encrypt child=m0 --passphrase-prompt 2>"$tmp/err" || rc=$?
[ $rc = 1 ] || die "a wrong passphrase: exit $rc"
rc=0
orionctl node-add v0 encrypt child=m0 --passphrase-prompt </dev/null 2>"$tmp/err" || rc=$?
[ $rc = 1 ] && grep -q "no passphrase given" "$tmp/err" || die "no passphrase on stdin not reported"
# --force overwrites
printf 'third\n' | orionctl format encrypt child=m0 $fast --passphrase-prompt --force >/dev/null || die "format --force"
printf 'third\n' | orionctl node-add v0 encrypt child=m0 --passphrase-prompt >/dev/null || die "reformatted volume does not open"
# the passphrase never reached the daemon's log
! grep -q "secret\|third" "$tmp/oriond.log" || die "a passphrase appears in the log"
stop_oriond
