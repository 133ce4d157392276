#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the worker benchmark against a build: bench/worker/run.sh [BUILD_DIR] [RUNS]
set -euo pipefail
b=${1:-build}
exec "$b/bench/worker/bench_worker" "$b/core/outpost-worker" "$b/tests/plugins" \
  "$b/bench/worker/bench_true" "$b/bench/worker/bench_true_fat" "${2:-1000}"
