# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared helpers for integration tests: source this, then use start_oriond, orionctl, ...
# Tests exit 0 (pass), 1 (fail) or 77 (skip).
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH   # Debian's python3 for nbdsh

: "${ORION_BUILD_ROOT:?run through meson test}"
: "${ORION_SOURCE_ROOT:?run through meson test}"
ORIOND=${ORIOND:-$ORION_BUILD_ROOT/src/daemon/oriond}
ORIONCTL=${ORIONCTL:-$ORION_BUILD_ROOT/src/cli/orionctl}
export ORION_PLUGIN_DIR=${ORION_PLUGIN_DIR:-$ORION_BUILD_ROOT/plugins}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/orion-test.XXXXXX")
_cleanup_cmds=()
ORIOND_PID=
CTL_SOCK=$tmp/ctl.sock

die() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
requires() {
        local c
        for c in "$@"; do command -v "$c" >/dev/null 2>&1 || skip "$c not installed"; done
}
requires_root() { [ "$(id -u)" = 0 ] || skip "needs root"; }
cleanup_fn() { _cleanup_cmds+=("$*"); }
_run_cleanup() {
        local rc=$? i
        for ((i = ${#_cleanup_cmds[@]} - 1; i >= 0; i--)); do eval "${_cleanup_cmds[$i]}" || true; done
        if [ -n "$ORIOND_PID" ] && kill -0 "$ORIOND_PID" 2>/dev/null; then
                kill -TERM "$ORIOND_PID" 2>/dev/null || true
                _wait_gone "$ORIOND_PID" 30 || kill -KILL "$ORIOND_PID" 2>/dev/null || true
        fi
        if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ -f "$tmp/oriond.log" ]; then
                echo "---- oriond log (last 60 lines) ----" >&2
                tail -n 60 "$tmp/oriond.log" >&2 || true
        fi
        rm -rf "$tmp"
        exit $rc
}
trap _run_cleanup EXIT

# wait_for TIMEOUT_S CMD...: poll until CMD succeeds (generous bounds, no fixed sleeps).
wait_for() {
        local t=$1 end
        shift
        end=$(($(date +%s) + t))
        until "$@" >/dev/null 2>&1; do
                [ "$(date +%s)" -lt "$end" ] || return 1
                sleep 0.1
        done
}
_wait_gone() { wait_for "$2" sh -c "! kill -0 $1 2>/dev/null"; }

# A TCP port on 127.0.0.1 that nobody listens on right now.
free_port() {
        /usr/bin/python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# start_oriond CONFIG [extra oriond args]: runs oriond in the foreground in the background,
# waits for its pidfile (written only once every export listens).
start_oriond() {
        local conf=$1
        shift
        rm -f "$tmp/oriond.pid"
        "$ORIOND" --foreground --config "$conf" --pidfile "$tmp/oriond.pid" \
                --control-socket "$CTL_SOCK" --state-dir "$tmp/state" "$@" >>"$tmp/oriond.log" 2>&1 &
        ORIOND_PID=$!
        if ! wait_for 60 test -s "$tmp/oriond.pid"; then
                cat "$tmp/oriond.log" >&2
                die "oriond did not become ready"
        fi
        kill -0 "$ORIOND_PID" 2>/dev/null || die "oriond exited at start"
}
# Expect oriond to refuse to start: start_oriond_fails CONFIG PATTERN
start_oriond_fails() {
        local conf=$1 pat=$2
        if "$ORIOND" --foreground --config "$conf" --pidfile "$tmp/never.pid" \
                --control-socket "$CTL_SOCK" --state-dir "$tmp/state" >"$tmp/fail.log" 2>&1; then
                die "oriond started with a bad config"
        fi
        grep -q -- "$pat" "$tmp/fail.log" || { cat "$tmp/fail.log" >&2; die "error message lacks '$pat'"; }
}
stop_oriond() {
        [ -n "$ORIOND_PID" ] || return 0
        kill -TERM "$ORIOND_PID"
        local rc=0
        wait "$ORIOND_PID" || rc=$?
        ORIOND_PID=
        [ $rc -eq 0 ] || die "oriond exited $rc after SIGTERM"
}
kill9_oriond() {
        [ -n "$ORIOND_PID" ] || return 0
        kill -KILL "$ORIOND_PID"
        wait "$ORIOND_PID" 2>/dev/null || true
        ORIOND_PID=
}
orionctl() { "$ORIONCTL" --socket "$CTL_SOCK" "$@"; }

# nbd_uri PORT [EXPORT]
nbd_uri() { echo "nbd://127.0.0.1:$1/${2:-}"; }
# Wait until an NBD server answers on PORT.
wait_nbd() { wait_for 60 nbdinfo --size "nbd://127.0.0.1:$1/${2:-}"; }
