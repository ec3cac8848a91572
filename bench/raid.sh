#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# RAID benchmark: raid0, raid5 and raid6 over memory members beside one memory member alone,
# all exported by one oriond, measured with fio's nbd engine in one run: 1M sequential write,
# 1M sequential read, 4k random read. Then the in-process parity speed (bench/raid-parity.c,
# the layer's own parity code) against a plain C loop. Not a test: nothing is asserted.
# Each array has MEMBERS data members (raid5 one more, raid6 two more), so that with the 64K
# chunk a 1M request covers whole rows (4 x 64K) and is written as full stripes.
# Usage: bench/raid.sh [-r RUNTIME_S] [-m MEMBER_MB] [-n MEMBERS] [-b BUILD_DIR]
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

runtime=5
member_mb=64
members=4
src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build
while getopts "r:m:n:b:" o; do
        case $o in
        r) runtime=$OPTARG ;;
        m) member_mb=$OPTARG ;;
        n) members=$OPTARG ;;
        b) build=$OPTARG ;;
        *) echo "usage: $0 [-r RUNTIME_S] [-m MEMBER_MB] [-n MEMBERS] [-b BUILD_DIR]" >&2; exit 2 ;;
        esac
done
for c in fio nbdinfo cc /usr/bin/python3; do
        command -v "$c" >/dev/null || { echo "$c is needed" >&2; exit 1; }
done
oriond=$build/src/daemon/oriond
orionctl=$build/src/cli/orionctl
[ -x "$oriond" ] && [ -e "$build/plugins/orion-raid.so" ] || { echo "build oriond and the raid plugin first" >&2; exit 1; }
export ORION_PLUGIN_DIR=$build/plugins

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/orion-bench.XXXXXX")
pid=
cleanup() {
        [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
        wait 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

conf=$tmp/oriond.conf
mkdir -p "$tmp/state"
printf '[daemon]\nstate-dir = %s\nnbd-listen = 127.0.0.1:%s\n\n' "$tmp/state" "$port" >"$conf"
# one member alone (with the same 1M metadata offset as a raid member) and three arrays
printf '[node single]\ntype = memory\nsize = %dM\n\n' "$member_mb" >>"$conf"
nmem() { case $1 in r0) echo $members ;; r5) echo $((members + 1)) ;; r6) echo $((members + 2)) ;; esac; }
for a in r0 r5 r6; do
        for ((i = 0; i < $(nmem $a); i++)); do printf '[node %s-%d]\ntype = memory\nsize = %dM\n\n' $a $i "$member_mb" >>"$conf"; done
done
printf '[export single]\nnode = single\nprotocols = nbd\n\n' >>"$conf"
"$oriond" --foreground --config "$conf" --control-socket "$tmp/ctl.sock" --pidfile "$tmp/pid" \
        --state-dir "$tmp/state" >"$tmp/oriond.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/pid" ] && break; sleep 0.1; done
ctl() { "$orionctl" --socket "$tmp/ctl.sock" "$@" >/dev/null; }
for a in r0:0 r5:5 r6:6; do
        name=${a%:*} level=${a#*:}
        kids=$(for ((i = 0; i < $(nmem $name); i++)); do printf '%s-%d ' $name $i; done)
        ctl format raid level=$level children="$kids"
        ctl node-add $name raid level=$level children="$kids"
        ctl export-add $name $name protocols=nbd
done

# fio JOB RW BS DEPTH EXPORT -> MB/s and IOPS
run_fio() {
        local rw=$1 bs=$2 depth=$3 exp=$4 size
        size=$(nbdinfo --size "nbd://127.0.0.1:$port/$exp")
        fio --name=b --ioengine=nbd --uri="nbd://127.0.0.1:$port/$exp" --rw=$rw --bs=$bs --iodepth=$depth \
                --size=$size --time_based --runtime=$runtime --numjobs=1 --output-format=json \
                --output="$tmp/fio.json" >/dev/null 2>&1
        /usr/bin/python3 - "$tmp/fio.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
d = j["write"] if j["write"]["io_bytes"] else j["read"]
print("%.0f %.0f" % (d["bw_bytes"] / 1e6, d["iops"]))
PY
}

printf '%d data members of %d MiB each (memory; raid5 +1, raid6 +2), chunk 64K, fio nbd engine, %ds per run\n\n' \
        "$members" "$member_mb" "$runtime"
printf '%-8s %14s %14s %16s\n' node "1M seq write" "1M seq read" "4k rand read"
declare -A res
for exp in single r0 r5 r6; do
        # fill once so reads hit written data (and raid5/6 writes are measured on a used array)
        w=$(run_fio write 1M 8 $exp)
        r=$(run_fio read 1M 8 $exp)
        x=$(run_fio randread 4k 32 $exp)
        res[$exp.w]=${w% *}
        res[$exp.r]=${r% *}
        res[$exp.x]=${x#* }
        printf '%-8s %9s MB/s %9s MB/s %11s IOPS\n' $exp "${w% *}" "${r% *}" "${x#* }"
done
echo
ratio() { /usr/bin/python3 -c "print('%.2f' % ($1 / $2))"; }
printf 'vs single member:   write   read   4k read\n'
for exp in r0 r5 r6; do
        printf '  %-6s          %6sx %6sx %6sx\n' $exp "$(ratio ${res[$exp.w]} ${res[single.w]})" \
                "$(ratio ${res[$exp.r]} ${res[single.r]})" "$(ratio ${res[$exp.x]} ${res[single.x]})"
done
"$orionctl" --socket "$tmp/ctl.sock" stats r5 | grep -E "full-stripe|rmw|rcw" | sed 's/^/  /' || true
echo

cc -O2 -D_GNU_SOURCE -I"$src/plugins/raid" -I"$src/src" -I"$src/include" "$src/bench/raid-parity.c" \
        "$src/plugins/raid/parity.c" -o "$tmp/raid-parity" -lisal -lpthread
"$tmp/raid-parity" 512
