/*
 * metrics.c - Prometheus text format for the drills; see metrics.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "metrics.h"

static void put(struct metrics *m, const char *s, size_t n)
{
	if (m->nomem)
		return;
	if (m->len + n + 1 > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;
		while (cap < m->len + n + 1)
			cap *= 2;
		char *nb = realloc(m->buf, cap);
		if (!nb) {
			m->nomem = true;
			return;
		}
		m->buf = nb;
		m->cap = cap;
	}
	memcpy(m->buf + m->len, s, n);
	m->len += n;
	m->buf[m->len] = '\0';
}

static void puts_(struct metrics *m, const char *s)
{
	put(m, s, strlen(s));
}

static void putf(struct metrics *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void putf(struct metrics *m, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		put(m, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

void metrics_family(struct metrics *m, const char *name, const char *type,
		    const char *help)
{
	puts_(m, "# HELP ");
	puts_(m, name);
	puts_(m, " ");
	puts_(m, help);           /* our own constant text: no \ or newline */
	puts_(m, "\n# TYPE ");
	puts_(m, name);
	puts_(m, " ");
	puts_(m, type);
	puts_(m, "\n");
}

static void put_label_value(struct metrics *m, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			puts_(m, "\\\\");
		else if (*v == '"')
			puts_(m, "\\\"");
		else if (*v == '\n')
			puts_(m, "\\n");
		else
			put(m, v, 1);
	}
}

