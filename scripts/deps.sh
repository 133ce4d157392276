#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages Outpost needs to build, test and run its demo.
# As root it installs what is missing; otherwise it names the packages and fails.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake ninja-build pkgconf clang libclang-rt-14-dev
  libcurl4-openssl-dev libssl-dev libyaml-dev libcjson-dev unixodbc-dev libssh-dev
  libsqlite3-dev libevent-dev libsystemd-dev libpq-dev libcmocka-dev
  # test services and tools
  unixodbc libsqliteodbc odbc-postgresql postgresql openssh-server openssh-client
  tinyproxy nginx faketime systemd curl openssl python3 procps iproute2 valgrind lsof time
  dpkg-dev file
  # benchmarks
  hyperfine wrk
  # packaging and help tests: man pages, bash completion
  man-db bash-completion
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "outpost: missing Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "outpost: installing ${#missing[@]} Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Services must not start at install time (no init here, and the tests start their own).
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ "$made_policy" = 1 ] && rm -f "$policy"
exit 0
