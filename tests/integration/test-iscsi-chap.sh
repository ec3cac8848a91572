#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Authentication and access control: discovery without and with CHAP (daemon keys), a wrong
# secret or user refused, per-target CHAP and mutual CHAP (export keys, the initiator checks the
# target's answer), and initiator ACLs by IQN and by address.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/iscsi-functions.sh"
portal=$ISCSI_PORTAL

# 1. No CHAP configured: discovery and login need no credentials.
conf=$tmp/open.conf
iscsi_config "$conf"
cat >>"$conf" <<CONF
[node m0]
type = memory
size = 4M

[export open]
node = m0
protocols = iscsi
CONF
start_oriond "$conf"
wait_iscsi
iscsi-ls "iscsi://$portal" | grep -q "Target:$ISCSI_PREFIX:open " || die "open discovery failed"
iscsi-inq "$(iscsi_url open)" >/dev/null || die "open login failed"
stop_oriond

# 2. CHAP for discovery and every target (daemon keys); one target with its own secret and
#    mutual CHAP; ACLs.
conf=$tmp/chap.conf
iscsi_config "$conf" "iscsi-chap-user = disco" "iscsi-chap-secret = discosecret1234"
cat >>"$conf" <<CONF
[node m0]
type = memory
size = 4M

[node m1]
type = memory
size = 4M

[node m2]
type = memory
size = 4M

[node m3]
type = memory
size = 4M

[export plain]
node = m0
protocols = iscsi

[export mutual]
node = m1
protocols = iscsi
iscsi-chap-user = alice
iscsi-chap-secret = alicesecret12345
iscsi-mutual-user = target1
iscsi-mutual-secret = targetsecret6789

[export acl-name]
node = m2
protocols = iscsi
iscsi-allow-initiators = iqn.2026-11.test:allowed

[export acl-addr]
node = m3
protocols = iscsi
iscsi-allow-addresses = 10.0.0.0/8 192.168.1.1
CONF
start_oriond "$conf"
wait_for 60 iscsi-ls "iscsi://disco%discosecret1234@$portal" || die "CHAP discovery with the right secret failed"

if iscsi-ls "iscsi://$portal" >"$tmp/out" 2>&1; then die "discovery without CHAP accepted"; fi
if iscsi-ls "iscsi://disco%wrongsecret12@$portal" >"$tmp/out" 2>&1; then die "wrong discovery secret accepted"; fi
if iscsi-ls "iscsi://mallory%discosecret1234@$portal" >"$tmp/out" 2>&1; then die "wrong CHAP user accepted"; fi
iscsi-ls "iscsi://disco%discosecret1234@$portal" >"$tmp/ls" || die "discovery failed"
grep -q "Target:$ISCSI_PREFIX:plain " "$tmp/ls" || die "plain not discovered"
grep -q "Target:$ISCSI_PREFIX:mutual " "$tmp/ls" || die "mutual not discovered"
# ACLs hide targets from initiators that may not use them.
if grep -q "acl-addr" "$tmp/ls"; then die "address ACL target listed for 127.0.0.1"; fi
if grep -q "acl-name" "$tmp/ls"; then die "name ACL target listed for the default initiator"; fi
iscsi-ls -i iqn.2026-11.test:allowed "iscsi://disco%discosecret1234@$portal" | grep -q "acl-name" ||
        die "name ACL target hidden from the allowed initiator"

# Target CHAP from the daemon keys.
u=$(iscsi_url plain)
iscsi-inq "iscsi://disco%discosecret1234@${u#iscsi://}" >/dev/null || die "CHAP login to plain failed"
if iscsi-inq "$u" >/dev/null 2>&1; then die "login without CHAP accepted"; fi
if iscsi-inq "iscsi://disco%nottheright12@${u#iscsi://}" >/dev/null 2>&1; then die "bad secret accepted"; fi

# The export's own secret replaces the daemon's; mutual CHAP proves the target to the initiator.
u=$(iscsi_url mutual)
m="iscsi://alice%alicesecret12345@${u#iscsi://}"
if iscsi-inq "iscsi://disco%discosecret1234@${u#iscsi://}" >/dev/null 2>&1; then die "daemon secret opened mutual"; fi
iscsi-inq "$m" >/dev/null || die "one-way CHAP to mutual failed"
iscsi-inq "$m?target_user=target1&target_password=targetsecret6789" >/dev/null || die "mutual CHAP failed"
LIBISCSI_CHAP_TARGET_USERNAME=target1 LIBISCSI_CHAP_TARGET_PASSWORD=wrongtarget99 \
        iscsi-inq "$m" >/dev/null 2>&1 && die "initiator accepted a target that does not know the mutual secret"
iscsi-inq "$m?target_user=target1&target_password=wrongtarget99" >/dev/null 2>&1 &&
        die "initiator accepted a wrong mutual answer"

# Login-level ACLs.
u=$(iscsi_url acl-name)
c="iscsi://disco%discosecret1234@${u#iscsi://}"
if iscsi-inq "$c" >/dev/null 2>&1; then die "name ACL let the default initiator in"; fi
iscsi-inq -i iqn.2026-11.test:allowed "$c" >/dev/null || die "name ACL refused the allowed initiator"
u=$(iscsi_url acl-addr)
if iscsi-inq -i iqn.2026-11.test:allowed "iscsi://disco%discosecret1234@${u#iscsi://}" >/dev/null 2>&1; then
        die "address ACL let 127.0.0.1 in"
fi
grep -q "refused" "$tmp/oriond.log" || die "refusals are not logged"
stop_oriond
