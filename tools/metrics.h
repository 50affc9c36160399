/*
 * metrics.h - Prometheus text exposition format (version 0.0.4) for the
 * drills, written for node_exporter's textfile collector: the file is
 * written to a temporary name in the same directory and renamed over the
 * target, so the collector never reads half a file.
 *
 * The metric names are the contract with the alert rules in
 * scripts/deploy/ (doc/interface.md "Metrics"); tests grep one against the other.
 */
#ifndef VBFS_METRICS_H
#define VBFS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vbfs.h"
#include "history.h"

#define M_FAILED          "backup_verification_failed"
#define M_CHECKSUM_FAIL   "backup_verification_checksum_failures"
#define M_LAST_SUCCESS    "backup_verification_last_success_timestamp"
#define M_LAST_RUN        "backup_verification_last_run_timestamp"
#define M_DURATION        "backup_verification_restore_duration_seconds"
#define M_TARGET          "backup_verification_rto_target_seconds"
#define M_PHASE           "backup_verification_phase_duration_seconds"
#define M_BLOCKS          "vbfs_blocks_verified_total"
#define M_BYTES           "vbfs_bytes_verified_total"
#define M_EVENTS          "vbfs_events_total"
#define M_VERDICT         "backup_verification_verdict"

/* A growing text buffer of metric families. */
struct metrics {
	char  *buf;
	size_t len, cap;
	bool   nomem;
};

/* "# HELP" and "# TYPE" lines; type is "gauge" or "counter". */
void metrics_family(struct metrics *m, const char *name, const char *type,
		    const char *help);
/* One sample.  `labels` is NULL or "k1", "v1", "k2", "v2", ..., NULL;
 * values are escaped (\\, \", \n). */
void metrics_sample(struct metrics *m, const char *name,
		    const char *const *labels, double value);
void metrics_free(struct metrics *m);

/* Write m to `path` atomically (temp file in the same dir, fsync, rename),
 * mode 0644. */
vbfs_err metrics_write_atomic(const char *path, const struct metrics *m,
			      char why[VBFS_WHY_LEN]);

/*
 * Read one sample back from an existing metrics file: the value of `name`
 * whose `store` label is `store`.  Used to keep last_success_timestamp when
 * there is no history file.  false when absent or unreadable.
 */
bool metrics_read_value(const char *path, const char *name, const char *store,
			double *out);

/* Everything one drill run reports. */
struct drill_metrics {
	const char *store;
	bool     failed;                /* the drill did not meet its objective */
	int      verdict;               /* enum hist_verdict (history.h) */
	uint64_t checksum_failures;     /* damage events */
	int64_t  last_success, last_run;
	double   duration, target;
	double   phase[3];              /* mount, restore, validate */
	bool     has_phase[3];
	uint64_t blocks_verified, bytes_verified;
	uint64_t events[VBFS_EV_COUNT]; /* by kind, from the mount's counters */
};

/* Render every drill metric, zero-valued series included. */
void metrics_drill(struct metrics *m, const struct drill_metrics *d);

#define M_SCRUB_SECONDS   "vbfs_scrub_duration_seconds"
#define M_SCRUB_COMPLETE  "vbfs_scrub_complete"

/* What one scrub (`verify`, one shard, or `merge`) reports. */
struct scrub_metrics {
	const char *store;
	const char *shard;              /* "K/N" label on every series, or NULL */
	bool     failed;                /* damage was found */
	bool     complete;              /* every planned block was checked */
	uint64_t checksum_failures;     /* damage events */
	int64_t  last_success, last_run;
	double   seconds;
	uint64_t blocks_verified, bytes_verified;
	uint64_t events[VBFS_EV_COUNT];
};

/* Render the scrub metrics (the drill's failure/freshness names, so the
 * same alert rules cover scrubs), zero-valued series included. */
void metrics_scrub(struct metrics *m, const struct scrub_metrics *d);

#endif
