#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# iSCSI target benchmark: the same file served by Orion's target and by tgtd, in one run, driven
# by the same clients: bench/iscsi-load.c (libiscsi straight to the target, built here), fio (nbd
# engine) through a qemu-nbd bridge to iscsi://, both for 4k random read and write at QD 32 and
# 1M sequential read and write at QD 8, qemu-img bench (4k at QD 32, 1M at QD 8, with the
# targets' CPU time per request), and iscsi-perf (4k random reads, 32 in flight). Prints IOPS
# and MB/s per target and Orion's ratio to tgtd.
# Not a test: nothing is asserted. Needs root for tgtd.
# -j N runs N iscsi-load clients (N sessions) at once and sums them, for when one client
# process is the bottleneck.
# -c "load fio qemu-img perf" picks the clients (default: all four).
# Usage: bench/iscsi.sh [-r RUNTIME_S] [-s SIZE_MB] [-b BUILD_DIR] [-j CLIENTS] [-c CLIENT-LIST]
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

runtime=10
size_mb=512
build=$(cd "$(dirname "$0")/.." && pwd)/build
jobs=1
clients="load fio qemu-img perf"
while getopts "r:s:b:j:c:" o; do
        case $o in
        r) runtime=$OPTARG ;;
        s) size_mb=$OPTARG ;;
        b) build=$OPTARG ;;
        j) jobs=$OPTARG ;;
        c) clients=$OPTARG ;;
        *) echo "usage: $0 [-r RUNTIME_S] [-s SIZE_MB] [-b BUILD_DIR] [-j CLIENTS] [-c CLIENT-LIST]" >&2; exit 2 ;;
        esac
done
want() { [[ " $clients " == *" $1 "* ]]; }
for c in cc fio qemu-nbd qemu-img nbdinfo iscsi-perf iscsi-inq tgtd tgtadm /usr/bin/python3; do
        command -v "$c" >/dev/null || { echo "$c is needed" >&2; exit 1; }
