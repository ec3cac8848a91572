#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# FUSE export benchmark: fio on Orion's FUSE image of a file-backed volume beside the same
# workloads on qemu-storage-daemon's FUSE export of the same image, in one run; prints IOPS,
# bandwidth and the Orion/qemu ratio (target >= 1). Needs root, /dev/fuse, fio,
# qemu-storage-daemon. Not run by CI.
#
#   bench/fuse.sh [-r SECONDS] [-s SIZE_MIB] [-e ENGINE] [-n ROUNDS]
#   (defaults: 10 s, 512 MiB, libaio, 3 rounds; the table shows the median of the rounds)
#   ORIOND=/path/to/oriond (default: build/src/daemon/oriond next to this script)
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

runtime=10 size_mib=512 engine=libaio rounds=3
while getopts "r:s:e:n:" o; do
        case $o in
        r) runtime=$OPTARG ;;
        s) size_mib=$OPTARG ;;
        e) engine=$OPTARG ;;
        n) rounds=$OPTARG ;;
        *) echo "usage: $0 [-r SECONDS] [-s SIZE_MIB] [-e libaio|io_uring] [-n ROUNDS]" >&2; exit 2 ;;
        esac
done
src=$(cd "$(dirname "$0")/.." && pwd)
ORIOND=${ORIOND:-$src/build/src/daemon/oriond}
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 77; }
[ -c /dev/fuse ] || { echo "needs /dev/fuse" >&2; exit 77; }
for c in fio qemu-storage-daemon "$ORIOND"; do
        command -v "$c" >/dev/null || { echo "needs $c" >&2; exit 77; }
done

tmp=$(mktemp -d /tmp/orion-bench-fuse.XXXXXX)
orion_pid= qsd_pid=
cleanup() {
        [ -n "$orion_pid" ] && kill "$orion_pid" 2>/dev/null && wait "$orion_pid" 2>/dev/null
        [ -n "$qsd_pid" ] && kill "$qsd_pid" 2>/dev/null && wait "$qsd_pid" 2>/dev/null
        umount -l "$tmp/orion" 2>/dev/null || true
        umount -l "$tmp/qsd.img" 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT
wait_for() { # SECONDS CMD...
        local end=$(($(date +%s) + $1))
        shift
        until "$@" >/dev/null 2>&1; do
                [ "$(date +%s)" -lt "$end" ] || return 1
                sleep 0.1
        done
}

img=$tmp/disk.img
echo "preparing a ${size_mib} MiB image of random data..." >&2
head -c $((size_mib << 20)) /dev/urandom >"$img"

# name rw bs iodepth
workloads=(
        "randread-4k-qd32 randread 4k 32"
        "randwrite-4k-qd32 randwrite 4k 32"
        "read-1m-qd4 read 1M 4"
        "write-1m-qd4 write 1M 4"
)
declare -A result
fio_one() { # LABEL FILE NAME RW BS QD ROUND
        fio --name="$3" --filename="$2" --ioengine="$engine" --direct=1 --rw="$4" --bs="$5" \
                --iodepth="$6" --numjobs=1 --time_based --runtime="$runtime" --ramp_time=1 \
                --size=$((size_mib << 20)) --randrepeat=0 --norandommap \
                --output-format=json --output="$tmp/$1-$3.json"
        result[$1,$3,$7]=$(/usr/bin/python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
side = j["read"] if j["read"]["io_bytes"] else j["write"]
print("%.0f %.1f" % (side["iops"], side["bw_bytes"] / 1048576))' "$tmp/$1-$3.json")
        echo "  round $7 $1 $3: ${result[$1,$3,$7]}" >&2
}

# ---- Orion: file leaf (page cache on the backing file, like qemu's default) + FUSE export
cat >"$tmp/oriond.conf" <<CONF
[daemon]
fuse-mountpoint = $tmp/orion
nbd-listen = unix:$tmp/nbd.sock

[node disk]
type = file
path = $img

[export vol]
node = disk
protocols = fuse
CONF
"$ORIOND" --foreground --config "$tmp/oriond.conf" --pidfile "$tmp/oriond.pid" \
        --control-socket "$tmp/ctl.sock" --state-dir "$tmp/state" >"$tmp/oriond.log" 2>&1 &
orion_pid=$!
wait_for 60 test -s "$tmp/oriond.pid" || { cat "$tmp/oriond.log" >&2; exit 1; }
wait_for 30 test -e "$tmp/orion/vol.img" || { cat "$tmp/oriond.log" >&2; exit 1; }

# ---- qemu-storage-daemon: file driver + FUSE export over a regular file, same image
touch "$tmp/qsd.img"
qemu-storage-daemon \
        --blockdev driver=file,node-name=f,filename="$img" \
        --export type=fuse,id=e,node-name=f,mountpoint="$tmp/qsd.img",writable=on \
        --pidfile "$tmp/qsd.pid" >"$tmp/qsd.log" 2>&1 &
qsd_pid=$!
wait_for 60 test -s "$tmp/qsd.pid" || { cat "$tmp/qsd.log" >&2; exit 1; }
wait_for 30 sh -c "[ \$(stat -c %s '$tmp/qsd.img') -eq $((size_mib << 20)) ]" || { cat "$tmp/qsd.log" >&2; exit 1; }

# Each workload runs on Orion and then on qemu, back to back, so that both see the same
# background load on a shared machine.
echo "$("$ORIOND" --version 2>/dev/null | head -1) vs $(qemu-storage-daemon --version | head -1)" >&2
for ((round = 1; round <= rounds; round++)); do
        for w in "${workloads[@]}"; do
                read -r name rw bs qd <<<"$w"
                fio_one orion "$tmp/orion/vol.img" "$name" "$rw" "$bs" "$qd" "$round"
                fio_one qsd "$tmp/qsd.img" "$name" "$rw" "$bs" "$qd" "$round"
        done
done
# median LABEL NAME: "IOPS MiB/s" of the round with the median IOPS
median() {
        local r
        for ((r = 1; r <= rounds; r++)); do echo "${result[$1,$2,$r]}"; done | sort -n | sed -n "$(((rounds + 1) / 2))p"
}

# ---- Table
printf "\nfio %s direct=1, %ss per workload, %s MiB image, median of %s rounds (file leaf vs qemu file driver)\n" \
        "$engine" "$runtime" "$size_mib" "$rounds"
printf "%-20s %12s %12s %12s %12s %8s\n" workload "orion IOPS" "orion MiB/s" "qemu IOPS" "qemu MiB/s" ratio
for w in "${workloads[@]}"; do
        read -r name _ <<<"$w"
        read -r oi ob <<<"$(median orion "$name")"
        read -r qi qb <<<"$(median qsd "$name")"
        ratio=$(/usr/bin/python3 -c "import sys; q=float(sys.argv[2]); print('%.2f' % (float(sys.argv[1]) / q if q else 0))" "$oi" "$qi")
        printf "%-20s %12s %12s %12s %12s %8s\n" "$name" "$oi" "$ob" "$qi" "$qb" "$ratio"
done
