/*
 * cmd_verify.c - `vbfsctl verify STORE INDEX`: scrub without mounting
 * (manifest/scrub.c, which calls the same vbfs_block_verify as the mount).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "heal.h"
#include "report.h"
#include "scale.h"
#include "scrub_out.h"

static const char usage_text[] =
	"usage: vbfsctl verify STORE INDEX [--jobs N] [--verify-key PUB]\n"
	"                      [--replica DIR]... [--parity DIR] [--json]\n"
	"                      [--shard K/N|/N|auto] [--max-duration DURATION]\n"
	"                      [--resume STATE] [--errors-only REPORT] [--report FILE]\n"
	"                      [--sign-key KEY] [--metrics FILE] [--history FILE] [--name NAME]\n"
	"                      [--expect-backup-id ID] [--max-age DURATION]\n"
	"                      [--allow-store-mismatch]\n"
	"\n"
	"Check every block of every indexed file in STORE against INDEX, on all\n"
	"cores, without mounting.  Each finding is one line on stderr (path,\n"
	"block, byte offset, expected and actual digest).\n"
	"\n"
	"  --jobs N            threads (default: all cores)\n"
	"  --verify-key PUB    refuse an index not signed by this Ed25519 key\n"
	"                      (with --errors-only: also a report not signed by it)\n"
	TOOL_EXPECT_HELP
	"  --allow-store-mismatch  check even when fewer than half of the index's\n"
	"                      top-level entries are in STORE (normally exit 2: the\n"
	"                      index is not for this store); for a store that really\n"
	"                      lost most of its files\n"
	"  --replica DIR       another copy of the store (repeatable): say for each\n"
	"                      damaged block whether it can be repaired from it\n"
	"  --parity DIR        parity written by 'vbfsctl build --parity': the same\n"
	"                      (every source's bytes must match the index digest)\n"
	"  --json              one JSON document on stdout: ok, files, blocks,\n"
	"                      bytes, seconds, events (with sources: healed,\n"
	"                      repairable, unrecoverable; per event repairable, source),\n"
	"                      shard, root, complete\n"
	"\n"
	"Scale-out (doc/scale-out.md):\n"
	"  --shard K/N         check shard K of N (0 <= K < N): the index's blocks split\n"
	"                      by bytes at block boundaries, the same split every run;\n"
	"                      N shards together check every block once.  /N or auto:\n"
	"                      K from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or\n"
	"                      SLURM_ARRAY_TASK_ID (Slurm array); auto: N from\n"
	"                      VBFS_SHARDS or SLURM_ARRAY_TASK_COUNT.  VBFS_SHARDS set\n"
	"                      without --shard means auto.\n"
	"  --max-duration D    stop cleanly after D (90s, 45m, 1h30m); the report says\n"
	"                      complete: false\n"
	"  --resume STATE      carry the pass across runs in STATE (kept apart from the\n"
	"                      index): continue where the last run stopped; after a\n"
	"                      complete pass, start a new one\n"
	"  --errors-only REPORT  check again only what REPORT found damaged\n"
	"  --report FILE       write the --json document to FILE (atomically)\n"
	"  --sign-key KEY      sign the report with this Ed25519 secret key\n"
	"  --metrics FILE      Prometheus text (node_exporter textfile collector)\n"
	"  --history FILE      append the verdict as one JSON line\n"
	"  --name NAME         the metrics' store label (default: STORE)\n"
	"\n"
	"Exit status: 0 all verified (with --max-duration: nothing found so far),\n"
	"1 damage found, 2 usage or operational error (including a damaged index:\n"
	"root digest mismatch, and a time budget that ran out before any block\n"
	"was checked).\n";

struct found {
	cJSON *obj;     /* the event as its JSON object (time of the finding) */
	char *human;    /* its line for stderr, printed in (path, block) order */
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
	struct found *nv = vbfs_grow(ui->v, &ui->cap, ui->n, sizeof *nv, 64);
	if (!nv) tool_die("out of memory");
	ui->v = nv;
	struct found *f = &ui->v[ui->n++];
	f->obj = vbfs_event_object(ev);
	f->path = strndup(ev->path, ev->path_len);
	f->block = ev->block;
	f->seq = ui->n - 1;
	size_t len;
	FILE *m = open_memstream(&f->human, &len);
	if (m) {
		tool_print_event(m, ev);
		fclose(m);
	}
	if (!f->obj || !f->path || !m || !f->human) tool_die("out of memory");
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