static void put_value(struct metrics *m, double v)
{
	if (isnan(v))
		puts_(m, "NaN");
	else if (isinf(v))
		puts_(m, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		putf(m, "%.0f", v);
	else
		putf(m, "%.6f", v);
}

void metrics_sample(struct metrics *m, const char *name,
		    const char *const *labels, double value)
{
	puts_(m, name);
	if (labels && labels[0]) {
		puts_(m, "{");
		for (size_t i = 0; labels[i] && labels[i + 1]; i += 2) {
			if (i)
				puts_(m, ",");
			puts_(m, labels[i]);
			puts_(m, "=\"");
			put_label_value(m, labels[i + 1]);
			puts_(m, "\"");
		}
		puts_(m, "}");
	}
	puts_(m, " ");
	put_value(m, value);
	puts_(m, "\n");
}

void metrics_free(struct metrics *m)
{
	free(m->buf);
	memset(m, 0, sizeof *m);
}

vbfs_err metrics_write_atomic(const char *path, const struct metrics *m,
			      char why[VBFS_WHY_LEN])
{
	if (m->nomem) {
		vbfs_whyf(why, "%s: out of memory", path);
		return VBFS_ERR_NOMEM;
	}
	return vbfs_write_file_atomic(path, m->buf ? m->buf : "", m->len, 0644, why);
}

/* Does `line` hold `name{...store="STORE"...} VALUE`?  Exact label match
 * after unescaping. */
static bool match_sample(const char *line, const char *name, const char *store,
			 double *out)
{
	size_t nl = strlen(name);
	if (strncmp(line, name, nl) || line[nl] != '{')
		return false;
	const char *p = strstr(line + nl, "store=\"");
	if (!p)
		return false;
	p += 7;
	const char *s = store;
	while (*p && *p != '"') {
		char c = *p++;
		if (c == '\\' && *p) {
			c = *p++;
			if (c == 'n')
				c = '\n';
		}
		if (*s++ != c)
			return false;
	}
	if (*p != '"' || *s)
		return false;
	const char *close = strchr(p, '}');
	if (!close)
		return false;
	char *end;
	double v = strtod(close + 1, &end);
	if (end == close + 1)
		return false;
	*out = v;
	return true;
}

bool metrics_read_value(const char *path, const char *name, const char *store,
			double *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	char *line = NULL;
	size_t cap = 0;
	bool found = false;
	while (!found && getline(&line, &cap, f) >= 0)
		found = match_sample(line, name, store, out);
	free(line);
	fclose(f);
	return found;
}

void metrics_drill(struct metrics *m, const struct drill_metrics *d)
{
	static const char *const phases[3] = { "mount", "restore", "validate" };
	const char *const st[] = { "store", d->store, NULL };

	metrics_family(m, M_FAILED, "gauge",
		       "1 when the last drill did not meet its objective: missed, failed or damaged.");
	metrics_sample(m, M_FAILED, st, d->failed);
	metrics_family(m, M_VERDICT, "gauge",
		       "The last drill's verdict: 1 for the one that applies (met, missed, failed, damaged).");
	for (int v = 0; v < HIST_NVERDICTS; v++) {
		const char *const l[] = { "store", d->store, "verdict", hist_verdict_names[v], NULL };
		metrics_sample(m, M_VERDICT, l, v == d->verdict);
	}
	metrics_family(m, M_CHECKSUM_FAIL, "gauge",
		       "Damage events (corrupt, missing, unreadable, changed) in the last drill.");
	metrics_sample(m, M_CHECKSUM_FAIL, st, (double)d->checksum_failures);
	metrics_family(m, M_LAST_SUCCESS, "gauge",
		       "Unix time of the last drill that met its RTO with no damage; 0 if none.");
	metrics_sample(m, M_LAST_SUCCESS, st, (double)d->last_success);
	metrics_family(m, M_LAST_RUN, "gauge", "Unix time of the last drill.");
	metrics_sample(m, M_LAST_RUN, st, (double)d->last_run);
	metrics_family(m, M_DURATION, "gauge",
		       "Total seconds of the last drill (mount + restore + validate).");
	metrics_sample(m, M_DURATION, st, d->duration);
	metrics_family(m, M_TARGET, "gauge", "The recovery time objective in seconds.");
	metrics_sample(m, M_TARGET, st, d->target);
	metrics_family(m, M_PHASE, "gauge", "Seconds per phase of the last drill.");
	for (int i = 0; i < 3; i++) {
		const char *const l[] = { "store", d->store, "phase", phases[i], NULL };
		metrics_sample(m, M_PHASE, l, d->has_phase[i] ? d->phase[i] : 0);
	}
	metrics_family(m, M_BLOCKS, "counter",
		       "Blocks verified by the drill's vbfs mount.");
	metrics_sample(m, M_BLOCKS, st, (double)d->blocks_verified);
	metrics_family(m, M_BYTES, "counter", "Bytes verified by the drill's vbfs mount.");
	metrics_sample(m, M_BYTES, st, (double)d->bytes_verified);
	metrics_family(m, M_EVENTS, "counter",
		       "Events logged by the drill's vbfs mount, by kind.");
	for (int k = 0; k < VBFS_EV_COUNT; k++) {
		const char *const l[] = { "store", d->store, "event", vbfs_event_kind_name((enum vbfs_event_kind)k), NULL };
		metrics_sample(m, M_EVENTS, l, (double)d->events[k]);
	}
}

/* A scrub writes the same series as a drill where they mean the same thing
 * (failed, checksum failures, last success, last run), so one alert rule
 * covers both; the lines look alike but each help text says whose run it
 * is.  Only the values and the scrub's own series differ. */
void metrics_scrub(struct metrics *m, const struct scrub_metrics *d)
{
	const char *const st[] = { "store", d->store, d->shard ? "shard" : NULL, d->shard, NULL };

	metrics_family(m, M_FAILED, "gauge", "1 when the last scrub found damage.");
	metrics_sample(m, M_FAILED, st, d->failed);
	metrics_family(m, M_CHECKSUM_FAIL, "gauge",
		       "Damage events (corrupt, missing, unreadable, changed) in the last scrub.");
	metrics_sample(m, M_CHECKSUM_FAIL, st, (double)d->checksum_failures);
	metrics_family(m, M_LAST_SUCCESS, "gauge",
		       "Unix time of the last complete scrub with no damage; 0 if none.");
	metrics_sample(m, M_LAST_SUCCESS, st, (double)d->last_success);
	metrics_family(m, M_LAST_RUN, "gauge", "Unix time of the last scrub.");
	metrics_sample(m, M_LAST_RUN, st, (double)d->last_run);
	metrics_family(m, M_SCRUB_SECONDS, "gauge", "Seconds the last scrub took.");
	metrics_sample(m, M_SCRUB_SECONDS, st, d->seconds);
	metrics_family(m, M_SCRUB_COMPLETE, "gauge",
		       "1 when the last scrub checked every block it planned (0: stopped by its time budget).");
	metrics_sample(m, M_SCRUB_COMPLETE, st, d->complete);
	metrics_family(m, M_BLOCKS, "counter", "Blocks verified by the scrub.");
	metrics_sample(m, M_BLOCKS, st, (double)d->blocks_verified);
	metrics_family(m, M_BYTES, "counter", "Bytes verified by the scrub.");
	metrics_sample(m, M_BYTES, st, (double)d->bytes_verified);
	metrics_family(m, M_EVENTS, "counter", "Events found by the scrub, by kind.");
	for (int k = 0; k < VBFS_EV_COUNT; k++) {
		const char *kind = vbfs_event_kind_name((enum vbfs_event_kind)k);
		const char *const l[] = { "store", d->store, "event", kind,
					  d->shard ? "shard" : NULL, d->shard, NULL };
		metrics_sample(m, M_EVENTS, l, (double)d->events[k]);
	}
}
