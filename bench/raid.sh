#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# RAID benchmark through the NBD export (fio's nbd engine), every array beside one member alone
# in the same oriond, runs interleaved round by round, medians and ratios printed in one run.
# Not a test: nothing is asserted.
#  memory  : raid0, raid5, raid6 over memory members vs one memory member: 1M sequential write
#            and read, 4k random read, with oriond's CPU time per GB moved (the figure that
#            matters on a shared 2-core machine, where memory members are bound by the export
#            and memcpy, not by the members). Then the in-process parity speed.
#  latency : members that behave like disks (delay layer over memory: a latency per request
#            and a transfer rate that requests share one after another) vs one such member:
#            raid0 over 2, 3, 4 members (reads and writes should scale with the count), raid5
#            and raid6 with MEMBERS data members (full-stripe writes).
# Each array has MEMBERS data members (raid5 one more, raid6 two more), so that with the 64K
# chunk a 1M request covers whole rows (4 x 64K) and is written as full stripes.
# Usage: bench/raid.sh [-v memory|latency|both] [-r RUNTIME_S] [-R ROUNDS] [-m MEMBER_MB]
#                      [-n MEMBERS] [-N "2 3 4"] [-L LATENCY] [-B RATE] [-b BUILD_DIR]
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

variant=both
runtime=5
rounds=3
member_mb=64
members=4
counts="2 3 4"
latency=100us
rate=100M
src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build
usage="usage: $0 [-v memory|latency|both] [-r RUNTIME_S] [-R ROUNDS] [-m MEMBER_MB] [-n MEMBERS] [-N COUNTS] [-L LATENCY] [-B RATE] [-b BUILD_DIR]"
while getopts "v:r:R:m:n:N:L:B:b:" o; do
        case $o in
        v) variant=$OPTARG ;;
        r) runtime=$OPTARG ;;
        R) rounds=$OPTARG ;;
        m) member_mb=$OPTARG ;;
        n) members=$OPTARG ;;
        N) counts=$OPTARG ;;
        L) latency=$OPTARG ;;
        B) rate=$OPTARG ;;
        b) build=$OPTARG ;;
        *) echo "$usage" >&2; exit 2 ;;
        esac
done
case $variant in memory | latency | both) ;; *) echo "$usage" >&2; exit 2 ;; esac
for c in fio nbdinfo cc /usr/bin/python3; do
        command -v "$c" >/dev/null || { echo "$c is needed" >&2; exit 1; }
done
oriond=$build/src/daemon/oriond
orionctl=$build/src/cli/orionctl
[ -x "$oriond" ] && [ -e "$build/plugins/orion-raid.so" ] && [ -e "$build/plugins/orion-delay.so" ] ||
        { echo "build oriond and the raid and delay plugins first" >&2; exit 1; }
