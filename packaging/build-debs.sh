#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds Outpost's Debian packages, one per component (outpost-agent, outpost-server,
# outpost-sdk, outpost-plugin-NAME), into OUTDIR:
#   packaging/build-debs.sh [OUTDIR] [BUILD_DIR]     defaults: build-deb/debs, build-deb
# The build is configured with the prefix /usr (the binaries carry their plugin and worker
# paths), without tests and benchmarks. Needs dpkg-dev and file (scripts/deps.sh).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$src/build-deb/debs}
build=${2:-$src/build-deb}
case "${1:-}" in -h|--help) sed -n '3,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
  -DOUTPOST_TESTS=OFF -DOUTPOST_BENCH=OFF >/dev/null
cmake --build "$build" -j "$(nproc)"
mkdir -p "$out"
(cd "$build" && cpack -G DEB -B "$out" >"$build/cpack.log" 2>&1) || { cat "$build/cpack.log" >&2; exit 1; }
rm -rf "$out/_CPack_Packages"
ls -1 "$out"/*.deb
