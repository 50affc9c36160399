/*
 * history.c - read and append the RTO drill history (JSON lines) and the
 * trend arithmetic over it.  See history.h for the contract.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "cjson_num.h"
#include "history.h"

const char *const hist_phase_names[HIST_NPHASES] = { "mount", "restore", "validate" };
const char *const hist_verdict_names[HIST_NVERDICTS] = { "met", "missed", "failed", "damaged" };

enum hist_verdict hist_verdict_decide(bool damaged, bool failed, bool over_target)
{
	return damaged ? HIST_DAMAGED : failed ? HIST_FAILED
	     : over_target ? HIST_MISSED : HIST_MET;
}

/* The verdict of a history line.  Lines written before "verdict" existed
 * are judged from what they hold; a "verdict" that claims more than the
 * line's own "met" (or contradicts its counts) is not believed. */
static enum hist_verdict line_verdict(const cJSON *o, const struct hist_run *r)
{
	bool met = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "met"));
	enum hist_verdict derived = met && !r->events && !r->failed_phase ? HIST_MET
		: hist_verdict_decide(r->events > 0, r->failed_phase || r->reason
				      || r->total <= r->target, r->total > r->target);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "verdict");
	if (!cJSON_IsString(v))
		return derived;
	for (int i = 0; i < HIST_NVERDICTS; i++)
		if (!strcmp(v->valuestring, hist_verdict_names[i]))
			return i == HIST_MET && derived != HIST_MET ? derived
			     : r->events && i != HIST_DAMAGED ? HIST_DAMAGED
			     : (enum hist_verdict)i;
	return derived == HIST_MET ? HIST_FAILED : derived;
}

static char *dup_str(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* timegm() without the locale/TZ games: days from civil (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int64_t hist_parse_time(const char *s)
{
	int y, mo, d, h, mi, sec, n = 0;
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	const char *p = s + n;
	if (*p == '.')                          /* fractional seconds: ignored */
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	int64_t t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400
		+ h * 3600 + mi * 60 + sec;
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		return t;
	int oh, om;
	if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &oh, &om) == 2
	    && strlen(p) == 6) {
		int64_t off = oh * 3600 + om * 60;
		return *p == '+' ? t - off : t + off;
	}
	return -1;
}

/* Seconds no drill takes (about 31,700 years): a bound, so that 1e300 is
 * not a run. */
#define HIST_SECONDS_MAX 1e12

vbfs_err history_parse_line(const char *line, size_t len, struct hist_run *r)
{
	memset(r, 0, sizeof *r);
	cJSON *o = cJSON_ParseWithLength(line, len);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return VBFS_ERR_FORMAT;
	}
	/* Every number strictly (cjson_num.h): a line with "events": -5 or
	 * "target_seconds": "1h" is not a run record (skipped and counted),
	 * rather than a run with made-up numbers. */
	const cJSON *ph = cJSON_GetObjectItemCaseSensitive(o, "phases");
	vbfs_err e = vbfs_json_real(o, "total_seconds", HIST_SECONDS_MAX, &r->total, NULL);
	vbfs_err et = vbfs_json_real(o, "target_seconds", HIST_SECONDS_MAX, &r->target, NULL);
	vbfs_err ee = vbfs_json_whole(o, "events", VBFS_JSON_WHOLE_MAX, &r->events, NULL);
	bool bad = e || (et && et != VBFS_ERR_NOTFOUND) || (ee && ee != VBFS_ERR_NOTFOUND) ||
		   (ph && !cJSON_IsObject(ph));
	for (int i = 0; i < HIST_NPHASES && !bad; i++) {
		vbfs_err ep = vbfs_json_real(ph, hist_phase_names[i], HIST_SECONDS_MAX, &r->phase[i], NULL);
		r->has_phase[i] = ep == VBFS_OK;
		bad = ep && ep != VBFS_ERR_NOTFOUND;
	}
	if (bad) {
		cJSON_Delete(o);
		memset(r, 0, sizeof *r);
		return VBFS_ERR_FORMAT;
	}

	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "time");
	r->time_str = dup_str(cJSON_IsString(t) ? t->valuestring : "");
	r->time = cJSON_IsString(t) ? hist_parse_time(t->valuestring) : -1;
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "store");
	r->store = dup_str(cJSON_IsString(st) ? st->valuestring : "");
	const cJSON *fp = cJSON_GetObjectItemCaseSensitive(o, "failed_phase");
	r->failed_phase = cJSON_IsString(fp) ? dup_str(fp->valuestring) : NULL;
	const cJSON *why = cJSON_GetObjectItemCaseSensitive(o, "reason");
	r->reason = cJSON_IsString(why) ? dup_str(why->valuestring) : NULL;

	r->verdict = line_verdict(o, r);
	r->met = r->verdict == HIST_MET;

	cJSON_Delete(o);
	if (!r->time_str || !r->store) {
		hist_run_free(r);
		return VBFS_ERR_NOMEM;
	}
	return VBFS_OK;
}

