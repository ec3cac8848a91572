# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for the NBD integration tests: source after functions.sh.

requires nbdinfo
NBD_PORT=$(free_port)
NBD_SOCK=$tmp/nbd.sock

# nbd_config FILE [extra nbd-listen addresses]: [daemon] section listening on $NBD_PORT and
# $NBD_SOCK; append node and export sections to FILE afterwards.
nbd_config() {
        local f=$1
        shift
        mkdir -p "$tmp/state"
        cat >"$f" <<CONF
[daemon]
state-dir = $tmp/state
nbd-listen = 127.0.0.1:$NBD_PORT unix:$NBD_SOCK $*

CONF
}

# nbd_file_volume SIZE: start oriond with one file node of SIZE ($tmp/disk.img) exported as
# vol0 over NBD; sets $uri to its TCP URI.
nbd_file_volume() {
        nbd_config "$tmp/oriond.conf"
        cat >>"$tmp/oriond.conf" <<CONF
[node disk]
type = file
path = $tmp/disk.img
size = $1

[export vol0]
node = disk
protocols = nbd
CONF
        start_oriond "$tmp/oriond.conf"
        uri=nbd://127.0.0.1:$NBD_PORT/vol0
}

# A byte-exact check of what nbdsh prints: expect_eq WHAT GOT WANT
expect_eq() { [ "$2" = "$3" ] || die "$1: got '$2', want '$3'"; }