export ORION_PLUGIN_DIR=$build/plugins

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/orion-bench.XXXXXX")
pid=
stop_daemon() {
        [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
        pid=
}
cleanup() {
        stop_daemon
        rm -rf "$tmp"
}
trap cleanup EXIT
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# start_daemon CONF_BODY_FILE: oriond with one export "single" of node "single"
start_daemon() {
        local conf=$tmp/oriond.conf
        rm -rf "$tmp/state" "$tmp/pid" "$tmp/ctl.sock"
        mkdir -p "$tmp/state"
        printf '[daemon]\nstate-dir = %s\nnbd-listen = 127.0.0.1:%s\n\n' "$tmp/state" "$port" >"$conf"
        cat "$1" >>"$conf"
        printf '[export single]\nnode = single\nprotocols = nbd\n\n' >>"$conf"
        "$oriond" --foreground --config "$conf" --control-socket "$tmp/ctl.sock" --pidfile "$tmp/pid" \
                --state-dir "$tmp/state" >"$tmp/oriond.log" 2>&1 &
        pid=$!
        for _ in $(seq 300); do [ -s "$tmp/pid" ] && return 0; sleep 0.1; done
        echo "oriond did not start:" >&2
        cat "$tmp/oriond.log" >&2
        exit 1
}
ctl() { "$orionctl" --socket "$tmp/ctl.sock" "$@" >/dev/null; }
# array NAME LEVEL MEMBER_PREFIX COUNT: format, add and export a raid over PREFIX-0..COUNT-1
array() {
        local kids
        kids=$(for ((i = 0; i < $4; i++)); do printf '%s-%d ' "$3" $i; done)
        ctl format raid level="$2" children="$kids"
        ctl node-add "$1" raid level="$2" children="$kids"
        ctl export-add "$1" "$1" protocols=nbd
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

# run_fio RW BS DEPTH EXPORT -> "MB/s IOPS cpu-ms-per-GB" (oriond's CPU time per GB moved)
run_fio() {
        local rw=$1 bs=$2 depth=$3 exp=$4 size c0 c1
        size=$(nbdinfo --size "nbd://127.0.0.1:$port/$exp")
        c0=$(cpu_ticks)
        fio --name=b --ioengine=nbd --uri="nbd://127.0.0.1:$port/$exp" --rw="$rw" --bs="$bs" --iodepth="$depth" \
                --size="$size" --time_based --runtime="$runtime" --numjobs=1 --output-format=json \
                --output="$tmp/fio.json" >/dev/null 2>&1
        c1=$(cpu_ticks)
        /usr/bin/python3 - "$tmp/fio.json" $((c1 - c0)) "$(getconf CLK_TCK)" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
d = j["write"] if j["write"]["io_bytes"] else j["read"]
cpu_ms = int(sys.argv[2]) * 1000.0 / int(sys.argv[3])
print("%.0f %.0f %.0f" % (d["bw_bytes"] / 1e6, d["iops"], cpu_ms / max(d["io_bytes"] / 1e9, 1e-9)))
PY
}

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ratio() { /usr/bin/python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print('%.2f' % (a / b) if b else '-')" "$1" "$2"; }

# measure "TEST..." "EXPORT...": every TEST (rw:bs:depth:field) over every EXPORT, round by
# round; the median of each lands in res[EXPORT.TEST] (field: 1 MB/s, 2 IOPS) and
# cpu[EXPORT.TEST]. Fills every export once first so that reads hit written data.
declare -A res cpu
measure() {
        local tests=$1 exps=$2 t e out
        declare -A all allc
        for e in $exps; do
                fio --name=fill --ioengine=nbd --uri="nbd://127.0.0.1:$port/$e" --rw=write --bs=1M --iodepth=8 \
                        --size="$(nbdinfo --size "nbd://127.0.0.1:$port/$e")" >/dev/null 2>&1
        done
        for ((round = 1; round <= rounds; round++)); do
                printf '  round %d/%d, load %s\n' $round "$rounds" "$(cut -d' ' -f1-3 /proc/loadavg)"
                for t in $tests; do
                        IFS=: read -r rw bs depth field <<<"$t"
                        for e in $exps; do
                                out=$(run_fio "$rw" "$bs" "$depth" "$e")
                                all[$e.$t]="${all[$e.$t]:-} $(echo "$out" | cut -d' ' -f"$field")"
                                allc[$e.$t]="${allc[$e.$t]:-} $(echo "$out" | cut -d' ' -f3)"
                        done
                done
        done
        for t in $tests; do
                for e in $exps; do
                        res[$e.$t]=$(echo "${all[$e.$t]}" | median)
                        cpu[$e.$t]=$(echo "${allc[$e.$t]}" | median)
                done
        done
}

memory_variant() {
        local body=$tmp/body tests="write:1M:8:1 read:1M:8:1 randread:4k:32:2" a exps="single r0 r5 r6"
        nmem() { case $1 in r0) echo "$members" ;; r5) echo $((members + 1)) ;; r6) echo $((members + 2)) ;; esac; }
        printf '[node single]\ntype = memory\nsize = %dM\n\n' "$member_mb" >"$body"
        for a in r0 r5 r6; do
                for ((i = 0; i < $(nmem $a); i++)); do
                        printf '[node %s-%d]\ntype = memory\nsize = %dM\n\n' $a $i "$member_mb" >>"$body"
                done
        done
        start_daemon "$body"
        array r0 0 r0 "$(nmem r0)"
        array r5 5 r5 "$(nmem r5)"
        array r6 6 r6 "$(nmem r6)"
        printf '== memory members: %d data members of %d MiB (raid5 +1, raid6 +2), chunk 64K, %ds per run, median of %d rounds\n' \
                "$members" "$member_mb" "$runtime" "$rounds"
        measure "$tests" "$exps"
        printf '%-8s %16s %16s %18s\n' node "1M seq write" "1M seq read" "4k rand read"
        for e in $exps; do
                printf '%-8s %9s MB/s %11s MB/s %12s IOPS\n' $e "${res[$e.write:1M:8:1]}" "${res[$e.read:1M:8:1]}" \
                        "${res[$e.randread:4k:32:2]}"
        done
        printf 'oriond CPU ms per GB moved:\n'
        for e in $exps; do
                printf '%-8s %14s %16s %18s\n' $e "${cpu[$e.write:1M:8:1]}" "${cpu[$e.read:1M:8:1]}" "${cpu[$e.randread:4k:32:2]}"
        done
        printf 'vs single member (throughput ratio; CPU per GB ratio, lower is cheaper):\n'
        printf '          write        read         4k read\n'
        for e in r0 r5 r6; do
                printf '  %-6s' $e
                for t in $tests; do
                        printf '  %5sx (%4s)' "$(ratio "${res[$e.$t]}" "${res[single.$t]}")" \
                                "$(ratio "${cpu[$e.$t]}" "${cpu[single.$t]}")"
                done
                echo
        done
        "$orionctl" --socket "$tmp/ctl.sock" stats r5 | grep -E "full-stripe|rmw|rcw" | sed 's/^/  /' || true
        stop_daemon
        echo
        cc -O2 -D_GNU_SOURCE -I"$src/plugins/raid" -I"$src/src" -I"$src/include" "$src/bench/raid-parity.c" \
                "$src/plugins/raid/parity.c" -o "$tmp/raid-parity" -lisal -lpthread
        "$tmp/raid-parity" 512
        echo
}

