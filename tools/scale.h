/*
 * scale.h - the scale-out side of `vbfsctl verify`: which shard this
 * process is (from --shard or the batch engine's environment), the
 * findings an --errors-only run checks again, and the block trace a test
 * counts.
 */
#ifndef VBFS_SCALE_H
#define VBFS_SCALE_H

#include <cjson/cJSON.h>
#include "shard.h"
#include "vbfs.h"

/*
 * The shard to scrub.  `opt` is --shard's value (NULL: not given):
 *   "K/N"   as given ("command line")
 *   "/N"    K from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or
 *           SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN (Slurm array)
 *   "auto"  K as for "/N"; N from VBFS_SHARDS or SLURM_ARRAY_TASK_COUNT
 *   NULL    "auto" when VBFS_SHARDS is set, else the whole index (n = 0)
 * `source` gets where K and N came from, for the output.  Bad values and
 * contradictions are a usage error (exit 2).
 */
void scale_shard(const char *opt, struct vbfs_shard *s, char source[128]);

/*
 * --errors-only REPORT: the damage findings REPORT names, as scrub
 * targets.  The strings live in *keep (free with scale_targets_free).
 */
struct scale_targets {
	struct vbfs_scrub_target *v;
	size_t n;
	char **paths;
	cJSON *doc;
};
void scale_targets_load(const char *report, const char *verify_key, struct scale_targets *t);
void scale_targets_free(struct scale_targets *t);

/*
 * VBFS_SCRUB_TRACE=FILE: append "ID BLOCK" for every block verdict, so a
 * test can count that N shards checked each block exactly once.
 */
void scale_trace(struct vbfs_scrub_opts *o);

#endif
