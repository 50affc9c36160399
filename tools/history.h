/*
 * history.h - the RTO drill history: one JSON object per line, the same
 * object `vbfsctl rto --json` prints (doc/interface.md "JSON keys"), appended once per
 * run.  This module reads and appends that file and does the trend
 * arithmetic for `vbfsctl rto --trend` and `vbfsctl report`.
 *
 * It depends only on libc, cJSON and vbfs.h (no tool.c helpers, nothing
 * that exits), so the unit test can compile it on its own.
 */
#ifndef VBFS_HISTORY_H
#define VBFS_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vbfs.h"

/* The drill's phases, in the order they run. */
enum hist_phase { HIST_MOUNT = 0, HIST_RESTORE, HIST_VALIDATE, HIST_NPHASES };
extern const char *const hist_phase_names[HIST_NPHASES];

/*
 * The verdict of a drill: one set of words for every output (the command
 * line, --json, the history, the metrics, --trend and the HTML report).
 *   met      every phase succeeded, no damage event, the witnesses agree,
 *            and the total is within the target
 *   missed   every phase succeeded and nothing was damaged, but the total
 *            (or, for sample --rto, the projection) exceeds the target
 *   failed   no damage event, but a phase failed (mount, restore or
 *            validate), or the drill cannot vouch for its result (its
 *            witnesses disagree or could not be read, cleanup failed)
 *   damaged  at least one damage event (corrupt, missing, unreadable,
 *            changed, ...), whatever else happened
 * Precedence: damaged, then failed, then missed.  Only met is a success.
 */
enum hist_verdict { HIST_MET = 0, HIST_MISSED, HIST_FAILED, HIST_DAMAGED, HIST_NVERDICTS };
extern const char *const hist_verdict_names[HIST_NVERDICTS];
enum hist_verdict hist_verdict_decide(bool damaged, bool failed, bool over_target);

/* One run, decoded from one history line.  Strings are malloc'd. */
struct hist_run {
	int64_t time;                   /* Unix seconds, from "time" */
	char   *time_str;               /* as written (RFC 3339) */
	char   *store;
	bool    met;                    /* verdict == HIST_MET */
	enum hist_verdict verdict;      /* "verdict", or derived for older lines */
	double  target;                 /* target_seconds */
	double  total;                  /* total_seconds */
	double  phase[HIST_NPHASES];
	bool    has_phase[HIST_NPHASES];
	uint64_t events;                /* damage events */
	char   *failed_phase;           /* NULL when every phase succeeded */
	char   *reason;                 /* why it failed, NULL when not given */
};

struct history {
	struct hist_run *runs;
	size_t n, cap;
	size_t skipped;                 /* lines that were not a run object */
	size_t first_skipped_line;      /* 1-based line number, 0: none */
};

/*
 * Read every run from `path`.  Blank lines are ignored; a line that is not a
 * JSON object with a numeric total_seconds is counted in `skipped` (a run
 * killed mid-write may leave half a line) but does not fail the load.
 * A missing file: VBFS_ERR_NOTFOUND.  Returns VBFS_OK or an error with `why`.
 */
vbfs_err history_load(const char *path, struct history *h, char why[VBFS_WHY_LEN]);
void     history_free(struct history *h);

/* Decode one line (no newline needed).  VBFS_ERR_FORMAT when it is not a run. */
vbfs_err history_parse_line(const char *line, size_t len, struct hist_run *r);
void     hist_run_free(struct hist_run *r);

/*
 * Append `json` plus a newline as one write(2) on an O_APPEND descriptor and
 * fsync it, so concurrent appenders never interleave within a line.
 * A missing file is created mode 0644.
 */
vbfs_err history_append(const char *path, const char *json, char why[VBFS_WHY_LEN]);

/* Time of the newest run with met true; 0 when there is none. */
int64_t history_last_success(const struct history *h);

/*
 * What `rto --trend` reports (doc/interface.md "JSON keys").
 * Counts and the success rate are over all runs; the times (means, min,
 * max, trend) over the completed runs only (no failed phase), since a
 * restore that failed after 4 s says nothing about how long one takes.
 */
struct hist_trend {
	size_t  runs, met, damaged;     /* damaged: runs with events > 0 */
	size_t  verdicts[HIST_NVERDICTS];   /* runs per verdict */
	size_t  completed;              /* runs with no failed phase */
	double  success_rate;           /* met / runs, 0..1 (0 when no runs) */
	double  mean[HIST_NPHASES];     /* over the completed runs that had the phase */
	size_t  count[HIST_NPHASES];
	int     slowest;                /* enum hist_phase, -1 when none */
	double  mean_total, min_total, max_total;
	double  last_target;            /* the newest run's target */
	/* Least-squares slope of total_seconds over the completed runs numbered
	 * 0..completed-1: positive = restores are getting slower. */
	double  slope_per_run;
	double  change;                 /* slope * (completed-1) / mean_total */
	const char *direction;          /* "slower", "faster" or "steady" */
	int64_t last_success;
	char    recommendation[256];
};

/* Changes smaller than this fraction of the mean over the history are "steady". */
#define HIST_STEADY_FRACTION 0.05

void history_trend(const struct history *h, struct hist_trend *t);

/* "2026-11-26T14:37:25Z" (also with +hh:mm or fractional seconds) -> Unix
 * seconds; -1 when it does not parse. */
int64_t hist_parse_time(const char *s);

#endif
