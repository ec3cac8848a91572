#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Remote-leaf benchmark, in one run: fio (nbd engine) through an Orion NBD export whose leaf is
# a remote nbdkit, beside fio straight to that nbdkit; and, as root with tgt installed, Orion's
# iscsi leaf over tgtd beside qemu-nbd's iSCSI driver over the same LUN (fio has no iSCSI
# engine, so qemu-nbd is the direct peer). Prints IOPS, MB/s and Orion's overhead, and the CPU
# time the servers of each path spent per I/O (after the ramp), the measure that holds on a
# shared machine: on 2 busy cores throughput follows it. Not a test.
# Usage: bench/remote.sh [-r RUNTIME_S] [-s SIZE_MB] [-b BUILD_DIR] [-c NBD_CONNECTIONS] [-N (no iSCSI)]
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

runtime=5
size_mb=256
build=$(cd "$(dirname "$0")/.." && pwd)/build
conns=2 # the leaf's default
no_iscsi=0
while getopts "r:s:b:c:N" o; do
        case $o in
        r) runtime=$OPTARG ;;
        s) size_mb=$OPTARG ;;
        b) build=$OPTARG ;;
        c) conns=$OPTARG ;;
        N) no_iscsi=1 ;;
        *) echo "usage: $0 [-r RUNTIME_S] [-s SIZE_MB] [-b BUILD_DIR] [-c NBD_CONNECTIONS] [-N]" >&2; exit 2 ;;
        esac
done
for c in fio nbdkit nbdinfo /usr/bin/python3; do
        command -v "$c" >/dev/null || { echo "$c is needed" >&2; exit 1; }
