/*
 * test_history.c - the drill history (tools/history.c): parsing, appending,
 * and the trend arithmetic of `vbfsctl rto --trend` on known histories.
 *
 * history.c depends only on libc, cJSON and vbfs.h, so it is compiled into
 * this test directly (unit tests link libvbfs only).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "history.h"

static char dir[4096];

static const char *write_file(const char *name, const char *text)
{
	static char path[4200];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_time(void)
{
	CHECK(hist_parse_time("1970-01-01T00:00:00Z") == 0);
	CHECK(hist_parse_time("2026-11-26T14:37:25Z") == 1795703845);
	CHECK(hist_parse_time("2026-11-26T15:37:25+01:00") == 1795703845);
	CHECK(hist_parse_time("2026-11-26T14:37:25.250Z") == 1795703845);
	CHECK(hist_parse_time("2024-02-29T23:59:59Z") == 1709251199);
	CHECK(hist_parse_time("2026-13-01T00:00:00Z") == -1);
	CHECK(hist_parse_time("yesterday") == -1);
	CHECK(hist_parse_time("2026-11-26T14:37:25") == -1);     /* no zone: ambiguous */
	CHECK(hist_parse_time(NULL) == -1);
}

/* Four met runs getting slower by exactly 2 s per run. */
static void test_slower(void)
{
	const char *p = write_file("slower.jsonl",
		"{\"ok\":true,\"met\":true,\"store\":\"db\",\"target_seconds\":20,\"total_seconds\":10,"
		"\"phases\":{\"mount\":1,\"restore\":8,\"validate\":1},\"events\":0,\"time\":\"2026-11-20T03:00:00Z\"}\n"
		"{\"ok\":true,\"met\":true,\"store\":\"db\",\"target_seconds\":20,\"total_seconds\":12,"
		"\"phases\":{\"mount\":1,\"restore\":10,\"validate\":1},\"events\":0,\"time\":\"2026-11-21T03:00:00Z\"}\n"
		"\n"
		"{\"ok\":true,\"met\":true,\"store\":\"db\",\"target_seconds\":20,\"total_seconds\":14,"
		"\"phases\":{\"mount\":1,\"restore\":12,\"validate\":1},\"events\":0,\"time\":\"2026-11-22T03:00:00Z\"}\n"
		"{\"ok\":true,\"met\":true,\"store\":\"db\",\"target_seconds\":20,\"total_seconds\":16,"
		"\"phases\":{\"mount\":1,\"restore\":14,\"validate\":1},\"events\":0,\"time\":\"2026-11-23T03:00:00Z\"}\n");
	struct history h;
	char why[VBFS_WHY_LEN];
	CHECK(history_load(p, &h, why) == VBFS_OK);
	CHECK(h.n == 4);
	CHECK(h.skipped == 0);
	struct hist_trend t;
	history_trend(&h, &t);
	CHECK(t.runs == 4);
	CHECK(t.met == 4);
	CHECK_NEAR(t.success_rate, 1.0);
	CHECK_NEAR(t.mean[HIST_MOUNT], 1.0);
	CHECK_NEAR(t.mean[HIST_RESTORE], 11.0);
	CHECK_NEAR(t.mean[HIST_VALIDATE], 1.0);
	CHECK(t.slowest == HIST_RESTORE);
	CHECK_NEAR(t.mean_total, 13.0);
	CHECK_NEAR(t.min_total, 10.0);
	CHECK_NEAR(t.max_total, 16.0);
	CHECK_NEAR(t.slope_per_run, 2.0);
	CHECK_NEAR(t.change, 2.0 * 3 / 13);
	CHECK_STREQ(t.direction, "slower");
	CHECK(t.last_success == hist_parse_time("2026-11-23T03:00:00Z"));
	/* (20 - 16) / 2 = 2 runs left before the target is missed. */
	CHECK_STREQ(t.recommendation, "RTO met so far, but restores get slower by 2.0 s per run: "
		  "at this rate the 20 s target is missed in about 2 runs");
	history_free(&h);
}

