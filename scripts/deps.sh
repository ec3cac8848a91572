#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install every Debian package Orion needs to build and test (the list is .ci/packages).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t pkgs < <(sed 's/#.*//' "$here/../.ci/packages" | tr -s ' \t' '\n' | grep -v '^$')
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" != 0 ]; then
        echo "deps.sh: run as root (apt-get install)" >&2
        exit 1
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${pkgs[@]}"
