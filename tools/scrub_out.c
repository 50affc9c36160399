/*
 * scrub_out.c - a scrub report to its outputs; see scrub_out.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "heal.h"
#include "history.h"
#include "metrics.h"
#include "report.h"
#include "tool.h"
#include "scrub_out.h"

static const cJSON *item(const cJSON *o, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(o, key);
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *x = item(o, key);
	return cJSON_IsNumber(x) ? x->valuedouble : 0;
}

/* One output file: its directory exists and is writable, and (when the
 * store is known) it is not inside the store. */
static void check_one(const char *cmd, const char *what, const char *path, const char *store)
{
	if (!path)
		return;
	if (store)
		tool_require_outside(cmd, what, path, store);
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	const char *d = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
	struct stat st;
	int err = stat(d, &st) < 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR
		: access(d, W_OK) < 0 ? errno : 0;
	free(dir);
	if (err)
		tool_die("%s: %s %s: %s", cmd, what, path, strerror(err));
}

void scrub_out_check(const char *cmd, const struct scrub_out *o, const char *store)
{
	check_one(cmd, "report", o->report, store);
	check_one(cmd, "metrics", o->metrics, store);
	check_one(cmd, "history", o->history, store);
}

unsigned long long scrub_out_count(const cJSON *doc, unsigned long long by_kind[VBFS_EV_COUNT])
{
	unsigned long long damage = 0;
	const cJSON *ev;
	memset(by_kind, 0, VBFS_EV_COUNT * sizeof *by_kind);
	cJSON_ArrayForEach(ev, item(doc, "events")) {
		const cJSON *kind = item(ev, "event");
		for (int k = 0; cJSON_IsString(kind) && k < VBFS_EV_COUNT; k++)
			if (!strcmp(kind->valuestring, vbfs_event_kind_name((enum vbfs_event_kind)k))) {
				by_kind[k]++;
				damage += vbfs_event_is_damage((enum vbfs_event_kind)k);
			}
	}
	return damage;
}

static void write_metrics(const char *cmd, const struct scrub_out *o, const cJSON *doc)
{
	unsigned long long by_kind[VBFS_EV_COUNT];
	const cJSON *store = item(doc, "store"), *sh = item(doc, "shard");
	char shard[32], why[VBFS_WHY_LEN];
	struct scrub_metrics d = {
		.store = o->name ? o->name : cJSON_IsString(store) ? store->valuestring : "",
		.complete = cJSON_IsTrue(item(doc, "complete")),
		.last_run = vbfs_now(),
		.seconds = num(doc, "seconds"),
		.blocks_verified = (uint64_t)num(doc, "blocks"),
		.bytes_verified = (uint64_t)num(doc, "bytes"),
	};
	d.checksum_failures = scrub_out_count(doc, by_kind);
	for (int k = 0; k < VBFS_EV_COUNT; k++)
		d.events[k] = by_kind[k];
	d.failed = d.checksum_failures > 0;
	if (num(sh, "n") > 1) {
		snprintf(shard, sizeof shard, "%.0f/%.0f", num(sh, "k"), num(sh, "n"));
		d.shard = shard;
	}
	/* Success is a complete scrub without damage; otherwise keep the last. */
	double old = 0;
	if (!d.failed && d.complete)
		d.last_success = d.last_run;
	else if (metrics_read_value(o->metrics, M_LAST_SUCCESS, d.store, &old))
		d.last_success = (int64_t)old;
	struct metrics m = { 0 };
	metrics_scrub(&m, &d);
	vbfs_err err = metrics_write_atomic(o->metrics, &m, why);
	metrics_free(&m);
	if (err)
		tool_die("%s: metrics %s", cmd, why);
}

/* One history line: the report's verdict without the events themselves. */
static void write_history(const char *cmd, const struct scrub_out *o, const cJSON *doc)
{
	static const char *const keys[] = { "time", "store", "ok", "complete", "shard", "merged",
		"files", "blocks", "bytes", "seconds", "damage_events", "root", "pass" };
	char why[VBFS_WHY_LEN];
	cJSON *line = cJSON_CreateObject();
	cJSON_AddStringToObject(line, "kind", "verify");
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		const cJSON *v = item(doc, keys[i]);
		if (v)
			cJSON_AddItemToObject(line, keys[i], cJSON_Duplicate(v, true));
	}
	char *text = cJSON_PrintUnformatted(line);
	cJSON_Delete(line);
	if (!text)
		tool_die("out of memory");
	vbfs_err err = history_append(o->history, text, why);
	free(text);
	if (err)
		tool_die("%s: history %s", cmd, why);
}

void scrub_out_write(const char *cmd, const struct scrub_out *o, cJSON *doc)
{
	char why[VBFS_WHY_LEN];
	unsigned long long by_kind[VBFS_EV_COUNT];
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "damage_events");
	cJSON_AddNumberToObject(doc, "damage_events", (double)scrub_out_count(doc, by_kind));
	char *text = vbfs_report_text(doc, o->sign_key, why);
	if (!text)
		tool_die("%s: report: %s", cmd, why);
	if (o->report && vbfs_write_file_atomic(o->report, text, strlen(text), 0644, why))
		tool_die("%s: report %s", cmd, why);
	if (o->metrics)
		write_metrics(cmd, o, doc);
	if (o->history)
		write_history(cmd, o, doc);
	if (o->json) {
		fputs(text, stdout);
		fflush(stdout);
		tool_json_printed();
	}
	free(text);
}
