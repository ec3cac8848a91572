#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# An export removed while a SANITIZE (IMMED) still overwrites its slow node: the removal stops
# the operation, nothing touches the node afterwards (so the node can go too), and oriond
# shuts down cleanly. The same at shutdown with the sanitize still running.
. "$(dirname "$0")/functions.sh"
requires iscsi-ls
. "$(dirname "$0")/iscsi-functions.sh"
[ -e "$ORION_PLUGIN_DIR/orion-delay.so" ] || skip "delay plugin not built"

conf=$tmp/oriond.conf
iscsi_config "$conf"
for n in 0 1; do
        # 64 writes of 1 MiB at 100 ms each: a sanitize takes about 6 s
        cat >>"$conf" <<CONF
[node mem$n]
type = memory
size = 64M

[node slow$n]
type = delay
child = mem$n
write-delay = 100ms

[export vol$n]
node = slow$n
protocols = iscsi

CONF
done
start_oriond "$conf"
wait_iscsi

sanitize_started() {
        /usr/bin/python3 "$ORION_SOURCE_ROOT/tests/integration/iscsi-raw.py" 127.0.0.1 "$ISCSI_PORT" \
                "$ISCSI_PREFIX:$1" sanitize-immed || die "SANITIZE on $1 not accepted"
        wait_for 30 grep -q "sanitize (overwrite) started" "$tmp/oriond.log" || die "no sanitize started on $1"
}
writes_of() {
        orionctl --json stats "$1" | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]]["write"]["ops"])' "$1"
}

sanitize_started vol0
orionctl export-remove vol0 >/dev/null || die "export-remove during a sanitize failed"
grep -q "sanitize cancelled" "$tmp/oriond.log" || die "export-remove returned while the sanitize still ran"
w=$(writes_of mem0)
[ "$w" -lt 64 ] || die "the whole sanitize ran ($w writes): nothing was cancelled"
orionctl node-remove slow0 >/dev/null || die "node-remove after the cancelled sanitize failed"
orionctl node-remove mem0 >/dev/null || die "node-remove of the memory node failed"
kill -0 "$ORIOND_PID" || die "oriond died"

# at shutdown (SIGTERM): the target stops the sanitize of vol1 before the nodes close
sanitize_started vol1
stop_oriond
[ "$(grep -c "sanitize cancelled" "$tmp/oriond.log")" = 2 ] || die "the shutdown did not cancel the sanitize"
