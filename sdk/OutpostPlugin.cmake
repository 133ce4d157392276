# SPDX-License-Identifier: Apache-2.0
# outpost_add_plugin(<target> SOURCES <files...> [LIBRARIES <libs...>])
# Builds an Outpost plugin: a MODULE library named <target>.so (no "lib" prefix), C11, hidden
# visibility, every symbol resolved at link time, only the ABI entry point exported.
function(outpost_add_plugin target)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "outpost_add_plugin(${target}): SOURCES is required")
  endif()
  add_library(${target} MODULE ${ARG_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    C_STANDARD 11
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(TARGET Outpost::sdk)
    target_link_libraries(${target} PRIVATE Outpost::sdk)
  else()
    target_link_libraries(${target} PRIVATE outpost_sdk)
  endif()
  if(ARG_LIBRARIES)
    target_link_libraries(${target} PRIVATE ${ARG_LIBRARIES})
  endif()
  # Plugins must not leave symbols for the host to resolve (no -z defs under sanitizers,
  # whose runtimes the executable provides).
  if(DEFINED OUTPOST_NO_UNDEFINED_LINK)
    set(_defs "${OUTPOST_NO_UNDEFINED_LINK}")
  else()
    set(_defs "-Wl,-z,defs")
  endif()
  if(_defs)
    target_link_options(${target} PRIVATE ${_defs})
  endif()
endfunction()
