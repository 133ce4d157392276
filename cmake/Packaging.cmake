# SPDX-License-Identifier: Apache-2.0
# What the packages carry besides the binaries (units, man pages, bash completion, docs,
# copyright), and CPack: one Debian package per install component, so a host installs the
# agent and only the plugins it needs.
#
#   packaging/build-debs.sh OUTDIR        configures with the prefix /usr and runs cpack -G DEB
#
# Components: agent (outpost-agent: agent, worker, unit, docs), server (outpost-server),
# sdk (outpost-sdk), outpost-plugin-NAME (one per bundled plugin, from outpost_bundled_plugin).
# Included at the end of the top-level CMakeLists.txt, after every install() rule.

set(OUTPOST_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "systemd unit directory (relative to the prefix: /usr/lib/systemd/system)")
set(OUTPOST_BASH_COMPLETIONDIR "${CMAKE_INSTALL_DATAROOTDIR}/bash-completion/completions" CACHE STRING
    "bash completion directory (relative to the prefix)")
set(_pkg ${PROJECT_SOURCE_DIR}/packaging)
set(_docroot ${CMAKE_INSTALL_DATAROOTDIR}/doc)

# ---- man pages, gzipped as Debian wants them --------------------------------------------------
find_program(OUTPOST_GZIP gzip REQUIRED)
set(_man_out)
foreach(_page outpost-agent.8 outpost-server.8)
  add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/packaging/man/${_page}.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/packaging/man
    COMMAND ${OUTPOST_GZIP} -9n -c ${_pkg}/man/${_page} > ${CMAKE_BINARY_DIR}/packaging/man/${_page}.gz
    DEPENDS ${_pkg}/man/${_page}
    COMMENT "Compressing the man page ${_page}")
  list(APPEND _man_out ${CMAKE_BINARY_DIR}/packaging/man/${_page}.gz)
endforeach()
add_custom_target(outpost-man ALL DEPENDS ${_man_out})

# ---- the agent ---------------------------------------------------------------------------
install(FILES ${_pkg}/outpost-agent.service DESTINATION ${OUTPOST_SYSTEMD_UNITDIR} COMPONENT agent)
install(FILES ${CMAKE_BINARY_DIR}/packaging/man/outpost-agent.8.gz
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT agent)
install(FILES ${_pkg}/bash-completion/outpost-agent DESTINATION ${OUTPOST_BASH_COMPLETIONDIR}
        COMPONENT agent)
install(FILES ${_pkg}/copyright ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/operations.md
              ${PROJECT_SOURCE_DIR}/docs/configuration.md ${PROJECT_SOURCE_DIR}/docs/performance.md
        DESTINATION ${_docroot}/outpost-agent COMPONENT agent)

# ---- the control plane -------------------------------------------------------------------
if(OUTPOST_SERVER)
  install(FILES ${_pkg}/outpost-server.service DESTINATION ${OUTPOST_SYSTEMD_UNITDIR} COMPONENT server)
  install(FILES ${CMAKE_BINARY_DIR}/packaging/man/outpost-server.8.gz
          DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT server)
  install(FILES ${_pkg}/bash-completion/outpost-server DESTINATION ${OUTPOST_BASH_COMPLETIONDIR}
          COMPONENT server)
  install(FILES ${_pkg}/copyright ${PROJECT_SOURCE_DIR}/docs/server.md ${PROJECT_SOURCE_DIR}/docs/protocol.md
          DESTINATION ${_docroot}/outpost-server COMPONENT server)
endif()

# ---- the SDK -----------------------------------------------------------------------------
install(FILES ${_pkg}/copyright ${PROJECT_SOURCE_DIR}/docs/sdk.md ${PROJECT_SOURCE_DIR}/docs/plugin-abi.md
        DESTINATION ${_docroot}/outpost-sdk COMPONENT sdk)

# ---- the plugins: their docs, and maintainer scripts that tell a running agent -------------
set(_plugins)
foreach(_p http odbc ssh change)
  string(TOUPPER ${_p} _P)
  if(NOT OUTPOST_PLUGIN_${_P} OR NOT (TARGET ${_p} OR TARGET ${_p}_plugin))
    continue()
  endif()
  list(APPEND _plugins ${_p})
  set(_c outpost-plugin-${_p})
  set(_docs ${_pkg}/copyright)
  if(EXISTS ${PROJECT_SOURCE_DIR}/docs/plugins/${_p}.md)
    list(APPEND _docs ${PROJECT_SOURCE_DIR}/docs/plugins/${_p}.md)
  endif()
  install(FILES ${_docs} DESTINATION ${_docroot}/${_c} COMPONENT ${_c})
  set(NAME ${_p})
  foreach(_s postinst postrm)
    configure_file(${_pkg}/deb/plugin/${_s}.in ${CMAKE_BINARY_DIR}/packaging/deb/${_c}/${_s} @ONLY)
  endforeach()
  unset(NAME)
endforeach()

