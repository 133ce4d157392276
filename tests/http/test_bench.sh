#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The http benchmark script, run small, so that it keeps working (figures are not checked).
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/http/fixtures.sh"

bash "$OUTPOST_SOURCE_DIR/bench/http/bench_http.sh" --agent "$OUTPOST_AGENT" --server "$OUTPOST_SERVER" \
  --plugins-dir "$OUTPOST_PLUGIN_DIR" -n 30 -c 4 -r 1 >"$T/bench.out" 2>&1 || { cat "$T/bench.out" >&2; t_fail "bench_http.sh failed"; }
t_expect_contains "$T/bench.out" "30 GETs of a 612-byte file from nginx on 127.0.0.1, concurrency 4"
t_expect_contains "$T/bench.out" "outpost: one http.batch task, running agent"
t_expect_contains "$T/bench.out" "outpost: the same task cold, via plugin run"
t_expect_contains "$T/bench.out" "running  vs curl --parallel: "
t_expect_contains "$T/bench.out" "cold     vs curl --parallel: "
t_log ok