/* Mixed: a failed restore, a damaged run, a torn last line, no mount phase. */
static void test_mixed(void)
{
	const char *p = write_file("mixed.jsonl",
		"{\"met\":true,\"store\":\"s\",\"target_seconds\":60,\"total_seconds\":30,"
		"\"phases\":{\"restore\":20,\"validate\":10},\"events\":0,\"time\":\"2026-11-20T03:00:00Z\"}\n"
		"{\"met\":false,\"store\":\"s\",\"target_seconds\":60,\"total_seconds\":5,"
		"\"phases\":{\"restore\":5},\"events\":0,\"failed_phase\":\"restore\","
		"\"reason\":\"restore command failed (exit 3)\",\"time\":\"2026-11-21T03:00:00Z\"}\n"
		"{\"met\":false,\"store\":\"s\",\"target_seconds\":60,\"total_seconds\":25,"
		"\"phases\":{\"restore\":20,\"validate\":5},\"events\":2,\"time\":\"2026-11-22T03:00:00Z\"}\n"
		"not json at all\n"
		"{\"met\":true,\"store\":\"s\",\"target_seconds\":60,\"total_sec");
	struct history h;
	char why[VBFS_WHY_LEN];
	CHECK(history_load(p, &h, why) == VBFS_OK);
	CHECK(h.n == 3);
	CHECK(h.skipped == 2);
	CHECK(h.first_skipped_line == 4);
	CHECK_STREQ(h.runs[1].failed_phase, "restore");
	CHECK_STREQ(h.runs[1].reason, "restore command failed (exit 3)");
	CHECK(h.runs[2].events == 2);
	CHECK(!h.runs[0].has_phase[HIST_MOUNT]);
	struct hist_trend t;
	history_trend(&h, &t);
	CHECK(t.runs == 3);
	CHECK(t.met == 1);
	CHECK(t.damaged == 1);
	CHECK_NEAR(t.success_rate, 1.0 / 3);
	/* Times over the 2 completed runs: the restore that failed after 5 s
	 * is not a fast restore. */
	CHECK(t.completed == 2);
	CHECK(t.count[HIST_MOUNT] == 0);
	CHECK(t.count[HIST_RESTORE] == 2);
	CHECK(t.count[HIST_VALIDATE] == 2);
	CHECK_NEAR(t.mean[HIST_RESTORE], 20.0);
	CHECK_NEAR(t.mean[HIST_VALIDATE], 7.5);
	CHECK(t.slowest == HIST_RESTORE);
	CHECK_NEAR(t.mean_total, 27.5);
	CHECK_NEAR(t.min_total, 25.0);
	CHECK_NEAR(t.max_total, 30.0);
	CHECK_NEAR(t.slope_per_run, -5.0);      /* 30 then 25 */
	CHECK_NEAR(t.change, -5.0 / 27.5);
	CHECK_STREQ(t.direction, "faster");
	CHECK(t.last_success == hist_parse_time("2026-11-20T03:00:00Z"));
	CHECK_STREQ(t.recommendation, "The last run found 2 damage events: scrub the store with "
		  "'vbfsctl verify' and replace the damaged files from another copy");
	history_free(&h);
}

static void test_recommendations(void)
{
	/* A run over the target with no failure: optimize the slowest phase. */
	const char *p = write_file("slow.jsonl",
		"{\"met\":false,\"store\":\"s\",\"target_seconds\":10,\"total_seconds\":12,"
		"\"phases\":{\"mount\":2,\"restore\":9,\"validate\":1},\"events\":0,\"time\":\"2026-11-20T03:00:00Z\"}\n"
		"{\"met\":true,\"store\":\"s\",\"target_seconds\":10,\"total_seconds\":8,"
		"\"phases\":{\"mount\":2,\"restore\":5,\"validate\":1},\"events\":0,\"time\":\"2026-11-21T03:00:00Z\"}\n");
	struct history h;
	char why[VBFS_WHY_LEN];
	struct hist_trend t;
	CHECK(history_load(p, &h, why) == VBFS_OK);
	history_trend(&h, &t);
	CHECK_STREQ(t.recommendation, "Optimize the restore phase (mean 7.0 s) to improve RTO");
	CHECK_STREQ(t.direction, "faster");
	history_free(&h);

	p = write_file("fail.jsonl",
		"{\"met\":false,\"store\":\"s\",\"target_seconds\":10,\"total_seconds\":1,"
		"\"phases\":{\"mount\":1},\"events\":0,\"failed_phase\":\"mount\",\"time\":\"2026-11-20T03:00:00Z\"}\n");
	CHECK(history_load(p, &h, why) == VBFS_OK);
	history_trend(&h, &t);
	CHECK_STREQ(t.recommendation, "The last run failed in the mount phase: read that "
		  "command's output and fix it before tuning speed");
	CHECK_STREQ(t.direction, "steady");
	CHECK(t.last_success == 0);
	history_free(&h);

	p = write_file("steady.jsonl",
		"{\"met\":true,\"store\":\"s\",\"target_seconds\":100,\"total_seconds\":50,\"events\":0,\"time\":\"2026-11-20T03:00:00Z\"}\n"
		"{\"met\":true,\"store\":\"s\",\"target_seconds\":100,\"total_seconds\":51,\"events\":0,\"time\":\"2026-11-21T03:00:00Z\"}\n"
		"{\"met\":true,\"store\":\"s\",\"target_seconds\":100,\"total_seconds\":50,\"events\":0,\"time\":\"2026-11-22T03:00:00Z\"}\n");
	CHECK(history_load(p, &h, why) == VBFS_OK);
	history_trend(&h, &t);
	CHECK_NEAR(t.slope_per_run, 0.0);
	CHECK_STREQ(t.direction, "steady");
	CHECK(t.slowest == -1);
	CHECK_STREQ(t.recommendation, "RTO targets met consistently");
	history_free(&h);

	/* No runs at all. */
	p = write_file("empty.jsonl", "");
	CHECK(history_load(p, &h, why) == VBFS_OK);
	history_trend(&h, &t);
	CHECK(t.runs == 0);
	CHECK_NEAR(t.success_rate, 0.0);
	CHECK_STREQ(t.recommendation, "No runs recorded yet: run 'vbfsctl rto' first");
	history_free(&h);
}

