/*
 * reuse.h - `vbfsctl build --reuse OLD_INDEX`: the digests of files that
 * have not changed since the previous snapshot's index.  Internal to
 * libvbfs (build.c).
 *
 * A store file is "the same as when OLD_INDEX was built" when all of these
 * match the old record: the device and inode (the link identity: a
 * `cp -al` / `rsync --link-dest` / rsnapshot snapshot shares the inode of
 * an unchanged file with the snapshot before it), the size, the mtime to
 * the nanosecond, and the ctime to the nanosecond unless the link count
 * changed (link() and unlink() set the ctime, so a new snapshot's link
 * moves it; any write, chmod or utime sets it too).  An old index written
 * before devices were recorded matches on the path as well.  OLD_INDEX is
 * opened like any index: its root digest is checked first.  The same rule
 * serves an in-place rebuild (reuse_open_in_place): files that moved keep
 * their digests by inode.
 */
#ifndef VBFS_REUSE_H
#define VBFS_REUSE_H

#include <lmdb.h>
#include <sys/stat.h>
#include "vbfs.h"

struct reuse;

/* One old file that holds its own digests. */
struct reuse_file {
	uint64_t dev, ino, size, data_id;
	int64_t mtime_sec, ctime_sec;
	uint32_t mtime_nsec, ctime_nsec, nlink, flags;
	uint8_t file_digest[VBFS_DIGEST_LEN];
	char *path;
};

/* Errors: those of vbfs_index_open (NOTINDEX, ROOT, VERSION...), NOMEM. */
vbfs_err reuse_open(const char *old_index, struct reuse **out, char why[VBFS_WHY_LEN]);
/* The index being rebuilt in place, as it is before this build writes
 * (call before the write transaction begins; close before the environment
 * closes).  *out is NULL for a new index or one whose root digest does not
 * hold: then nothing is reused by inode.  Errors: NOMEM only. */
vbfs_err reuse_open_in_place(MDB_env *env, struct reuse **out);
uint32_t reuse_block_size(const struct reuse *r);
/* --reuse OLD_INDEX's meta (its root digest and signature). */
const struct vbfs_meta *reuse_meta(const struct reuse *r);
/* The old file that `st` (at `path`) is, unchanged; NULL when none.
 * `need_file_digest`: only one that has a whole-file digest. */
const struct reuse_file *reuse_find(const struct reuse *r, const struct stat *st,
				    const char *path, bool need_file_digest);
/* Copy f's digest runs and hole maps to file `id` of the index being
 * written (txn, its blocks database). */
vbfs_err reuse_copy(const struct reuse *r, const struct reuse_file *f, MDB_txn *txn,
		    MDB_dbi blocks, uint64_t id, char why[VBFS_WHY_LEN]);
void reuse_close(struct reuse *r);

#endif
