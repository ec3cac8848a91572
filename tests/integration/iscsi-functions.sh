# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for the iSCSI integration tests: source after functions.sh.

requires iscsi-inq iscsi-ls
ISCSI_PORT=$(free_port)
ISCSI_PREFIX=iqn.2026-11.org.orion
ISCSI_PORTAL=127.0.0.1:$ISCSI_PORT

# iscsi_config FILE [extra daemon lines...]: [daemon] section listening on $ISCSI_PORT (and NBD
# on $NBD_PORT when set); append node and export sections afterwards.
iscsi_config() {
        local f=$1 l
        shift
        mkdir -p "$tmp/state"
        {
                echo "[daemon]"
                echo "state-dir = $tmp/state"
                echo "iscsi-listen = $ISCSI_PORTAL"
                if [ -n "${NBD_PORT:-}" ]; then echo "nbd-listen = 127.0.0.1:$NBD_PORT"; fi
                for l in "$@"; do echo "$l"; done
                echo
        } >"$f"
}

# iscsi_url EXPORT-OR-TARGET [LUN]
iscsi_url() { echo "iscsi://$ISCSI_PORTAL/$ISCSI_PREFIX:$1/${2:-0}"; }

# Wait until the target answers a discovery login.
wait_iscsi() { wait_for 60 iscsi-ls "iscsi://$ISCSI_PORTAL" || die "iSCSI target not answering on $ISCSI_PORTAL"; }

expect_eq() { [ "$2" = "$3" ] || die "$1: got '$2', want '$3'"; }

# iscsi_size URL: bytes from READ CAPACITY(16).
iscsi_size() { iscsi-readcapacity16 -s "$1"; }
