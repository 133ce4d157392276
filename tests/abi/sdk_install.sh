#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A third party's path: install the SDK to a prefix, build the template out of tree with
# find_package(OutpostSDK) and with pkg-config, and run both with `plugin run`.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"

PREFIX=$T/prefix
cmake --install "$OUTPOST_BUILD_DIR" --prefix "$PREFIX" --component sdk >"$T/install.log" 2>&1 ||
  { cat "$T/install.log" >&2; t_fail "cmake --install of the sdk component failed"; }
for f in include/outpost/plugin.h include/outpost/sdk.h share/outpost/sdk-template/template.c; do
  [ -f "$PREFIX/$f" ] || t_fail "the SDK install lacks $f"
done
pc=$(find "$PREFIX" -name outpost-sdk.pc)
[ -n "$pc" ] || t_fail "no outpost-sdk.pc installed"
cfgdir=$(dirname "$(find "$PREFIX" -name OutpostSDKConfig.cmake)")

# 1. CMake: find_package(OutpostSDK) + outpost_add_plugin()
cp -r "$PREFIX/share/outpost/sdk-template" "$T/src"
cmake -S "$T/src" -B "$T/b1" -G Ninja -DCMAKE_PREFIX_PATH="$PREFIX" >"$T/cmake.log" 2>&1 ||
  { cat "$T/cmake.log" >&2; t_fail "configuring the template against the installed SDK failed"; }
cmake --build "$T/b1" >"$T/build.log" 2>&1 || { cat "$T/build.log" >&2; t_fail "building the template failed"; }
t_plugin_dir "$T/p1"
cp "$T/b1/template.so" "$T/p1/" && chmod 644 "$T/p1/template.so"
# only the entry point is exported
exported=$(nm -D --defined-only "$T/p1/template.so" | awk '$2 == "T" {print $3}')
t_expect_eq outpost_plugin_v1 "$exported" "symbols exported by the template plugin"

# 2. pkg-config, with a plain compiler line
export PKG_CONFIG_PATH=$(dirname "$pc")
t_expect_eq "$PREFIX/lib/outpost/plugins" "$(pkg-config --variable=plugindir outpost-sdk | xargs realpath -m)" "plugindir"
mkdir -p "$T/p2" && chmod 755 "$T/p2"
cc -std=c11 -shared -fPIC -Wall -Werror -o "$T/p2/template.so" "$T/src/template.c" \
  $(pkg-config --cflags --libs outpost-sdk) -Wl,-z,defs || t_fail "building with pkg-config failed"
chmod 644 "$T/p2/template.so"

for d in p1 p2; do
  t_task "$T/t.json" template.echo '{"name": "SDK", "times": 2}'
  "$OUTPOST_AGENT" plugin run --task "$T/t.json" --plugins-dir "$T/$d" >"$T/$d.out" 2>"$T/$d.err" ||
    { cat "$T/$d.err" >&2; t_fail "the $d template did not run"; }
  t_expect_eq succeeded "$(t_json "$T/$d.out" .status)"
  t_expect_eq 2 "$(t_json "$T/$d.out" .result.times)"
done
echo ok
