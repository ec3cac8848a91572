#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# systemd socket activation: nbdinfo/nbdcopy start oriond as a captive server with LISTEN_FDS,
# and oriond serves NBD on the inherited socket instead of its nbd-listen addresses.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
requires nbdcopy

conf=$tmp/oriond.conf
# nbd-listen names sockets that must stay unused: activation replaces them.
nbd_config "$conf"
cat >>"$conf" <<CONF
[node m0]
type = memory
size = 5M

[export vol0]
node = m0
protocols = nbd
description = activated
CONF
daemon=("$ORIOND" --foreground --config "$conf" --control-socket "$tmp/ctl.sock" --state-dir "$tmp/state")

nbdinfo --json -- [ "${daemon[@]}" ] >"$tmp/info.json" 2>"$tmp/info.err" || { cat "$tmp/info.err"; die "nbdinfo with socket activation failed"; }
grep -q '"export-size": 5242880' "$tmp/info.json" || { cat "$tmp/info.json"; die "wrong size through socket activation"; }
grep -q '"description": "activated"' "$tmp/info.json" || die "description missing"

head -c 5M /dev/urandom >"$tmp/src.img"
# One captive daemon: copy in, then read back in the same run through nbdsh.
nbdsh -c "h.connect_systemd_socket_activation([$(printf '"%s",' "${daemon[@]}")])" -c "
data = open('$tmp/src.img', 'rb').read()
h.pwrite(data, 0)
h.flush()
assert h.pread(len(data), 0) == data
import os
assert not os.path.exists('$NBD_SOCK'), 'nbd-listen was used despite activation'
print('round trip ok')
" || die "read/write through an activated daemon failed"
