#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Encrypt layer benchmark, in one run: `openssl speed -evp aes-256-xts` on one core (its
# largest block, the target's reference, and 4096- and 512-byte blocks, one IV each like a
# sector); the layer in-process over a memory node (1 MiB sequential writes and reads, pinned
# to one core, 4096- and 512-byte sectors; then 4096 on every CPU, where a lone large
# request is split across them); and 1 MiB sequential fio writes and reads through the NBD
# export of a memory node with and without the encrypt layer. Prints MB per CPU-second and
# the ratio per core to openssl: openssl speed, the in-process harness and oriond (through
# NBD) are all divided by their own CPU time, so neighbours on a shared machine and
# parallelism do not count; wall-clock MB/s is printed beside where it differs.
# Not a test: nothing is asserted.
# Usage: bench/encrypt.sh [-r RUNTIME_S] [-s SIZE_MB] [-b BUILD_DIR]
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

runtime=5
size_mb=256
build=$(cd "$(dirname "$0")/.." && pwd)/build
while getopts "r:s:b:" o; do
        case $o in
        r) runtime=$OPTARG ;;
        s) size_mb=$OPTARG ;;
        b) build=$OPTARG ;;
        *) echo "usage: $0 [-r RUNTIME_S] [-s SIZE_MB] [-b BUILD_DIR]" >&2; exit 2 ;;
        esac
done
for c in openssl fio taskset nbdinfo /usr/bin/python3; do
        command -v "$c" >/dev/null || { echo "$c is needed" >&2; exit 1; }
done
oriond=$build/src/daemon/oriond
orionctl=$build/src/cli/orionctl
inproc=$build/bench/encrypt-inproc
for f in "$oriond" "$orionctl" "$inproc"; do
        [ -x "$f" ] || { echo "build first ($f missing)" >&2; exit 1; }
