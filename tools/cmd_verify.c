/*
 * cmd_verify.c - `vbfsctl verify STORE INDEX`: scrub without mounting
 * (manifest/scrub.c, which calls the same vbfs_block_verify as the mount).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "heal.h"

static const char usage_text[] =
	"usage: vbfsctl verify STORE INDEX [--jobs N] [--verify-key PUB]\n"
	"                      [--replica DIR]... [--parity DIR] [--json]\n"
	"\n"
	"Check every block of every indexed file in STORE against INDEX, on all\n"
	"cores, without mounting.  Each finding is one line on stderr (path,\n"
	"block, byte offset, expected and actual digest).\n"
	"\n"
	"  --jobs N            threads (default: all cores)\n"
	"  --verify-key PUB    refuse an index not signed by this Ed25519 key\n"
	"  --replica DIR       another copy of the store (repeatable): say for each\n"
	"                      damaged block whether it can be repaired from it\n"
	"  --parity DIR        parity written by 'vbfsctl build --parity': the same\n"
	"                      (every source's bytes must match the index digest)\n"
	"  --json              one JSON document on stdout: ok, files, blocks,\n"
	"                      bytes, seconds, events (with sources: healed,\n"
	"                      repairable, unrecoverable; per event repairable, source)\n"
	"\n"
	"Exit status: 0 all verified, 1 damage found, 2 usage or operational error\n"
	"(including a damaged index: root digest mismatch).\n";

struct found {
	char *json;     /* the event's JSON text */
	char *path;
	int64_t block;
	size_t seq;     /* arrival order: a block's damage before its healed */
};

struct verify_ui {
	struct found *v;
	size_t n, cap;
	struct tool_progress progress;
};

static void on_event(void *ctx, const struct vbfs_event *ev)
{
	struct verify_ui *ui = ctx;
	if (ui->n == ui->cap) {
		ui->cap = ui->cap ? 2 * ui->cap : 64;
		struct found *nv = realloc(ui->v, ui->cap * sizeof *nv);
		if (!nv) tool_die("out of memory");
		ui->v = nv;
	}
	struct found *f = &ui->v[ui->n++];
	f->json = vbfs_event_json(ev);
	f->path = strndup(ev->path, ev->path_len);
	f->block = ev->block;
	f->seq = ui->n - 1;
	if (!f->json || !f->path) tool_die("out of memory");
	tool_progress_done(&ui->progress);
	tool_print_event(stderr, ev);
}

/* Report in (path, block) order: threads find things in any order. */
static int by_path_block(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	int c = strcmp(x->path, y->path);
	if (!c)
		c = (x->block > y->block) - (x->block < y->block);
	return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "jobs", required_argument, NULL, 'j' },
		{ "verify-key", required_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'J' },
		{ "replica", required_argument, NULL, 'r' },
		{ "parity", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct vbfs_scrub_opts o = { 0 };
	struct vbfs_scrub_result r;
	struct verify_ui ui = { 0 };
	struct tool_heal heal = { 0 };
	const char *key = NULL;
	bool json = false;
	char why[VBFS_WHY_LEN], human[32];
	vbfs_index *idx;
	int c;

	opterr = 0;   /* one line of our own, not getopt's too */
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > 64)
				tool_usage_error("verify", "--jobs %s: must be 1..64", optarg);
			o.jobs = (unsigned)n;
			break;
		}
		case 'k': key = optarg; break;
		case 'J': json = true; break;
		case 'r': tool_heal_add_replica(&heal, "verify", optarg); break;
		case 'p': tool_heal_set_parity(&heal, "verify", optarg); break;
		case 'h': fputs(usage_text, stdout); return VBFS_EXIT_OK;
		case ':': tool_usage_error("verify", "%s needs a value", argv[optind - 1]);
		default: tool_usage_error("verify", "unknown option %s", argv[optind - 1]);
		}
	}
	if (argc - optind != 2)
		tool_usage_error("verify", "needs STORE and INDEX");
	o.store = argv[optind];
	tool_require_dir("store", o.store);
	vbfs_err err = vbfs_index_open(argv[optind + 1], key, &idx, why);
	if (err)
		tool_die("verify: %s", why);
	o.heal = tool_heal_open(&heal, "verify", idx);
	tool_install_signals();
	tool_progress_init(&ui.progress, "verifying");
	o.index = idx;
	o.progress = tool_progress_cb;
	o.progress_ctx = &ui.progress;
	o.event = on_event;
	o.event_ctx = &ui;
	o.stop = &tool_stop;
	err = vbfs_scrub(&o, &r, why);
	tool_progress_done(&ui.progress);
	tool_heal_close(&heal);
	vbfs_index_close(idx);
	if (err)
		tool_die("verify: %s", why[0] ? why : vbfs_strerror(err));

	if (ui.n)   /* qsort(NULL, 0) is undefined */
		qsort(ui.v, ui.n, sizeof *ui.v, by_path_block);
	fprintf(stderr, "%s: %llu files, %llu blocks, %s verified in %.2f s (%.0f MB/s): %llu damage event%s\n",
		r.damage_events ? "FAIL" : "OK", (unsigned long long)r.files,
		(unsigned long long)r.blocks, tool_human_bytes((double)r.bytes, human), r.seconds,
		r.seconds > 0 ? r.bytes / r.seconds / 1e6 : 0.0,
		(unsigned long long)r.damage_events, r.damage_events == 1 ? "" : "s");
	if (o.heal)   /* the ZFS-like line: what a repair could do */
		fprintf(stderr, "%llu blocks damaged, %llu repairable, %llu unrecoverable\n",
			(unsigned long long)r.blocks_damaged, (unsigned long long)r.blocks_repairable,
			(unsigned long long)(r.blocks_damaged - r.blocks_repairable));
	if (json) {
		cJSON *doc = cJSON_CreateObject(), *events = cJSON_CreateArray();
		cJSON_AddBoolToObject(doc, "ok", r.damage_events == 0);
		cJSON_AddNumberToObject(doc, "files", (double)r.files);
		cJSON_AddNumberToObject(doc, "blocks", (double)r.blocks);
		cJSON_AddNumberToObject(doc, "bytes", (double)r.bytes);
		cJSON_AddNumberToObject(doc, "seconds", r.seconds);
		if (o.heal) {
			cJSON_AddNumberToObject(doc, "healed", (double)r.events[VBFS_EV_HEALED]);
			cJSON_AddNumberToObject(doc, "damaged_blocks", (double)r.blocks_damaged);
			cJSON_AddNumberToObject(doc, "repairable", (double)r.blocks_repairable);
			cJSON_AddNumberToObject(doc, "unrecoverable",
						(double)(r.blocks_damaged - r.blocks_repairable));
		}
		for (size_t i = 0; i < ui.n; i++) {
			cJSON *ev = cJSON_Parse(ui.v[i].json);
			if (ev) cJSON_AddItemToArray(events, ev);
		}
		cJSON_AddItemToObject(doc, "events", events);
		tool_print_json(doc);
	}
	for (size_t i = 0; i < ui.n; i++) {
		free(ui.v[i].json);
		free(ui.v[i].path);
	}
	free(ui.v);
	return r.damage_events ? VBFS_EXIT_DAMAGE : VBFS_EXIT_OK;
}
