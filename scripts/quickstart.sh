#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Fresh Debian 12, as root: install the dependencies, build, install, and start oriond on its
# built-in default (a sparse 1 GiB volume "vol0" served on nbd://127.0.0.1:10809/vol0).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
if [ -d build ]; then
        meson setup --reconfigure build
else
        meson setup build --buildtype=release -Dwerror=false
fi
ninja -C build
ninja -C build install
ldconfig
if /usr/local/bin/orionctl status >/dev/null 2>&1; then
        echo "oriond is already running"
elif [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable --now oriond.service
else
        # No systemd (e.g. a container): oriond daemonises once everything listens.
        /usr/local/sbin/oriond
fi
/usr/local/bin/orionctl status
