/*
 * resume.h - the resume state of a scrub pass (`vbfsctl verify --resume
 * STATE`), kept apart from the index and the store.
 *
 * One file:
 *   [0, 4096)        "vbfs-scrub-state 1\n" and a JSON header (root digest,
 *                    shard, blocks planned, block size, pass, runs,
 *                    complete), space-padded; rewritten in place by one
 *                    pwrite
 *   [4096, E)        a bitmap, one bit per planned block in plan order,
 *                    set (through a shared mapping) the moment the block's
 *                    verdict is in
 *   [E, ...)         the pass's findings so far, one event JSON line each,
 *                    appended with one write(2) per line
 * A kill -9 loses nothing that was written: the page cache keeps the
 * mapping and the appended lines, so only the blocks being hashed at that
 * moment are verified again (a finding logged before its bit was set is
 * found again and recognised, not reported twice).  A line torn by a
 * power loss is cut off when the state is next opened; the file is synced
 * every few seconds and at the end of a run.
 *
 * A pass runs over as many runs as it takes; the run that verifies its
 * last block marks it complete, and the next run starts pass + 1 with a
 * clean bitmap (written to a temporary file and renamed over the state).
 *
 * Not thread-safe except vbfs_resume_done()/vbfs_resume_mark() (atomic
 * per bit); the scrub calls the rest from one thread or under its lock.
 */
#ifndef VBFS_RESUME_H
#define VBFS_RESUME_H

#include <stdbool.h>
#include <stdint.h>
#include "shard.h"
#include "vbfs.h"

struct vbfs_resume;

/*
 * Open (or create) the state at `path` for this index (root digest), shard
 * and plan (`nblocks` planned blocks of `block_size`).  A state of another
 * index, shard or plan, or a file that is not a state, is VBFS_ERR_USAGE
 * with one line in `why`; I/O errors are VBFS_ERR_IO.
 */
vbfs_err vbfs_resume_open(const char *path, const uint8_t root[VBFS_DIGEST_LEN],
			  struct vbfs_shard shard, uint64_t nblocks, uint32_t block_size,
			  struct vbfs_resume **out, char why[VBFS_WHY_LEN]);

uint32_t vbfs_resume_pass(const struct vbfs_resume *r);
uint32_t vbfs_resume_runs(const struct vbfs_resume *r);   /* this run included */

bool vbfs_resume_done(const struct vbfs_resume *r, uint64_t seq);
void vbfs_resume_mark(struct vbfs_resume *r, uint64_t seq);


/* The pass's findings recorded by earlier runs, by path and block. */
size_t vbfs_resume_nevents(const struct vbfs_resume *r);
const struct vbfs_event *vbfs_resume_event(const struct vbfs_resume *r, size_t i);

/* Was this finding (kind, path, block) recorded earlier in the pass? */
bool vbfs_resume_known(const struct vbfs_resume *r, const struct vbfs_event *ev);

/* Append a new finding.  VBFS_ERR_IO when the state cannot be written. */
vbfs_err vbfs_resume_log(struct vbfs_resume *r, const struct vbfs_event *ev,
			 char why[VBFS_WHY_LEN]);

/* Flush the bitmap and the log to disk. */
vbfs_err vbfs_resume_sync(struct vbfs_resume *r, char why[VBFS_WHY_LEN]);

/* End of a run: sync, and mark the pass complete when `complete`. */
vbfs_err vbfs_resume_finish(struct vbfs_resume *r, bool complete, char why[VBFS_WHY_LEN]);

void vbfs_resume_close(struct vbfs_resume *r);

#endif
