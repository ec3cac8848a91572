# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for the remote-leaf tests (nbd, iscsi): start/stop nbdkit and tgtd on free loopback
# ports, by pid. Source after functions.sh and nbd-functions.sh.

# nbdkit_start PORT PLUGIN ARGS...: nbdkit in the foreground on 127.0.0.1:PORT; sets NBDKIT_PID.
nbdkit_start() {
        local port=$1
        shift
        nbdkit -f --exit-with-parent -i 127.0.0.1 -p "$port" "$@" >>"$tmp/nbdkit.log" 2>&1 &
        NBDKIT_PID=$!
        wait_for 60 nbdinfo --size "nbd://127.0.0.1:$port/" || die "nbdkit did not start"
}
nbdkit_kill() {
        [ -n "${NBDKIT_PID:-}" ] || return 0
        kill -KILL "$NBDKIT_PID" 2>/dev/null || true
        wait "$NBDKIT_PID" 2>/dev/null || true
        NBDKIT_PID=
}

TGT_IQN=iqn.2026-11.org.orion:remote
# tgtd_start PORT CTLPORT IMAGE [USER SECRET]: tgtd with one file-backed LUN; sets TGTD_PID.
tgtd_start() {
        local port=$1 ctl=$2 img=$3 user=${4:-} secret=${5:-}
        tgtd -f -C "$ctl" --iscsi "portal=127.0.0.1:$port" >>"$tmp/tgtd.log" 2>&1 &
        TGTD_PID=$!
        wait_for 30 tgtadm -C "$ctl" --lld iscsi --mode target --op new --tid 1 --targetname "$TGT_IQN" ||
                die "tgtd did not start"
        tgtadm -C "$ctl" --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 --backing-store "$img" ||
                die "tgtadm: cannot add the LUN"
        tgtadm -C "$ctl" --lld iscsi --mode target --op bind --tid 1 --initiator-address ALL ||
                die "tgtadm: cannot bind"
        if [ -n "$user" ]; then
                tgtadm -C "$ctl" --lld iscsi --mode account --op new --user "$user" --password "$secret" &&
                        tgtadm -C "$ctl" --lld iscsi --mode account --op bind --tid 1 --user "$user" ||
                        die "tgtadm: cannot set up CHAP"
        fi
}
tgtd_kill() {
        [ -n "${TGTD_PID:-}" ] || return 0
        kill -KILL "$TGTD_PID" 2>/dev/null || true
        wait "$TGTD_PID" 2>/dev/null || true
        TGTD_PID=
}
# A tgtd control port (its management socket is /var/run/tgtd/socket.N) unlikely to collide.
tgtd_ctl_port() { echo $((1000 + $1 % 30000)); }

# node_health NODE: the health word orionctl reports for NODE.
node_health() {
        orionctl --json node-info "$1" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["health"])'
}
# health_is NODE WORD; wait_health NODE WORD [TIMEOUT]
health_is() { [ "$(node_health "$1")" = "$2" ]; }
wait_health() { wait_for "${3:-60}" health_is "$1" "$2"; }

# node_stat NODE KEY [SUBKEY]: a counter from `orionctl stats NODE` (0 when absent).
node_stat() {
        orionctl --json stats "$1" | /usr/bin/python3 -c '
import json, sys
v = json.load(sys.stdin)[sys.argv[1]]
for k in sys.argv[2:]:
    v = v.get(k, 0) if isinstance(v, dict) else 0
print(v)' "$@"
}
# node_write_ops NODE: completed write requests of NODE.
node_write_ops() { node_stat "$1" write ops; }
# stat_above N NODE KEY [SUBKEY]: whether that counter exceeds N (for wait_for).
stat_above() { [ "$(node_stat "${@:2}")" -gt "$1" ]; }

# remote_volume NODE TYPE URL RETRY-TIMEOUT: start oriond with one remote leaf NODE (type nbd
# takes uri=, type iscsi url=) exported as "vol" over NBD; sets $orion to the export's URI.
remote_volume() {
        local key=uri
        [ "$2" = iscsi ] && key=url
        nbd_config "$tmp/oriond.conf"
        cat >>"$tmp/oriond.conf" <<CONF
[node $1]
type = $2
$key = $3
retry-timeout = $4

[export vol]
node = $1
protocols = nbd
CONF
        start_oriond "$tmp/oriond.conf"
        orion=nbd://127.0.0.1:$NBD_PORT/vol
}
# On failure, stop oriond before the remote server goes: with the server gone its final flush
# would wait for retry-timeout. Register with cleanup_fn after the server's own cleanup.
stop_oriond_first() {
        [ -n "${ORIOND_PID:-}" ] || return 0
        kill -TERM "$ORIOND_PID" 2>/dev/null || true
        wait "$ORIOND_PID" 2>/dev/null || true
        ORIOND_PID=
}