done
oriond=$build/src/daemon/oriond
[ -x "$oriond" ] || { echo "build oriond first ($oriond)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/orion-bench.XXXXXX")
pids=()
tgtd_pid=
cleanup() {
        local i
        # newest first (bridges before targets); qemu-nbd may hang reconnecting: KILL it
        for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -KILL "${pids[$i]}" 2>/dev/null || true; done
        # tgtd ignores SIGTERM while it has targets
        [ -z "$tgtd_pid" ] || kill -KILL "$tgtd_pid" 2>/dev/null || true
        wait 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT

cc -O2 -o "$tmp/iscsi-load" "$(dirname "$0")/iscsi-load.c" -liscsi || { echo "cannot build iscsi-load (libiscsi-dev)" >&2; exit 1; }
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
img=$tmp/disk.img
# Written, not sparse: reads must hit real data on both targets.
head -c "$((size_mb << 20))" /dev/urandom >"$img"

p_orion=$(port)
cat >"$tmp/oriond.conf" <<CONF
[daemon]
state-dir = $tmp/state
iscsi-listen = 127.0.0.1:$p_orion

[node disk]
type = file
path = $img

[export disk]
node = disk
protocols = iscsi
CONF
mkdir -p "$tmp/state"
"$oriond" --foreground --config "$tmp/oriond.conf" --control-socket "$tmp/ctl.sock" \
        --state-dir "$tmp/state" >"$tmp/oriond.log" 2>&1 &
pids+=($!)
url_orion=iscsi://127.0.0.1:$p_orion/iqn.2026-11.org.orion:disk/0

# tgtd on its own portal and management port, LUN 1 = the same file (LUN 0 is tgt's controller).
p_tgt=$(port)
ctl=$((20000 + RANDOM % 10000)) # tgtadm -C takes at most 32767
tgtd -f -C "$ctl" --iscsi portal=127.0.0.1:$p_tgt >"$tmp/tgtd.log" 2>&1 &
tgtd_pid=$!
tgt_iqn=iqn.2026-11.org.orion:bench-tgt
for _ in $(seq 100); do tgtadm -C "$ctl" --lld iscsi --op show --mode target >/dev/null 2>&1 && break; sleep 0.1; done
tgtadm -C "$ctl" --lld iscsi --op new --mode target --tid 1 -T "$tgt_iqn"
tgtadm -C "$ctl" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$img"
tgtadm -C "$ctl" --lld iscsi --op bind --mode target --tid 1 -I ALL
url_tgt=iscsi://127.0.0.1:$p_tgt/$tgt_iqn/1

for u in "$url_orion" "$url_tgt"; do
        for _ in $(seq 300); do iscsi-inq "$u" >/dev/null 2>&1 && break; sleep 0.1; done
        iscsi-inq "$u" >/dev/null || { echo "target $u did not start" >&2; cat "$tmp"/*.log >&2; exit 1; }
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Before each measured run: dirty pages written back, and both targets idle (a target may
# still be finishing what the previous run's clients left queued), so that no run pays for
# the one before it.
settle() {
        local a b i
        sync
        for i in $(seq 50); do
                a="$(cpu_ticks "${pids[0]}") $(cpu_ticks "$tgtd_pid")"
                sleep 0.2
                b="$(cpu_ticks "${pids[0]}") $(cpu_ticks "$tgtd_pid")"
                [ "$a" = "$b" ] && break
        done
}

# The same bridge for both: qemu-nbd (libiscsi inside) re-exports each LUN over NBD for fio.
bridge() { # URL NAME: sets $bport
        bport=$(port)
        qemu-nbd -t -e 8 -f raw -b 127.0.0.1 -p "$bport" -x disk "$1" >"$tmp/qemu-nbd.$2.log" 2>&1 &
        pids+=($!)
        for _ in $(seq 300); do nbdinfo --size "nbd://127.0.0.1:$bport/disk" >/dev/null 2>&1 && break; sleep 0.1; done
}
bridge "$url_orion" orion
b_orion=$bport
bridge "$url_tgt" tgtd
b_tgt=$bport

# name rw bs iodepth
workloads=("4k-randread randread 4k 32" "4k-randwrite randwrite 4k 32" "1M-seqread read 1M 8" "1M-seqwrite write 1M 8")
targets=("orion $b_orion" "tgtd $b_tgt")

echo "${runtime}s per run, ${size_mb} MiB file, $jobs iscsi-load client(s), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)" >&2
for w in "${workloads[@]}"; do
        read -r wname rw bs qd <<<"$w"
        case $bs in *k) bytes=$((${bs%k} << 10)) ;; *M) bytes=$((${bs%M} << 20)) ;; *) bytes=$bs ;; esac
        for t in "orion $url_orion" "tgtd $url_tgt"; do
                want load || continue
                read -r tname u <<<"$t"
                settle
                lp=()
                for j in $(seq "$jobs"); do
                        "$tmp/iscsi-load" "$u" "$rw" "$bytes" "$qd" "$runtime" >"$tmp/load.$wname.$tname.$j" &
                        lp+=($!)
                done
                for p in "${lp[@]}"; do wait "$p" || { echo "iscsi-load failed: $wname on $tname" >&2; exit 1; }; done
                cat "$tmp/load.$wname.$tname".* | awk '{i += $1; m += $3} END {print i, "IOPS", m, "MB/s"}' \
                        >"$tmp/load.$wname.$tname"
        done
        for t in "${targets[@]}"; do
                want fio || continue
                read -r tname p <<<"$t"
                settle
                fio --name="$wname" --ioengine=nbd --uri="nbd://127.0.0.1:$p/disk" --rw="$rw" --bs="$bs" \
                    --iodepth="$qd" --numjobs=1 --size="${size_mb}M" --time_based --runtime="$runtime" \
                    --ramp_time=1 --group_reporting --output-format=json --output="$tmp/$wname.$tname.json" \
                    >/dev/null 2>&1 || { echo "fio failed: $wname on $tname" >&2; exit 1; }
                echo "  done $wname on $tname" >&2
        done
done
# qemu-img bench: libiscsi inside qemu's block layer, no bridge, the cheapest client per I/O.
# It has no random mode: 4k requests go to offsets strided by 1 MiB + 4 KiB (wrapping), 1M
# requests are sequential. Each run also records the target's CPU time (all its threads).
qworkloads=("4k-read 4096 32 1052672 10000" "4k-write 4096 32 1052672 10000 -w"
        "1M-read 1048576 8 1048576 600" "1M-write 1048576 8 1048576 400 -w")
for w in "${qworkloads[@]}"; do
        want qemu-img || continue
        read -r wname bytes qd step rate wflag <<<"$w"
        for t in "orion $url_orion ${pids[0]}" "tgtd $url_tgt $tgtd_pid"; do
                read -r tname u tpid <<<"$t"
                count=$((rate * runtime))
                settle
                c0=$(cpu_ticks "$tpid")
                qemu-img bench -f raw -t none -c "$count" -d "$qd" -s "$bytes" -S "$step" $wflag "$u" \
                        >"$tmp/qb.$wname.$tname.log" 2>&1 || { echo "qemu-img bench failed: $wname on $tname" >&2; exit 1; }
                c1=$(cpu_ticks "$tpid")
                secs=$(sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p' "$tmp/qb.$wname.$tname.log")
                echo "$count $secs $((c1 - c0)) $(getconf CLK_TCK) $bytes" >"$tmp/qb.$wname.$tname"
                echo "  done qemu-img $wname on $tname" >&2
        done
done
# iscsi-perf: libiscsi straight to the target, 8 x 512-byte blocks per request, random, 32 in flight.
for t in "orion $url_orion" "tgtd $url_tgt"; do
        want perf || continue
        read -r tname u <<<"$t"
        settle
        timeout $((runtime + 15)) iscsi-perf -m 32 -b 8 -r -t "$runtime" "$u" >"$tmp/perf.$tname.log" 2>&1 || true
        echo "  done iscsi-perf on $tname" >&2
done

/usr/bin/python3 - "$tmp" "$clients" "${workloads[@]}" <<'PY'
import json, re, sys
tmp, clients, workloads = sys.argv[1], sys.argv[2].split(), [w.split()[0] for w in sys.argv[3:]]
qworkloads = ["4k-read", "4k-write", "1M-read", "1M-write"]
print("%-22s | %-21s | %-21s | %s" % ("workload", "orion IOPS / MB/s", "tgtd IOPS / MB/s", "orion / tgtd"))
print("-" * 84)
for w in workloads if "load" in clients else []:
    res = {}
    for t in ("orion", "tgtd"):
        iops, _, mbs, _ = open("%s/load.%s.%s" % (tmp, w, t)).read().split()
        res[t] = (float(iops), float(mbs))
    cells = ["%9.0f / %9.1f" % res[t] for t in ("orion", "tgtd")]
    print("%-22s | %-21s | %-21s | %.2f" % (w + " direct", cells[0], cells[1], res["orion"][0] / max(res["tgtd"][0], 1)))
for w in workloads if "fio" in clients else []:
    res = {}
    for t in ("orion", "tgtd"):
        j = json.load(open("%s/%s.%s.json" % (tmp, w, t)))["jobs"][0]
        side = j["read"] if j["read"]["io_bytes"] > 0 else j["write"]
        res[t] = (side["iops"], side["bw_bytes"] / 1e6)
    cells = ["%9.0f / %9.1f" % res[t] for t in ("orion", "tgtd")]
    print("%-22s | %-21s | %-21s | %.2f" % (w + " qemu-nbd", cells[0], cells[1], res["orion"][0] / max(res["tgtd"][0], 1)))
res = {"orion": 0.0, "tgtd": 0.0}
for t in ("orion", "tgtd") if "perf" in clients else []:
    txt = open("%s/perf.%s.log" % (tmp, t)).read()
    m = re.findall(r"([0-9.]+) IOPS", txt) or re.findall(r"iops[^0-9]*([0-9.]+)", txt, re.I)
    res[t] = float(m[-1]) if m else 0.0
if "perf" in clients:
  print("%-22s | %9.0f / %9.1f | %9.0f / %9.1f | %.2f" % ("4k-randread iscsi-perf", res["orion"], res["orion"] * 4096 / 1e6,
      res["tgtd"], res["tgtd"] * 4096 / 1e6, res["orion"] / max(res["tgtd"], 1)))
cpu = {}
if "qemu-img" not in clients:
    qworkloads = []
for w in qworkloads:
    res = {}
    for t in ("orion", "tgtd"):
        count, secs, ticks, hz, size = open("%s/qb.%s.%s" % (tmp, w, t)).read().split()
        ops = float(count) / max(float(secs), 1e-9)
        res[t] = (ops, ops * int(size) / 1e6)
        cpu[(w, t)] = int(ticks) * 1e6 / int(hz) / float(count)
    cells = ["%9.0f / %9.1f" % res[t] for t in ("orion", "tgtd")]
    print("%-22s | %-21s | %-21s | %.2f" % (w + " qemu-img", cells[0], cells[1], res["orion"][0] / max(res["tgtd"][0], 1)))
if qworkloads:
  print()
  print("target CPU time per request under qemu-img bench (all threads; lower is better):")
for w in qworkloads:
    print("  %-10s orion %7.1f us   tgtd %7.1f us   tgtd / orion %.2f" % (w, cpu[(w, "orion")], cpu[(w, "tgtd")],
          cpu[(w, "tgtd")] / max(cpu[(w, "orion")], 1e-9)))
PY
