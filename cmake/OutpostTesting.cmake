# SPDX-License-Identifier: Apache-2.0
# outpost_shell_test(<name> <script> [LABELS l...] [TIMEOUT s] [ARGS a...])
# Registers a bash integration test that gets the build's binaries through the environment
# (tests/lib.sh documents the variables) and runs in a fresh temporary directory.
function(outpost_shell_test name script)
  cmake_parse_arguments(ARG "" "TIMEOUT" "LABELS;ARGS" ${ARGN})
  add_test(NAME ${name} COMMAND bash ${script} ${ARG_ARGS})
  set(_env
    "OUTPOST_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
    "OUTPOST_BUILD_DIR=${PROJECT_BINARY_DIR}"
    "OUTPOST_PLUGIN_DIR=${OUTPOST_BUILD_PLUGINDIR}"
    "OUTPOST_TEST_PLUGIN_DIR=${PROJECT_BINARY_DIR}/tests/plugins"
    "OUTPOST_SANITIZE=$<BOOL:${OUTPOST_SANITIZE}>"
    "OUTPOST_TEST_NAME=${name}")
  if(TARGET outpost-agent)
    list(APPEND _env "OUTPOST_AGENT=$<TARGET_FILE:outpost-agent>")
  endif()
  if(TARGET outpost-worker)
    list(APPEND _env "OUTPOST_WORKER=$<TARGET_FILE:outpost-worker>")
  endif()
  if(TARGET outpost-server)
    list(APPEND _env "OUTPOST_SERVER=$<TARGET_FILE:outpost-server>")
  endif()
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${_env}")
  if(ARG_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
  if(ARG_TIMEOUT)
    set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT})
  else()
    set_tests_properties(${name} PROPERTIES TIMEOUT 300)
  endif()
endfunction()

# outpost_bundled_plugin(<target>): a plugin of this tree, built into build/plugins and
# installed into the plugin directory as its own package component (outpost-plugin-<name>).
function(outpost_bundled_plugin target component)
  set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${OUTPOST_BUILD_PLUGINDIR})
  install(TARGETS ${target} LIBRARY DESTINATION ${OUTPOST_PLUGINDIR} COMPONENT ${component})
endfunction()
