# cmake/Install.cmake - where `cmake --install` and the .deb put things
# (GNUInstallDirs), and the CPack settings for `scripts/package`.
#
#   bin/vbfs, bin/vbfsctl                 the programs
#   share/man/man1/vbfs.1, vbfsctl.1      man pages
#   lib/systemd/system/*.service|*.timer  units from scripts/deploy/
#   share/doc/vbfs/examples/              example configs (drill env, alert rules, CronJob)
#   share/bash-completion/completions/vbfsctl
#
# `mount -t fuse.vbfs` and fstab lines work through fuse3's /sbin/mount.fuse,
# which runs `vbfs` from PATH: nothing to install for that.

install(TARGETS vbfs vbfsctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The PostgreSQL drill: the scripts find their helpers in scripts/pg (source
# tree) or <prefix>/share/vbfs/pg (installed).
install(PROGRAMS ${CMAKE_SOURCE_DIR}/scripts/pg-drill ${CMAKE_SOURCE_DIR}/scripts/pg-baseline
                 ${CMAKE_SOURCE_DIR}/scripts/pgbackrest-drill
        DESTINATION ${CMAKE_INSTALL_BINDIR})
install(PROGRAMS ${CMAKE_SOURCE_DIR}/scripts/pg/validate ${CMAKE_SOURCE_DIR}/scripts/pg/vbfs-allow-other
                 ${CMAKE_SOURCE_DIR}/scripts/pg/sample-dump
        DESTINATION ${CMAKE_INSTALL_DATADIR}/vbfs/pg)
install(FILES ${CMAKE_SOURCE_DIR}/scripts/pg/common.sh ${CMAKE_SOURCE_DIR}/scripts/pg/example-baseline.json
        DESTINATION ${CMAKE_INSTALL_DATADIR}/vbfs/pg)

# Man pages, gzipped as Debian ships them when gzip is at hand.
find_program(VBFS_GZIP gzip)
foreach(page vbfs.1 vbfsctl.1)
  set(src ${CMAKE_SOURCE_DIR}/doc/${page})
  if(NOT EXISTS ${src})
    continue()
  endif()
  if(VBFS_GZIP)
    set(gz ${CMAKE_BINARY_DIR}/man/${page}.gz)
    add_custom_command(OUTPUT ${gz}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND ${VBFS_GZIP} -9nc ${src} > ${gz}
      DEPENDS ${src} VERBATIM)
    list(APPEND VBFS_MAN_OUTPUTS ${gz})
    install(FILES ${gz} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
  else()
    install(FILES ${src} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
  endif()
endforeach()
if(VBFS_MAN_OUTPUTS)
  add_custom_target(vbfs_man ALL DEPENDS ${VBFS_MAN_OUTPUTS})
endif()

# systemd units: whatever scripts/deploy/ holds.  <prefix>/lib/systemd/system
# is on systemd's unit path for both /usr and /usr/local.
set(VBFS_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "systemd system unit directory (relative to the prefix, or absolute)")
file(GLOB VBFS_UNITS CONFIGURE_DEPENDS
     ${CMAKE_SOURCE_DIR}/scripts/deploy/*.service
     ${CMAKE_SOURCE_DIR}/scripts/deploy/*.timer)
if(VBFS_UNITS)
  install(FILES ${VBFS_UNITS} DESTINATION ${VBFS_SYSTEMD_UNITDIR})
endif()

# Example configs: the drill environment file, Prometheus rules, the CronJob.
file(GLOB VBFS_EXAMPLES CONFIGURE_DEPENDS
     ${CMAKE_SOURCE_DIR}/scripts/deploy/*.example
     ${CMAKE_SOURCE_DIR}/scripts/deploy/*.yml
     ${CMAKE_SOURCE_DIR}/scripts/deploy/*.yaml)
if(VBFS_EXAMPLES)
  install(FILES ${VBFS_EXAMPLES} DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
endif()
if(EXISTS ${CMAKE_SOURCE_DIR}/README.md)
  install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
endif()
# The documents README.md links to, at the same relative paths.
file(GLOB VBFS_DOCS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/doc/*.md ${CMAKE_SOURCE_DIR}/doc/*.svg)
if(VBFS_DOCS)
  install(FILES ${VBFS_DOCS} DESTINATION ${CMAKE_INSTALL_DOCDIR}/doc)
endif()

if(EXISTS ${CMAKE_SOURCE_DIR}/scripts/completion/vbfsctl.bash)
  install(FILES ${CMAKE_SOURCE_DIR}/scripts/completion/vbfsctl.bash
          DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
          RENAME vbfsctl)
endif()

# ---- CPack: a Debian package ------------------------------------------------
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "vbfs")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_VENDOR "vbfs")
set(CPACK_PACKAGE_CONTACT "vbfs maintainers <root@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "read-only FUSE filesystem that verifies every block of a backup it serves")
set(CPACK_PACKAGE_DESCRIPTION
    "vbfs overlays a backup store and checks every block it serves against a\nSHA-256 block index kept in LMDB; a read touching a damaged block fails\nwith EIO and is logged as a JSON event.  vbfsctl builds the index (anchored\nto sha256sum, PostgreSQL backup_manifest or JSON manifests), scrubs, and\nruns sample-restore and RTO drills.")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "admin")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
set(CPACK_DEBIAN_PACKAGE_DEPENDS "fuse3, liblmdb0, libcjson1, libssl3, libisal2")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "bash-completion, postgresql-client, pgbackrest")
# dpkg-shlibdeps adds the exact library versions (libc6, libfuse3-3 ...).
find_program(VBFS_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(VBFS_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
endif()
include(CPack)
