/*
 * scrub_out.h - where a scrub's verdict goes, the same for `vbfsctl
 * verify` (one shard or all) and `vbfsctl merge`: the report file
 * (atomic, signed with --sign-key), the --json document on stdout, the
 * Prometheus metrics file and a history line.  Every output is made from
 * the one report document, so they cannot disagree.
 */
#ifndef VBFS_SCRUB_OUT_H
#define VBFS_SCRUB_OUT_H

#include <stdbool.h>
#include <cjson/cJSON.h>

struct scrub_out {
	const char *report;     /* --report FILE */
	const char *sign_key;   /* --sign-key KEY: sign the report */
	const char *metrics;    /* --metrics FILE */
	const char *history;    /* --history FILE */
	const char *name;       /* --name: the metrics' store label */
	bool json;              /* --json: the report on stdout */
};

/* Write every output asked for; a failure is one line and exit 2 (the
 * report file is never left half-written). `cmd` names the subcommand. */
void scrub_out_write(const char *cmd, const struct scrub_out *o, cJSON *doc);

/* Before the scrub: every output's directory exists and is writable and
 * (with `store`) is outside the store, so a long scrub does not end in an
 * exit 2 that hides its verdict.  A failure is one line and exit 2. */
void scrub_out_check(const char *cmd, const struct scrub_out *o, const char *store);

/* The number of damage events in a report's events array, and by kind. */
unsigned long long scrub_out_count(const cJSON *doc, unsigned long long by_kind[VBFS_EV_COUNT]);

#endif
