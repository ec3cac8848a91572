#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# NBD server benchmark: fio (nbd engine) against Orion's file backend, `nbdkit file` and
# `qemu-nbd`, all serving the same file, in one run. Prints IOPS and MB/s per server and
# Orion's ratio to the best peer. Not a test: nothing is asserted.
# Usage: bench/nbd.sh [-r RUNTIME_S] [-s SIZE_MB] [-b BUILD_DIR]
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

runtime=10
size_mb=512
build=$(cd "$(dirname "$0")/.." && pwd)/build
while getopts "r:s:b:" o; do
        case $o in
        r) runtime=$OPTARG ;;
        s) size_mb=$OPTARG ;;
        b) build=$OPTARG ;;
        *) echo "usage: $0 [-r RUNTIME_S] [-s SIZE_MB] [-b BUILD_DIR]" >&2; exit 2 ;;
        esac
done
for c in fio nbdkit qemu-nbd nbdinfo /usr/bin/python3; do
        command -v "$c" >/dev/null || { echo "$c is needed" >&2; exit 1; }
done
oriond=$build/src/daemon/oriond
[ -x "$oriond" ] || { echo "build oriond first ($oriond)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/orion-bench.XXXXXX")
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
img=$tmp/disk.img
# Written, not sparse: reads must hit real data on every server.
head -c "$((size_mb << 20))" /dev/urandom >"$img"

p_orion=$(port)
cat >"$tmp/oriond.conf" <<CONF
[daemon]
state-dir = $tmp/state
nbd-listen = 127.0.0.1:$p_orion

[node disk]
type = file
path = $img

[export disk]
node = disk
protocols = nbd
CONF
mkdir -p "$tmp/state"
"$oriond" --foreground --config "$tmp/oriond.conf" --control-socket "$tmp/ctl.sock" \
        --state-dir "$tmp/state" >"$tmp/oriond.log" 2>&1 &
pids+=($!)

p_nbdkit=$(port)
nbdkit -f -i 127.0.0.1 -p "$p_nbdkit" -e disk file "$img" >"$tmp/nbdkit.log" 2>&1 &
pids+=($!)

p_qemu=$(port)
qemu-nbd -t -e 8 -f raw -b 127.0.0.1 -p "$p_qemu" -x disk "$img" >"$tmp/qemu-nbd.log" 2>&1 &
pids+=($!)

for p in "$p_orion" "$p_nbdkit" "$p_qemu"; do
        for _ in $(seq 600); do nbdinfo --size "nbd://127.0.0.1:$p/disk" >/dev/null 2>&1 && break; sleep 0.1; done
        nbdinfo --size "nbd://127.0.0.1:$p/disk" >/dev/null || { echo "server on port $p did not start" >&2; cat "$tmp"/*.log >&2; exit 1; }
done

# name rw bs iodepth
workloads=("4k-randread randread 4k 32" "4k-randwrite randwrite 4k 32" "1M-seqread read 1M 8" "1M-seqwrite write 1M 8")
servers=("orion $p_orion" "nbdkit $p_nbdkit" "qemu-nbd $p_qemu")

echo "fio nbd engine, 1 job per run, ${runtime}s per run, ${size_mb} MiB file, $(nproc) CPUs" >&2
for w in "${workloads[@]}"; do
        read -r wname rw bs qd <<<"$w"
        for s in "${servers[@]}"; do
                read -r sname p <<<"$s"
                fio --name="$wname" --ioengine=nbd --uri="nbd://127.0.0.1:$p/disk" --rw="$rw" --bs="$bs" \
                    --iodepth="$qd" --numjobs=1 --size="${size_mb}M" --time_based --runtime="$runtime" \
                    --ramp_time=1 --group_reporting --output-format=json --output="$tmp/$wname.$sname.json" \
                    >/dev/null 2>&1 || { echo "fio failed: $wname on $sname" >&2; exit 1; }
                echo "  done $wname on $sname" >&2
        done
done

/usr/bin/python3 - "$tmp" "${workloads[@]}" <<'PY'
import json, sys
tmp, workloads = sys.argv[1], [w.split()[0] for w in sys.argv[2:]]
servers = ["orion", "nbdkit", "qemu-nbd"]
print("%-13s | %-21s | %-21s | %-21s | %s" % ("workload", "orion IOPS / MB/s", "nbdkit IOPS / MB/s",
                                              "qemu-nbd IOPS / MB/s", "orion / best peer"))
print("-" * 104)
for w in workloads:
    res = {}
    for s in servers:
        j = json.load(open("%s/%s.%s.json" % (tmp, w, s)))["jobs"][0]
        side = j["read"] if j["read"]["io_bytes"] > 0 else j["write"]
        res[s] = (side["iops"], side["bw_bytes"] / 1e6)
    best = max(res["nbdkit"][0], res["qemu-nbd"][0])
    cells = ["%9.0f / %9.1f" % res[s] for s in servers]
    print("%-13s | %-21s | %-21s | %-21s | %.2f" % (w, cells[0], cells[1], cells[2], res["orion"][0] / best))
PY