void hist_run_free(struct hist_run *r)
{
	free(r->time_str);
	free(r->store);
	free(r->failed_phase);
	free(r->reason);
	memset(r, 0, sizeof *r);
}

static vbfs_err push_run(struct history *h, struct hist_run *r)
{
	struct hist_run *nr = vbfs_grow(h->runs, &h->cap, h->n, sizeof *nr, 64);
	if (!nr)
		return VBFS_ERR_NOMEM;
	h->runs = nr;
	h->runs[h->n++] = *r;
	return VBFS_OK;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

vbfs_err history_load(const char *path, struct history *h, char why[VBFS_WHY_LEN])
{
	memset(h, 0, sizeof *h);
	/* Never through a symlink: the history may sit in a shared directory. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (!f) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		vbfs_whyf(why, "%s: %s", path, e == ELOOP
			 ? "a symbolic link (not followed)" : strerror(e));
		return e == ENOENT ? VBFS_ERR_NOTFOUND : VBFS_ERR_IO;
	}
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;
	vbfs_err err = VBFS_OK;
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (blank(line, (size_t)len))
			continue;
		struct hist_run r;
		vbfs_err e = history_parse_line(line, (size_t)len, &r);
		if (e == VBFS_ERR_FORMAT) {
			if (!h->skipped++)
				h->first_skipped_line = lineno;
			continue;
		}
		if (e == VBFS_OK)
			e = push_run(h, &r);
		if (e != VBFS_OK) {
			hist_run_free(&r);
			vbfs_whyf(why, "%s: out of memory", path);
			err = e;
			break;
		}
	}
	if (err == VBFS_OK && ferror(f)) {
		vbfs_whyf(why, "%s: %s", path, strerror(errno));
		err = VBFS_ERR_IO;
	}
	free(line);
	fclose(f);
	if (err != VBFS_OK)
		history_free(h);
	return err;
}

void history_free(struct history *h)
{
	for (size_t i = 0; i < h->n; i++)
		hist_run_free(&h->runs[i]);
	free(h->runs);
	memset(h, 0, sizeof *h);
}

vbfs_err history_append(const char *path, const char *json, char why[VBFS_WHY_LEN])
{
	size_t n = strlen(json);
	char *buf = malloc(n + 1);
	if (!buf) {
		vbfs_whyf(why, "%s: out of memory", path);
		return VBFS_ERR_NOMEM;
	}
	memcpy(buf, json, n);
	buf[n] = '\n';
	vbfs_err err = VBFS_OK;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		vbfs_whyf(why, "%s: %s", path, errno == ELOOP
			 ? "a symbolic link (not followed)" : strerror(errno));
		free(buf);
		return VBFS_ERR_IO;
	}
	/* One write: O_APPEND makes it land whole at the end, never interleaved. */
	ssize_t w = write(fd, buf, n + 1);
	if (w != (ssize_t)(n + 1)) {
		vbfs_whyf(why, "%s: %s", path,
			 w < 0 ? strerror(errno) : "short write");
		err = VBFS_ERR_IO;
	} else if (fsync(fd) != 0) {
		vbfs_whyf(why, "%s: fsync: %s", path, strerror(errno));
		err = VBFS_ERR_IO;
	}
	if (close(fd) != 0 && err == VBFS_OK) {
		vbfs_whyf(why, "%s: %s", path, strerror(errno));
		err = VBFS_ERR_IO;
	}
	free(buf);
	return err;
}

int64_t history_last_success(const struct history *h)
{
	int64_t best = 0;
	for (size_t i = 0; i < h->n; i++)
		if (h->runs[i].met && h->runs[i].time > best)
			best = h->runs[i].time;
	return best;
}

/* A run whose phases all completed: only those times say how long a
 * restore takes (a restore that failed after 4 s is not a fast restore). */
static bool completed(const struct hist_run *r)
{
	return r->failed_phase == NULL;
}

/* Least-squares slope of total_seconds over the completed runs, numbered
 * 0..m-1 in history order. */
static double slope_over_index(const struct history *h, size_t m, double ym)
{
	if (m < 2)
		return 0;
	double xm = (double)(m - 1) / 2, sxy = 0, sxx = 0;
	size_t x = 0;
	for (size_t i = 0; i < h->n; i++) {
		if (!completed(&h->runs[i]))
			continue;
		double dx = (double)x++ - xm;
		sxy += dx * (h->runs[i].total - ym);
		sxx += dx * dx;
	}
	return sxy / sxx;
}

static void recommend(const struct history *h, struct hist_trend *t)
{
	char *out = t->recommendation;
	size_t cap = sizeof t->recommendation;
	if (!t->runs) {
		snprintf(out, cap, "No runs recorded yet: run 'vbfsctl rto' first");
		return;
	}
	const struct hist_run *last = &h->runs[h->n - 1];
	if (last->events) {
		snprintf(out, cap, "The last run found %llu damage event%s: scrub the store "
			 "with 'vbfsctl verify' and replace the damaged files from another copy",
			 (unsigned long long)last->events, last->events == 1 ? "" : "s");
	} else if (last->failed_phase) {
		snprintf(out, cap, "The last run failed in the %s phase: read that "
			 "command's output and fix it before tuning speed", last->failed_phase);
	} else if (t->met < t->runs && t->slowest >= 0) {
		snprintf(out, cap, "Optimize the %s phase (mean %.1f s) to improve RTO",
			 hist_phase_names[t->slowest], t->mean[t->slowest]);
	} else if (t->slope_per_run > 0 && !strcmp(t->direction, "slower")
		   && last->target > last->total) {
		/* ceil() by hand: libvbfs tests link this file without libm. */
		double q = (last->target - last->total) / t->slope_per_run;
		double left = (double)(int64_t)q;
		if (left < q)
			left += 1;
		snprintf(out, cap, "RTO met so far, but restores get slower by %.1f s per run: "
			 "at this rate the %.0f s target is missed in about %.0f runs",
			 t->slope_per_run, last->target, left);
	} else {
		snprintf(out, cap, "RTO targets met consistently");
	}
}

void history_trend(const struct history *h, struct hist_trend *t)
{
	memset(t, 0, sizeof *t);
	t->slowest = -1;
	t->direction = "steady";
	t->runs = h->n;
	double sum = 0, sums[HIST_NPHASES] = { 0 };
	for (size_t i = 0; i < h->n; i++) {
		const struct hist_run *r = &h->runs[i];
		t->met += r->met;
		t->damaged += r->events > 0;
		t->verdicts[r->verdict]++;
		if (!completed(r))
			continue;
		sum += r->total;
		if (!t->completed++ || r->total < t->min_total)
			t->min_total = r->total;
		if (r->total > t->max_total)
			t->max_total = r->total;
		for (int p = 0; p < HIST_NPHASES; p++)
			if (r->has_phase[p]) {
				sums[p] += r->phase[p];
				t->count[p]++;
			}
	}
	if (h->n) {
		t->success_rate = (double)t->met / (double)h->n;
		t->last_target = h->runs[h->n - 1].target;
	}
	if (t->completed)
		t->mean_total = sum / (double)t->completed;
	for (int p = 0; p < HIST_NPHASES; p++) {
		if (!t->count[p])
			continue;
		t->mean[p] = sums[p] / (double)t->count[p];
		if (t->slowest < 0 || t->mean[p] > t->mean[t->slowest])
			t->slowest = p;
	}
	t->slope_per_run = slope_over_index(h, t->completed, t->mean_total);
	if (t->mean_total > 0 && t->completed >= 2) {
		t->change = t->slope_per_run * (double)(t->completed - 1) / t->mean_total;
		if (t->change >= HIST_STEADY_FRACTION)
			t->direction = "slower";
		else if (t->change <= -HIST_STEADY_FRACTION)
			t->direction = "faster";
	}
	t->last_success = history_last_success(h);
	recommend(h, t);
}