static void test_append(void)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/append.jsonl", dir);
	char why[VBFS_WHY_LEN];
	const char *a = "{\"met\":true,\"store\":\"x\",\"target_seconds\":9,\"total_seconds\":1.5,"
			"\"events\":0,\"time\":\"2026-11-26T14:37:25Z\"}";
	CHECK(history_append(path, a, why) == VBFS_OK);
	CHECK(history_append(path, a, why) == VBFS_OK);
	struct history h;
	CHECK(history_load(path, &h, why) == VBFS_OK);
	CHECK(h.n == 2);
	if (h.n == 2) {
		CHECK_NEAR(h.runs[1].total, 1.5);
		CHECK(h.runs[1].time == 1795703845);
		CHECK_STREQ(h.runs[1].store, "x");
		CHECK(h.runs[1].failed_phase == NULL);
	}
	history_free(&h);
	CHECK(history_load("/nonexistent/history.jsonl", &h, why) == VBFS_ERR_NOTFOUND);
	CHECK(history_append("/nonexistent/dir/h.jsonl", a, why) == VBFS_ERR_IO);
	CHECK(strstr(why, "No such file") != NULL);
}

/* The verdict of a line: its own "verdict" when the line bears it out,
 * else judged from met, events, failed_phase, reason and the times. */
static enum hist_verdict verdict_of(const char *line)
{
	struct hist_run r;
	if (history_parse_line(line, strlen(line), &r) != VBFS_OK)
		return HIST_NVERDICTS;
	enum hist_verdict v = r.verdict;
	CHECK(r.met == (v == HIST_MET));
	hist_run_free(&r);
	return v;
}

static void test_verdicts(void)
{
	CHECK(hist_verdict_decide(false, false, false) == HIST_MET);
	CHECK(hist_verdict_decide(false, false, true) == HIST_MISSED);
	CHECK(hist_verdict_decide(false, true, true) == HIST_FAILED);
	CHECK(hist_verdict_decide(true, true, true) == HIST_DAMAGED);
	CHECK(!strcmp(hist_verdict_names[HIST_MISSED], "missed"));
#define RUN(extra) "{\"total_seconds\":40,\"target_seconds\":100,\"time\":\"2026-11-20T03:00:00Z\"" extra "}"
	/* lines from before "verdict" */
	CHECK(verdict_of(RUN(",\"met\":true")) == HIST_MET);
	CHECK(verdict_of("{\"total_seconds\":40,\"target_seconds\":10,\"met\":false,"
			 "\"time\":\"2026-11-20T03:00:00Z\"}") == HIST_MISSED);
	CHECK(verdict_of(RUN(",\"met\":false,\"failed_phase\":\"restore\"")) == HIST_FAILED);
	CHECK(verdict_of(RUN(",\"met\":false,\"reason\":\"cannot vouch\"")) == HIST_FAILED);
	CHECK(verdict_of(RUN(",\"met\":false")) == HIST_FAILED);   /* not met, not slow: something failed */
	CHECK(verdict_of(RUN(",\"met\":false,\"events\":2,\"failed_phase\":\"restore\"")) == HIST_DAMAGED);
	/* lines with "verdict": believed unless the line says otherwise */
	CHECK(verdict_of(RUN(",\"met\":false,\"verdict\":\"missed\"")) == HIST_MISSED);
	CHECK(verdict_of(RUN(",\"met\":true,\"verdict\":\"met\"")) == HIST_MET);
	CHECK(verdict_of(RUN(",\"met\":false,\"verdict\":\"met\"")) == HIST_FAILED);
	CHECK(verdict_of(RUN(",\"met\":true,\"verdict\":\"met\",\"events\":1")) == HIST_DAMAGED);
	CHECK(verdict_of(RUN(",\"met\":true,\"verdict\":\"missed\",\"events\":3")) == HIST_DAMAGED);
	CHECK(verdict_of(RUN(",\"met\":true,\"verdict\":\"splendid\"")) == HIST_FAILED);
#undef RUN
}

int main(void)
{
	char *tmp = check_tmpdir("test_history");
	snprintf(dir, sizeof dir, "%s", tmp);
	test_time();
	test_slower();
	test_mixed();
	test_recommendations();
	test_append();
	test_verdicts();
	check_rmtree(tmp);
	free(tmp);
	return check_done("test_history");
}
