# SPDX-License-Identifier: Apache-2.0
# Read by cpack: the binaries carry their plugin and worker paths from the configure step, so
# Debian packages must come from a build configured with the prefix /usr.
if(CPACK_GENERATOR STREQUAL "DEB" AND NOT CPACK_OUTPOST_INSTALL_PREFIX STREQUAL "/usr")
  message(FATAL_ERROR "Debian packages need a build configured with -DCMAKE_INSTALL_PREFIX=/usr "
                      "(this one has ${CPACK_OUTPOST_INSTALL_PREFIX}): use packaging/build-debs.sh")
endif()
