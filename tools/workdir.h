/*
 * workdir.h - a drill's work directory, $TMPDIR/vbfs-<what>.XXXXXX, holding
 *   mnt/        the private mountpoint (privmount.h)
 *   scratch/    where restores are written
 *   events.log  the mount's JSON-lines event log (doc/interface.md "Events")
 *   vbfs.err    the daemon's stderr
 * made at the start of a drill and removed at its end (unless --keep).
 */
#ifndef VBFS_WORKDIR_H
#define VBFS_WORKDIR_H

#include "vbfs.h"

/* mkdtemp("$TMPDIR/vbfs-<what>.XXXXXX") with mnt/ and scratch/ in it;
 * malloc'd absolute path, or NULL with `why`. */
char *workdir_create(const char *what, char why[VBFS_WHY_LEN]);

/* "DIR/NAME", malloc'd, or NULL when out of memory. */
char *workdir_path(const char *dir, const char *name);

/* rm -r that never crosses into another filesystem (a mount that is still
 * there is left alone, and the removal then fails).  0 or -1 with errno. */
int workdir_remove(const char *path);

#endif
