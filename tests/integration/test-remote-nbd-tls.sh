#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# nbd leaf over TLS-PSK (nbds://) to an nbdkit that requires TLS: data round trip; a wrong key
# and a plaintext nbd:// URI are refused with clear errors.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
. "$(dirname "$0")/remote-functions.sh"
requires nbdkit nbdsh
nbdkit --dump-config 2>/dev/null | grep -q '^tls=yes' || skip "nbdkit without TLS"
cleanup_fn nbdkit_kill
cleanup_fn stop_oriond_first

key() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
printf 'orion:%s\n' "$(key)" >"$tmp/keys.psk"
printf 'orion:%s\n' "$(key)" >"$tmp/wrong.psk"
chmod 600 "$tmp/keys.psk" "$tmp/wrong.psk"
remote_port=$(free_port)
nbdkit -f --exit-with-parent -i 127.0.0.1 -p "$remote_port" --tls=require --tls-psk="$tmp/keys.psk" \
        memory 16M >>"$tmp/nbdkit.log" 2>&1 &
NBDKIT_PID=$!
wait_for 60 nbdinfo --size "nbds://orion@127.0.0.1:$remote_port/?tls-psk-file=$tmp/keys.psk" ||
        die "nbdkit (TLS) did not start"

conf=$tmp/oriond.conf
nbd_config "$conf"
cat >>"$conf" <<CONF
[node remote]
type = nbd
uri = nbds://127.0.0.1:$remote_port/
tls-psk-file = $tmp/keys.psk
tls-username = orion

[export vol]
node = remote
protocols = nbd
CONF
start_oriond "$conf"
head -c $((1 << 20)) /dev/urandom >"$tmp/data"
nbdsh -u "nbd://127.0.0.1:$NBD_PORT/vol" -c "h.pwrite(open('$tmp/data','rb').read(), 4096); h.flush()" ||
        die "write through the TLS leaf failed"
nbdsh -c "h.set_uri_allow_local_file(True)" -u "nbds://orion@127.0.0.1:$remote_port/?tls-psk-file=$tmp/keys.psk" \
        -c "assert h.pread(1 << 20, 4096) == open('$tmp/data','rb').read()" || die "remote does not hold the data"

if orionctl node-add bad nbd "uri=nbds://127.0.0.1:$remote_port/" "tls-psk-file=$tmp/wrong.psk" \
        tls-username=orion >"$tmp/bad.out" 2>&1; then
        die "a wrong TLS key was accepted"
fi
grep -qi "cannot connect" "$tmp/bad.out" || { cat "$tmp/bad.out"; die "wrong key: unclear error"; }
if orionctl node-add plain nbd "uri=nbd://127.0.0.1:$remote_port/" >"$tmp/plain.out" 2>&1; then
        die "plaintext connection to a TLS-only server was accepted"
fi
cat "$tmp/bad.out" "$tmp/plain.out"
stop_oriond
