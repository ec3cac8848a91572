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

# read_gets_eio SECONDS URI OFFSET: a 4 KiB read at OFFSET through URI fails with EIO, within
# SECONDS (a hang is a failure too).
read_gets_eio() {
        timeout "$1" nbdsh -u "$2" -c "
import errno
try:
    h.pread(4096, $3)
    raise AssertionError('the read succeeded')
except nbd.Error as e:
    assert e.errnum == errno.EIO, e.errnum
"
}

# The hung-server checks (test-remote-*-hung); PID is the server, stopped with SIGSTOP.
# frozen_within_window PID IMAGE: node "patient" (exported as $patient, "x" * 4096 at 0,
# request-timeout shorter and retry-timeout longer than the freeze) drops the link that stopped
# answering; a write and a read issued during the freeze complete once the server resumes, and
# the write is in IMAGE.
frozen_within_window() {
        local pid=$1 img=$2 client
        kill -STOP "$pid"
        nbdsh -u "$patient" -c 'h.pwrite(b"y" * 4096, 8192); h.flush(); assert h.pread(4096, 0) == b"x" * 4096' \
                >"$tmp/patient.log" 2>&1 &
        client=$!
        wait_for 60 stat_above 0 patient dropped_unanswering || die "the unanswered link was not dropped"
        kill -0 "$client" 2>/dev/null || die "the client finished while the server was frozen: $(cat "$tmp/patient.log")"
        kill -CONT "$pid"
        timeout 120 tail --pid="$client" -f /dev/null || die "client still waiting after the server came back"
        wait "$client" || die "requests failed although the server came back in time: $(cat "$tmp/patient.log")"
        cmp <(dd if="$img" bs=4096 skip=2 count=1 status=none) <(head -c 4096 /dev/zero | tr '\0' y) ||
                die "the write issued while the server was frozen is not on the server"
}

# frozen_past_window PID: node "impatient" (exported as $impatient, "x" * 4096 at 0, frozen
# longer than its retry-timeout) gives clients EIO, is degraded with a dropped link counted, and
# recovers after SIGCONT.
frozen_past_window() {
        local pid=$1
        kill -STOP "$pid"
        read_gets_eio 120 "$impatient" 0 || die "clients did not get EIO from a frozen server"
        [ "$(node_health impatient)" = degraded ] || die "node not degraded"
        [ "$(node_stat impatient dropped_unanswering)" -ge 1 ] || die "no dropped link counted"
        kill -CONT "$pid"
        wait_for 60 nbdsh -u "$impatient" -c 'assert h.pread(4096, 0) == b"x" * 4096' ||
                die "no recovery after the server resumed"
        wait_health impatient ok 60 || die "node still not ok"
}