done
export ORION_PLUGIN_DIR=${ORION_PLUGIN_DIR:-$build/plugins}

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/orion-bench.XXXXXX")
pid=
cleanup() {
        [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
        wait 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT
ncpu=$(nproc)
echo "$(nproc) CPUs, load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# ---- openssl, one core: its largest block size (8 KiB or 16 KiB), in MB/s ----------------
ossl() {
        local alg=$1
        shift
        taskset -c 0 openssl speed -evp "$alg" -seconds 3 "$@" 2>/dev/null |
                awk -v a="$alg" 'tolower($1) == a { v = $NF; sub(/k$/, "", v); print int(v * 1000 / 1e6) }'
}
openssl_mbs=$(ossl aes-256-xts)
openssl_4k=$(ossl aes-256-xts -bytes 4096)
openssl_512=$(ossl aes-256-xts -bytes 512)
openssl_gcm=$(ossl aes-256-gcm -bytes 4096)
[ -n "$openssl_mbs" ] && [ -n "$openssl_4k" ] && [ -n "$openssl_512" ] && [ -n "$openssl_gcm" ] ||
        { echo "could not parse openssl speed" >&2; exit 1; }

# ---- in-process: one thread on core 0, then every CPU --------------------------------------
inproc_4k=$(taskset -c 0 "$inproc" "$runtime" 4096 | tail -1)
inproc_512=$(taskset -c 0 "$inproc" "$runtime" 512 | tail -1)
inproc_all=$("$inproc" "$runtime" 4096 | tail -1)
inproc_gcm=$(taskset -c 0 "$inproc" "$runtime" 4096 aes-gcm-random | tail -1)

# ---- through NBD: memory node plain and encrypted, same daemon --------------------------
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'bench passphrase' >"$tmp/key"
mkdir -p "$tmp/state"
cat >"$tmp/oriond.conf" <<CONF
[daemon]
state-dir = $tmp/state
nbd-listen = 127.0.0.1:$port

[node plain]
type = memory
size = $((size_mb + 32))M

[node backing]
type = memory
size = $((size_mb + 32))M

[export plain]
node = plain
protocols = nbd
CONF
"$oriond" --foreground --config "$tmp/oriond.conf" --control-socket "$tmp/ctl.sock" --pidfile "$tmp/pid" \
        --state-dir "$tmp/state" >"$tmp/oriond.log" 2>&1 &
pid=$!
for _ in $(seq 300); do [ -s "$tmp/pid" ] && break; sleep 0.1; done
ctl() { "$orionctl" --socket "$tmp/ctl.sock" "$@" >/dev/null; }
ctl format encrypt child=backing key-file="$tmp/key" pbkdf=pbkdf2 pbkdf-force-iterations=1000
ctl node-add vol encrypt child=backing key-file="$tmp/key"
ctl export-add vol vol
# oriond's CPU seconds so far (user + system, all threads), from /proc/PID/stat
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{ print ($14 + $15) / t }' "/proc/$pid/stat"; }
for name in plain vol; do
        for rw in write read; do
                c0=$(cpu_s)
                fio --name="$rw" --ioengine=nbd --uri="nbd://127.0.0.1:$port/$name" --rw="$rw" --bs=1M \
                    --iodepth=4 --numjobs=1 --size="${size_mb}M" --time_based --runtime="$runtime" \
                    --output-format=json --output="$tmp/$name.$rw.json" >/dev/null 2>&1 ||
                        { echo "fio failed: $rw on $name" >&2; exit 1; }
                echo "$c0 $(cpu_s)" >"$tmp/$name.$rw.cpu"
        done
done

"$orionctl" --socket "$tmp/ctl.sock" --json stats vol >"$tmp/stats.json"

/usr/bin/python3 - "$tmp" "$openssl_mbs" "$openssl_4k" "$openssl_512" "$ncpu" \
        "$inproc_4k" "$inproc_512" "$inproc_all" "$inproc_gcm" "$openssl_gcm" <<'PY'
import json, sys
tmp, ossl, ncpu = sys.argv[1], float(sys.argv[2]), int(sys.argv[5])
ossl_unit = {"4096": float(sys.argv[3]), "512": float(sys.argv[4])}
def kv(line):
    return {k: v for k, v in (w.split("=") for w in line.split())}
def fio(name, rw):
    j = json.load(open(f"{tmp}/{name}.{rw}.json"))["jobs"][0]
    c0, c1 = (float(x) for x in open(f"{tmp}/{name}.{rw}.cpu").read().split())
    nbytes = j[rw]["io_bytes"] if "io_bytes" in j[rw] else j[rw]["io_kbytes"] * 1024
    return j[rw]["bw_bytes"] / 1e6, nbytes / 1e6 / max(c1 - c0, 1e-3)
print(f"openssl speed -evp aes-256-xts, one core:  {ossl:8.0f} MB/CPU-s (largest block: the target's reference)")
print(f"  same, 4096-byte blocks: {ossl_unit['4096']:8.0f}    512-byte blocks: {ossl_unit['512']:8.0f}")
print()
print("in-process, 1 MiB requests, pinned to one core   MB/CPU-s  ratio per core  (to openssl at the sector size)")
for line in sys.argv[6:8]:
    d = kv(line)
    s = d["sector"]
    for key, label in (("xts_only", "libgcrypt XTS loop alone"), ("encrypt_write", "encrypt over memory, write"),
                       ("encrypt_read", "encrypt over memory, read"), ("memory_write", "memory node alone, write"),
                       ("memory_read", "memory node alone, read")):
        v = float(d[key])
        print(f"  sector {s:>4} {label:34s} {v:8.0f}   {v / ossl:5.2f}   ({v / ossl_unit[s]:.2f})")
d = kv(sys.argv[8])
print(f"in-process, sector 4096, on all {ncpu} CPUs (a lone request is split across them)")
for rw in ("write", "read"):
    v, w = float(d["encrypt_" + rw]), float(d["encrypt_" + rw + "_wall"])
    print(f"  encrypt over memory, {rw:5s}  {v:8.0f} MB/CPU-s ({v / ossl:.2f} per core)  {w:8.0f} MB/s wall")
d, gcm = kv(sys.argv[9]), float(sys.argv[10])
print(f"in-process, authenticated aes-gcm-random, sector 4096, pinned (openssl aes-256-gcm 4096-byte: {gcm:.0f})")
for rw in ("write", "read"):
    v = float(d["encrypt_" + rw])
    print(f"  encrypt over memory, {rw:5s}  {v:8.0f} MB/CPU-s  ({v / ossl:.2f} of openssl XTS, {v / gcm:.2f} of its GCM)")
print()
print(f"NBD export, fio 1 MiB sequential, iodepth 4   MB/s wall   MB per oriond CPU-s   ratio per core")
for rw in ("write", "read"):
    (p, pc), (e, ec) = fio("plain", rw), fio("vol", rw)
    print(f"  memory node, {rw:5s}                 {p:8.0f}   {pc:8.0f}")
    print(f"  encrypt over memory, {rw:5s}         {e:8.0f}   {ec:8.0f}            {ec / ossl:5.2f}"
          f"   ({e / p:.2f} of plain, wall)")
def find(o, k):
    if isinstance(o, dict):
        if k in o:
            return o[k]
        for v in o.values():
            r = find(v, k)
            if r is not None:
                return r
    return None
print(f"  requests split across CPUs (alone in the node): {find(json.load(open(f'{tmp}/stats.json')), 'requests-split')}")
PY
