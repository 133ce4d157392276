#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The one command that installs dependencies, builds Outpost and runs the whole test suite.
#   scripts/test.sh                 plain build (build/), every test
#   scripts/test.sh --sanitize      ASan+UBSan build (build-asan/), without the tests labelled
#                                   plain-only (signals, memory limits, faketime, installed SDK)
#                                   or slow (1M rows, 100 MB transfers, outages)
#   scripts/test.sh -- -R http      extra arguments after -- go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."

sanitize=0
build=build
ctest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) sanitize=1; build=build-asan ;;
    --build-dir) build=$2; shift ;;
    --) shift; ctest_args=("$@"); break ;;
    -h|--help) sed -n '3,8p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

scripts/deps.sh

jobs=$(nproc)
cmake_args=(-S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ $sanitize = 1 ]; then
  cmake_args+=(-DOUTPOST_SANITIZE=ON -DOUTPOST_FUZZ=ON -DCMAKE_C_COMPILER=clang)
fi
cmake "${cmake_args[@]}" >/dev/null
cmake --build "$build" -j "$jobs"

label_args=()
if [ $sanitize = 1 ]; then
  label_args=(-LE 'plain-only|slow')
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
cd "$build"
ctest --output-on-failure -j "$jobs" --timeout 600 "${label_args[@]}" "${ctest_args[@]}"
