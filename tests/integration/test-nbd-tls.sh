#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# NBD over TLS: PSK and X.509 with libnbd clients (nbdinfo, nbdcopy), nbd-tls = require refuses
# clear-text clients, wrong keys and untrusted CAs fail, and STARTTLS resets the negotiation.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd-functions.sh"
requires nbdcopy openssl

# PSK: psktool's format, user:hex-key.
printf 'alice:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$tmp/keys.psk"
printf 'alice:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$tmp/wrong.psk"
# X.509: a CA and a server certificate for localhost / 127.0.0.1.
certs=$tmp/pki
mkdir -p "$certs" "$tmp/other"
(
        cd "$certs"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=orion-test-ca -keyout ca-key.pem \
                -out ca-cert.pem
        openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server-key.pem -out server.csr
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext.cnf
        openssl x509 -req -in server.csr -CA ca-cert.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
                -extfile ext.cnf -out server-cert.pem
        cd "$tmp/other"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout ca-key.pem -out ca-cert.pem
) >"$tmp/openssl.log" 2>&1 || { cat "$tmp/openssl.log"; die "openssl failed"; }
# The server's directory must not hand client-verification duties to the test CA key.
rm -f "$certs/ca-key.pem"

conf=$tmp/oriond.conf
nbd_config "$conf"
cat >>"$conf" <<CONF
nbd-tls = require
nbd-tls-certificates = $certs
nbd-tls-psk = $tmp/keys.psk

[node m0]
type = memory
size = 8M

[export vol0]
node = m0
protocols = nbd
CONF
start_oriond "$conf"
grep -q "TLS required" "$tmp/oriond.log" || die "oriond did not report TLS"

psk_uri="nbds://alice@127.0.0.1:$NBD_PORT/vol0?tls-psk-file=$tmp/keys.psk"
x509_uri="nbds://localhost:$NBD_PORT/vol0?tls-certificates=$certs"
expect_eq "size over TLS-PSK" "$(nbdinfo --size "$psk_uri")" 8388608
expect_eq "size over TLS-X.509" "$(nbdinfo --size "$x509_uri")" 8388608
if nbdinfo --size "nbd://127.0.0.1:$NBD_PORT/vol0" 2>/dev/null; then die "clear text accepted with nbd-tls = require"; fi
if nbdinfo --size "nbds://alice@127.0.0.1:$NBD_PORT/vol0?tls-psk-file=$tmp/wrong.psk" 2>/dev/null; then
        die "wrong PSK accepted"
fi
if nbdinfo --size "nbds://localhost:$NBD_PORT/vol0?tls-certificates=$tmp/other" 2>/dev/null; then
        die "server certificate accepted by a client trusting another CA"
fi

head -c 8M /dev/urandom >"$tmp/src.img"
nbdcopy --flush "$tmp/src.img" "$psk_uri" || die "nbdcopy in over TLS failed"
nbdcopy "$x509_uri" "$tmp/back.img" || die "nbdcopy out over TLS failed"
cmp "$tmp/src.img" "$tmp/back.img" || die "data differs after a TLS round trip"

timeout 60 /usr/bin/python3 "$(dirname "$0")/nbd-tls-raw.py" "$NBD_PORT" "$certs/ca-cert.pem" vol0 ||
        die "STARTTLS protocol checks failed"
orionctl --json status | grep -q '"tls": *"require"' || die "status does not show TLS"
stop_oriond