/* The human lines on stderr: findings in (path, block) order, the verdict,
 * what a repair could do, where a resumed pass stands. */
static void print_summary(const struct vbfs_scrub_result *r, const struct verify_ui *ui,
			  const struct vbfs_scrub_opts *o, const struct vbfs_shard *shard,
			  const char *shard_source)
{
	char human[32];
	if (shard->n)
		fprintf(stderr, "verify: shard %u/%u (%s)\n", shard->k, shard->n, shard_source);
	for (size_t i = 0; i < ui->n; i++)   /* the same order as the JSON's events */
		fputs(ui->v[i].human, stderr);
	fprintf(stderr, "%s: %llu files, %llu blocks, %s verified in %.2f s (%.0f MB/s): %llu damage event%s\n",
		r->damage_events ? "FAIL" : r->complete ? "OK" : "PARTIAL", (unsigned long long)r->files,
		(unsigned long long)r->blocks, tool_human_bytes((double)r->bytes, human), r->seconds,
		r->seconds > 0 ? r->run_bytes / r->seconds / 1e6 : 0.0,
		(unsigned long long)r->damage_events, r->damage_events == 1 ? "" : "s");
	if (o->heal)   /* the ZFS-like line: what a repair could do */
		fprintf(stderr, "%llu blocks damaged, %llu repairable, %llu unrecoverable\n",
			(unsigned long long)r->blocks_damaged, (unsigned long long)r->blocks_repairable,
			(unsigned long long)(r->blocks_damaged - r->blocks_repairable));
	if (o->resume && r->complete)
		fprintf(stderr, "verify: pass %u complete after %u run%s; the next run starts pass %u\n",
			r->pass, r->runs, r->runs == 1 ? "" : "s", r->pass + 1);
	else if (o->resume)
		fprintf(stderr, "verify: pass %u, run %u: %.1f%% of the pass verified (%llu of %llu blocks)\n",
			r->pass, r->runs, r->plan_bytes ? 100.0 * r->bytes / r->plan_bytes : 100.0,
			(unsigned long long)r->blocks, (unsigned long long)r->plan_blocks);
	if (!r->complete)
		fprintf(stderr, "verify: stopped at the time budget (--max-duration): %s\n",
			o->resume ? "the next run with --resume continues here"
				  : "not every block was checked; add --resume STATE to continue next time");
}

