#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Malformed handshakes and request headers sent as raw bytes get the errors the NBD spec
# requires; the daemon neither crashes nor hangs and serves normal clients afterwards.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"

conf=$tmp/oriond.conf
nbd_config "$conf"
cat >>"$conf" <<CONF
[node m0]
type = memory
size = 64M

[export vol0]
node = m0
protocols = nbd
CONF
start_oriond "$conf"

timeout 120 /usr/bin/python3 "$(dirname "$0")/nbd-raw.py" 127.0.0.1 "$NBD_PORT" vol0 || die "raw protocol checks failed"
kill -0 "$ORIOND_PID" || die "oriond died"
expect_eq "size after abuse" "$(nbdinfo --size "nbd://127.0.0.1:$NBD_PORT/vol0")" 67108864
stop_oriond