done
oriond=$build/src/daemon/oriond
[ -x "$oriond" ] || { echo "build oriond first ($oriond)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/orion-bench-remote.XXXXXX")
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done # tgtd ignores SIGTERM
        wait 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_nbd() {
        for _ in $(seq 600); do nbdinfo --size "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
        echo "no NBD server at $1" >&2
        cat "$tmp"/*.log >&2
        exit 1
}

# ---- remote servers
head -c "$((size_mb << 20))" /dev/urandom >"$tmp/remote.img" # written, so reads hit data
p_kit=$(port)
nbdkit -f -i 127.0.0.1 -p "$p_kit" file "$tmp/remote.img" >"$tmp/nbdkit.log" 2>&1 &
pids+=($!)
pid_kit=$!
wait_nbd "nbd://127.0.0.1:$p_kit/"

iscsi=0
if [ $no_iscsi = 0 ] && [ "$(id -u)" = 0 ] && command -v tgtd >/dev/null && command -v qemu-nbd >/dev/null; then
        iscsi=1
        head -c "$((size_mb << 20))" /dev/urandom >"$tmp/lun.img"
        p_tgt=$(port)
        ctl=$((1000 + p_tgt % 30000))
        iqn=iqn.2026-11.org.orion:bench
        tgtd -f -C "$ctl" --iscsi "portal=127.0.0.1:$p_tgt" >"$tmp/tgtd.log" 2>&1 &
        pids+=($!)
        pid_tgt=$!
        for _ in $(seq 100); do
                tgtadm -C "$ctl" --lld iscsi --mode target --op new --tid 1 --targetname "$iqn" 2>/dev/null && break
                sleep 0.1
        done
        tgtadm -C "$ctl" --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 --backing-store "$tmp/lun.img"
        tgtadm -C "$ctl" --lld iscsi --mode target --op bind --tid 1 --initiator-address ALL
        p_qemu=$(port)
        qemu-nbd -t -e 8 -b 127.0.0.1 -p "$p_qemu" -x lun \
                --image-opts "driver=iscsi,transport=tcp,portal=127.0.0.1:$p_tgt,target=$iqn,lun=1" \
                >"$tmp/qemu-nbd.log" 2>&1 &
        pids+=($!)
        pid_qemu=$!
        wait_nbd "nbd://127.0.0.1:$p_qemu/lun"
fi

# ---- Orion with the remote leaves
p_orion=$(port)
mkdir -p "$tmp/state"
{
        # requests in flight per client connection (QD 32)
        printf '[daemon]\nstate-dir = %s\nnbd-listen = 127.0.0.1:%s\nnbd-threads = 32\n\n' "$tmp/state" "$p_orion"
        printf '[node remote]\ntype = nbd\nuri = nbd://127.0.0.1:%s/\nconnections = %s\n\n' "$p_kit" "$conns"
        printf '[export remote]\nnode = remote\nprotocols = nbd\n\n'
        if [ $iscsi = 1 ]; then
                printf '[node lun]\ntype = iscsi\nurl = iscsi://127.0.0.1:%s/%s/1\n\n' "$p_tgt" "$iqn"
                printf '[export lun]\nnode = lun\nprotocols = nbd\n\n'
        fi
} >"$tmp/oriond.conf"
"$oriond" --foreground --config "$tmp/oriond.conf" --control-socket "$tmp/ctl.sock" \
        --state-dir "$tmp/state" >"$tmp/oriond.log" 2>&1 &
pids+=($!)
pid_orion=$!
wait_nbd "nbd://127.0.0.1:$p_orion/remote"

# name rw bs iodepth
workloads=("4k-randread randread 4k 32" "4k-randwrite randwrite 4k 32" "1M-seqread read 1M 8" "1M-seqwrite write 1M 8")
# name uri server-pids (whose CPU time counts for the path)
targets=("direct nbd://127.0.0.1:$p_kit/ $pid_kit" "orion nbd://127.0.0.1:$p_orion/remote $pid_orion,$pid_kit")
[ $iscsi = 0 ] || targets+=("qemu-iscsi nbd://127.0.0.1:$p_qemu/lun $pid_qemu,$pid_tgt"
                            "orion-iscsi nbd://127.0.0.1:$p_orion/lun $pid_orion,$pid_tgt")
# CPU ticks (user + system, all threads) of a comma-separated list of pids
ticks() {
        local t=0 p
        for p in ${1//,/ }; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
        echo $t
}

echo "fio nbd engine, 1 job, nbd leaf connections=$conns, ${runtime}s per run, ${size_mb} MiB, $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)" >&2
for w in "${workloads[@]}"; do
        read -r wname rw bs qd <<<"$w"
        for t in "${targets[@]}"; do
                read -r tname uri spids <<<"$t"
                fio --name="$wname" --ioengine=nbd --uri="$uri" --rw="$rw" --bs="$bs" --iodepth="$qd" \
                    --numjobs=1 --size="${size_mb}M" --time_based --runtime="$runtime" --ramp_time=1 \
                    --group_reporting --output-format=json --output="$tmp/$wname.$tname.json" \
                    >/dev/null 2>&1 &
                fpid=$!
                sleep 1 # the ramp: fio counts I/O from here on
                t0=$(ticks "$spids")
                wait $fpid || { echo "fio failed: $wname on $tname" >&2; exit 1; }
                echo $(($(ticks "$spids") - t0)) >"$tmp/$wname.$tname.ticks"
                echo "  done $wname on $tname" >&2
        done
done

/usr/bin/python3 - "$tmp" "$iscsi" "${workloads[@]}" <<'PY'
import json, os, sys
tmp, iscsi, workloads = sys.argv[1], sys.argv[2] == "1", [w.split()[0] for w in sys.argv[3:]]

def result(w, t):
    j = json.load(open("%s/%s.%s.json" % (tmp, w, t)))["jobs"][0]
    side = j["read"] if j["read"]["io_bytes"] > 0 else j["write"]
    ticks = int(open("%s/%s.%s.ticks" % (tmp, w, t)).read())
    cpu_us = ticks * 1e6 / os.sysconf("SC_CLK_TCK") / max(side["total_ios"], 1)
    return side["iops"], side["bw_bytes"] / 1e6, cpu_us

def table(title, base, base_name, orion, servers):
    print(title)
    print("%-13s | %-22s | %-22s | %-9s | %s" % ("workload", base_name + " IOPS / MB/s", "orion IOPS / MB/s",
                                                 "overhead", "server CPU us/IO: " + servers))
    print("-" * 110)
    for w in workloads:
        b, o = result(w, base), result(w, orion)
        print("%-13s | %9.0f / %9.1f  | %9.0f / %9.1f  | %+7.1f%%  | %7.1f / %7.1f (x%.2f)" % (
            w, b[0], b[1], o[0], o[1], 100.0 * (1 - o[0] / b[0]), b[2], o[2], o[2] / max(b[2], 1e-9)))
    print()

table("nbd leaf: fio -> Orion NBD export -> nbd leaf -> nbdkit file, vs fio -> nbdkit file",
      "direct", "nbdkit", "orion", "nbdkit / oriond+nbdkit")
if iscsi:
    table("iscsi leaf: fio -> Orion NBD export -> iscsi leaf -> tgtd, vs fio -> qemu-nbd (iscsi driver) -> tgtd",
          "qemu-iscsi", "qemu-nbd", "orion-iscsi", "qemu-nbd+tgtd / oriond+tgtd")
PY