latency_variant() {
        local body=$tmp/body tests="write:1M:8:1 read:1M:8:1" exps="single" n e
        # slow NAME: a delay node over its own memory node
        slow() {
                printf '[node %s-mem]\ntype = memory\nsize = %dM\n\n' "$1" "$member_mb"
                printf '[node %s]\ntype = delay\nchild = %s-mem\nread-delay = %s\nwrite-delay = %s\nrate = %s\n\n' \
                        "$1" "$1" "$latency" "$latency" "$rate"
        }
        slow single >"$body"
        for n in $counts; do
                for ((i = 0; i < n; i++)); do slow "x$n-$i" >>"$body"; done
        done
        for ((i = 0; i < members + 1; i++)); do slow "p5-$i" >>"$body"; done
        for ((i = 0; i < members + 2; i++)); do slow "p6-$i" >>"$body"; done
        start_daemon "$body"
        for n in $counts; do
                array "r0x$n" 0 "x$n" "$n"
                exps="$exps r0x$n"
        done
        array r5 5 p5 $((members + 1))
        array r6 6 p6 $((members + 2))
        exps="$exps r5 r6"
        printf '== latency-bound members: delay over memory, %s per request, %s/s shared per member, %d MiB each;\n' \
                "$latency" "$rate" "$member_mb"
        printf '   raid0 over %s members, raid5 %d+1, raid6 %d+2; chunk 64K, %ds per run, median of %d rounds\n' \
                "$counts" "$members" "$members" "$runtime" "$rounds"
        measure "$tests" "$exps"
        printf '%-8s %16s %16s %12s %8s\n' node "1M seq write" "1M seq read" "write ratio" "read ratio"
        for e in $exps; do
                printf '%-8s %11s MB/s %11s MB/s %11sx %7sx\n' $e "${res[$e.write:1M:8:1]}" "${res[$e.read:1M:8:1]}" \
                        "$(ratio "${res[$e.write:1M:8:1]}" "${res[single.write:1M:8:1]}")" \
                        "$(ratio "${res[$e.read:1M:8:1]}" "${res[single.read:1M:8:1]}")"
        done
        "$orionctl" --socket "$tmp/ctl.sock" stats r6 | grep -E "full-stripe|rmw|rcw" | sed 's/^/  /' || true
        stop_daemon
        echo
}

echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
case $variant in memory | both) memory_variant ;; esac
case $variant in latency | both) latency_variant ;; esac
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