# ---- CPack: Debian packages ----------------------------------------------------------------
set(CPACK_PACKAGE_NAME outpost)
set(CPACK_PACKAGE_VENDOR "Outpost")
set(CPACK_PACKAGE_CONTACT "Outpost maintainers <maintainers@outpost.invalid>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_GENERATOR DEB)
set(CPACK_SOURCE_GENERATOR "")
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_PROJECT_CONFIG_FILE ${_pkg}/CPackProjectConfig.cmake)
set(CPACK_OUTPOST_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(_v "${PROJECT_VERSION}")

# Every component is a package; a component nobody named would become a stray package.
get_cmake_property(_components COMPONENTS)
list(REMOVE_ITEM _components Unspecified)
set(CPACK_COMPONENTS_ALL ${_components})

set(CPACK_DEBIAN_AGENT_PACKAGE_NAME outpost-agent)
set(CPACK_DEBIAN_AGENT_PACKAGE_DEPENDS "passwd")
set(CPACK_DEBIAN_AGENT_PACKAGE_RECOMMENDS "ca-certificates")
set(CPACK_DEBIAN_AGENT_PACKAGE_SUGGESTS "outpost-plugin-http, outpost-plugin-odbc, outpost-plugin-ssh, outpost-plugin-change")
set(CPACK_DEBIAN_AGENT_PACKAGE_CONTROL_EXTRA
    ${_pkg}/deb/agent/postinst ${_pkg}/deb/agent/prerm ${_pkg}/deb/agent/postrm)
set(CPACK_COMPONENT_AGENT_DESCRIPTION "Outpost agent: runs tasks close to private data
outpost-agent enrolls a host inside a private network with an Outpost control plane
(a single-use token for a client certificate, mTLS afterwards), keeps a heartbeat,
leases tasks and runs each one in a fresh, isolated worker process through executor
plugins. This package holds the agent, its worker, the systemd unit and the docs;
install the plugins you need (outpost-plugin-http, -odbc, -ssh, -change) beside it.
It creates the system user outpost-agent and starts nothing: enroll the host with
outpost-agent install --control-plane URL --token-file FILE.")

set(CPACK_DEBIAN_SERVER_PACKAGE_NAME outpost-server)
set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS "passwd")
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA
    ${_pkg}/deb/server/postinst ${_pkg}/deb/server/prerm ${_pkg}/deb/server/postrm)
set(CPACK_COMPONENT_SERVER_DESCRIPTION "Outpost control plane (reference server)
outpost-server enrolls Outpost agents, takes their heartbeats, queues tasks and leases
them, gates change requests behind approvals it signs, and keeps an audit log; one
binary with an admin CLI. It creates the system user outpost-server and starts
nothing: run outpost-server init, then systemctl enable --now outpost-server.")

set(CPACK_DEBIAN_SDK_PACKAGE_NAME outpost-sdk)
set(CPACK_DEBIAN_SDK_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_SDK_PACKAGE_DEPENDS "libcjson-dev")
set(CPACK_DEBIAN_SDK_PACKAGE_RECOMMENDS "cmake, pkgconf, gcc")
set(CPACK_DEBIAN_SDK_PACKAGE_SUGGESTS "outpost-agent")
set(CPACK_COMPONENT_SDK_DESCRIPTION "Outpost plugin SDK: headers, helper library, CMake package
Everything needed to build an executor plugin for outpost-agent: the plugin ABI
header, the SDK helpers (static library), the CMake package OutpostSDK with
outpost_add_plugin(), a pkg-config file and a template plugin.")

set(_plugin_summary_http "HTTP(S) requests and batches (libcurl)")
set(_plugin_summary_odbc "SQL through unixODBC: queries, scripts, exports")
set(_plugin_summary_ssh "commands and file transfers over SSH (libssh)")
set(_plugin_summary_change "change requests: approved, recorded changes on the host")
foreach(_p ${_plugins})
  string(TOUPPER "outpost-plugin-${_p}" _C)
  set(CPACK_DEBIAN_${_C}_PACKAGE_NAME outpost-plugin-${_p})
  # The agent loads plugins built for its ABI minor or an older one: a newer agent is fine.
  set(CPACK_DEBIAN_${_C}_PACKAGE_DEPENDS "outpost-agent (>= ${_v})")
  set(CPACK_DEBIAN_${_C}_PACKAGE_CONTROL_EXTRA
      ${CMAKE_BINARY_DIR}/packaging/deb/outpost-plugin-${_p}/postinst
      ${CMAKE_BINARY_DIR}/packaging/deb/outpost-plugin-${_p}/postrm)
  set(CPACK_COMPONENT_${_C}_DESCRIPTION "Outpost ${_p} plugin: ${_plugin_summary_${_p}}
The ${_p} executor plugin for outpost-agent (${_p}.so in the agent's plugins
directory), serving the ${_p}.* task types. See
/usr/share/doc/outpost-plugin-${_p}/${_p}.md.")
endforeach()
set(CPACK_DEBIAN_OUTPOST-PLUGIN-ODBC_PACKAGE_SUGGESTS "odbc-postgresql, libsqliteodbc, odbc-mariadb, tdsodbc")
set(CPACK_DEBIAN_OUTPOST-PLUGIN-SSH_PACKAGE_SUGGESTS "openssh-client")

include(CPack)