int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "jobs", required_argument, NULL, 'j' },
		{ "verify-key", required_argument, NULL, 'k' },
		TOOL_EXPECT_OPTIONS,
		{ "json", no_argument, NULL, 'J' },
		{ "replica", required_argument, NULL, 'r' },
		{ "parity", required_argument, NULL, 'p' },
		{ "shard", required_argument, NULL, 'S' },
		{ "max-duration", required_argument, NULL, 'D' },
		{ "resume", required_argument, NULL, 'R' },
		{ "errors-only", required_argument, NULL, 'E' },
		{ "report", required_argument, NULL, 'O' },
		{ "sign-key", required_argument, NULL, 'K' },
		{ "metrics", required_argument, NULL, 'M' },
		{ "history", required_argument, NULL, 'H' },
		{ "name", required_argument, NULL, 'N' },
		{ "allow-store-mismatch", no_argument, NULL, 'X' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct vbfs_scrub_opts o = { 0 };
	struct vbfs_index_expect expect = { 0 };
	struct vbfs_scrub_result r;
	struct verify_ui ui = { 0 };
	struct tool_heal heal = { 0 };
	const char *key = NULL, *shard_opt = NULL, *errors_only = NULL;
	struct scrub_out out = { 0 };
	struct scale_targets targets = { 0 };
	struct vbfs_shard shard;
	char shard_source[128];
	double budget = -1;
	const char *budget_text = NULL;
	char why[VBFS_WHY_LEN];
	vbfs_index *idx;
	bool allow_mismatch = false;
	int c;

	opterr = 0;   /* one line of our own, not getopt's too */
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (tool_expect_option("verify", c, optarg, &expect))
			continue;
		switch (c) {
		case 'j': o.jobs = tool_parse_jobs("verify", optarg); break;
		case 'k': key = optarg; break;
		case 'J': out.json = true; break;
		case 'S': shard_opt = optarg; break;
		case 'D':
			if (vbfs_parse_duration(optarg, &budget))
				tool_usage_error("verify", "--max-duration %s: not a duration (90s, 45m, 1h30m)", optarg);
			budget_text = optarg;
			break;
		case 'R': o.resume = optarg; break;
		case 'E': errors_only = optarg; break;
		case 'O': out.report = optarg; break;
		case 'K': out.sign_key = optarg; break;
		case 'M': out.metrics = optarg; break;
		case 'H': out.history = optarg; break;
		case 'N': out.name = optarg; break;
		case 'X': allow_mismatch = true; break;
		case 'r': tool_heal_add_replica(&heal, "verify", optarg); break;
		case 'p': tool_heal_set_parity(&heal, "verify", optarg); break;
		case 'h': fputs(usage_text, stdout); return VBFS_EXIT_OK;
		default: tool_getopt_error("verify", c, argv);
		}
	}
	if (argc - optind > 2)
		tool_usage_error("verify", "unexpected argument '%s'", argv[optind + 2]);
	if (argc - optind != 2)
		tool_usage_error("verify", "needs STORE and INDEX");
	o.store = argv[optind];
	scale_shard(shard_opt, &shard, shard_source);
	if (errors_only && (shard.n || o.resume))
		tool_usage_error("verify", "--errors-only checks one report's findings: not with --shard or --resume");
	tool_require_dir("store", o.store);
	tool_require_dir("index", argv[optind + 1]);
	scrub_out_check("verify", &out, o.store);
	if (o.resume)
		tool_require_outside("verify", "state", o.resume, o.store);
	if (out.sign_key && vbfs_report_check_key(out.sign_key, why))
		tool_die("verify: --sign-key %s", why);
	if (errors_only)    /* before the scrub: a bad report is exit 2 at once */
		scale_targets_load(errors_only, key, &targets);
	expect.verify_key = key;
	vbfs_err err = vbfs_index_open_expect(argv[optind + 1], &expect, &idx, why);
	if (err)
		tool_die("verify: %s", why);
	if (!allow_mismatch) {
		/* Another store's index would call every file damaged: exit 2. */
		int sfd = vbfs_store_open_root(o.store);
		err = sfd < 0 ? VBFS_OK : vbfs_store_check_index(sfd, o.store, idx, why);
		if (sfd >= 0)
			close(sfd);
		if (err) {
			vbfs_index_close(idx);
			tool_die("verify: %s (--allow-store-mismatch checks it anyway)", why);
		}
	}
	if (errors_only) {
		char hex[VBFS_HEX_LEN];
		vbfs_hex(vbfs_index_meta(idx)->root_digest, VBFS_DIGEST_LEN, hex);
		const cJSON *root = cJSON_GetObjectItemCaseSensitive(targets.doc, "root");
		if (strcmp(root->valuestring, hex))
			tool_die("verify: --errors-only %s is of another index (root %.16s…, this index %.16s…)",
				 errors_only, root->valuestring, hex);
		o.only = targets.v;
		o.nonly = targets.n;
	}
	o.shard_k = shard.k;
	o.shard_n = shard.n;
	if (budget >= 0)
		o.deadline = vbfs_monotonic() + budget;
	scale_trace(&o);
	o.heal = tool_heal_open(&heal, "verify", idx, o.store);
	tool_install_signals();
	char label[64] = "verifying";
	if (shard.n)
		snprintf(label, sizeof label, "verifying shard %u/%u", shard.k, shard.n);
	tool_progress_init(&ui.progress, label);
	if (o.resume || budget >= 0 || shard.n)
		ui.progress.log_every = 60;     /* batch logs: a line a minute */
	o.index = idx;
	o.progress = tool_progress_cb;
	o.progress_ctx = &ui.progress;
	o.event = on_event;
	o.event_ctx = &ui;
	o.stop = &tool_stop;
	err = vbfs_scrub(&o, &r, why);
	tool_progress_done(&ui.progress);
	tool_heal_close(&heal);
	char root[VBFS_HEX_LEN];
	vbfs_hex(vbfs_index_meta(idx)->root_digest, VBFS_DIGEST_LEN, root);
	vbfs_index_close(idx);
	if (err)
		tool_die("verify: %s", why[0] ? why : vbfs_strerror(err));

	/* A run stopped by its budget before it checked a single block has
	 * verified nothing: exit 0 ("all verified") would be a false OK to a
	 * cron job or a retrying batch engine, and a report, metrics or
	 * history file would say a scrub ran.  Exit 2 (an operational error:
	 * the budget is too short for this store), no file written; --json
	 * still shows the plan, with ok false, the error and exit_status.
	 * Damage found anyway (a missing file, or earlier runs of a --resume
	 * pass) is still exit 1. */
	char nothing[512] = "";
	if (ui.n)   /* qsort(NULL, 0) is undefined */
		qsort(ui.v, ui.n, sizeof *ui.v, by_path_block);
	if (!r.complete && r.run_blocks == 0 && r.damage_events == 0) {
		uint64_t left = r.plan_blocks - r.blocks;
		snprintf(nothing, sizeof nothing, "verify: --max-duration %s: the time budget ran out "
			 "before any block was checked: nothing was verified (%llu block%s left)",
			 budget_text ? budget_text : "", (unsigned long long)left, left == 1 ? "" : "s");
		tool_error("%s", nothing);
		out.report = out.metrics = out.history = out.sign_key = NULL;
	} else {
		print_summary(&r, &ui, &o, &shard, shard_source);
	}
	if (out.json || out.report || out.metrics || out.history) {
		cJSON *doc = cJSON_CreateObject(), *events = cJSON_CreateArray();
		cJSON_AddStringToObject(doc, "format", VBFS_REPORT_FORMAT);
		cJSON_AddBoolToObject(doc, "ok", r.damage_events == 0 && !nothing[0]);
		if (nothing[0]) {
			char line[sizeof nothing + 16];
			snprintf(line, sizeof line, "vbfsctl: %s", nothing);
			cJSON_AddStringToObject(doc, "error", line);
			cJSON_AddNumberToObject(doc, "exit_status", VBFS_EXIT_USAGE);
		}
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
		cJSON_AddBoolToObject(doc, "complete", r.complete);
		cJSON *sh = cJSON_AddObjectToObject(doc, "shard");
		cJSON_AddNumberToObject(sh, "k", shard.k);
		cJSON_AddNumberToObject(sh, "n", shard.n ? shard.n : 1);
		if (shard.n)
			cJSON_AddStringToObject(sh, "source", shard_source);
		cJSON_AddNumberToObject(sh, "index_bytes", (double)r.index_bytes);
		cJSON_AddNumberToObject(sh, "begin", (double)r.range_begin);
		cJSON_AddNumberToObject(sh, "end", (double)r.range_end);
		cJSON_AddNumberToObject(sh, "blocks", (double)r.plan_blocks);
		cJSON_AddNumberToObject(sh, "bytes", (double)r.plan_bytes);
		cJSON_AddStringToObject(doc, "root", root);
		cJSON_AddStringToObject(doc, "store", o.store);
		char when[32];
		vbfs_rfc3339(vbfs_now(), when);
		cJSON_AddStringToObject(doc, "time", when);
		if (o.resume) {
			cJSON_AddNumberToObject(doc, "pass", r.pass);
			cJSON_AddNumberToObject(doc, "runs", r.runs);
			cJSON_AddNumberToObject(doc, "run_blocks", (double)r.run_blocks);
			cJSON_AddNumberToObject(doc, "run_bytes", (double)r.run_bytes);
		}
		if (errors_only) {
			cJSON_AddBoolToObject(doc, "errors_only", true);
			cJSON_AddNumberToObject(doc, "rechecked", (double)targets.n);
		}
		for (size_t i = 0; i < ui.n; i++) {
			cJSON_AddItemToArray(events, ui.v[i].obj);
			ui.v[i].obj = NULL;     /* owned by the document now */
		}
		cJSON_AddItemToObject(doc, "events", events);
		scrub_out_write("verify", &out, doc);
		cJSON_Delete(doc);
	}
	scale_targets_free(&targets);
	for (size_t i = 0; i < ui.n; i++) {
		cJSON_Delete(ui.v[i].obj);
		free(ui.v[i].human);
		free(ui.v[i].path);
	}
	free(ui.v);
	return nothing[0] ? VBFS_EXIT_USAGE : r.damage_events ? VBFS_EXIT_DAMAGE : VBFS_EXIT_OK;
}
