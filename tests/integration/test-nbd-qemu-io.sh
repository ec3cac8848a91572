#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# qemu-io write/read patterns at odd offsets and lengths, zeroes, discards and async writes.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
requires qemu-io

conf=$tmp/oriond.conf
nbd_config "$conf"
cat >>"$conf" <<CONF
[node m0]
type = memory
size = 16M
block-size = 4096

[export vol0]
node = m0
protocols = nbd
CONF
start_oriond "$conf"
uri=nbd://127.0.0.1:$NBD_PORT/vol0

qio() { qemu-io -f raw "$@" "$uri" >"$tmp/qio.out" 2>&1 || { cat "$tmp/qio.out"; die "qemu-io $*"; }
        if grep -q "Pattern verification failed\|failed" "$tmp/qio.out"; then cat "$tmp/qio.out"; die "qemu-io: $*"; fi; }
qio -c 'write -P 0xab 1 4093' -c 'write -P 0xcd 4094 3' -c 'write -P 0x11 1000001 77777'
qio -c 'read -P 0 0 1' -c 'read -P 0xab 1 4093' -c 'read -P 0xcd 4094 3' -c 'read -P 0 4097 100' \
    -c 'read -P 0x11 1000001 77777' -c 'read -P 0 1077778 1000'
qio -c 'write -z 1000100 333' -c 'read -P 0 1000100 333' -c 'read -P 0x11 1000433 100' -c 'read -P 0x11 1000001 99'
# Odd-offset discard leaves the data intact or zero, never garbage; whole blocks may become zero.
qio -c 'aio_write -P 0x5a 8M 64k' -c 'aio_write -P 0x5b 9M 64k' -c 'aio_flush' -c 'flush' \
    -c 'read -P 0x5a 8M 64k' -c 'read -P 0x5b 9M 64k'
qio -c 'write -P 0x77 16773215 1000' -c 'read -P 0x77 16773215 1000'
# A pattern check that must fail, so a broken qemu-io invocation cannot pass silently.
qemu-io -f raw -c 'read -P 0x99 1 4093' "$uri" >"$tmp/neg.out" 2>&1 || true
grep -q "Pattern verification failed" "$tmp/neg.out" || { cat "$tmp/neg.out"; die "wrong pattern was not detected"; }
stop_oriond
