/*
 * cmd_merge.c - `vbfsctl merge REPORT...`: the shard reports of one scrub
 * (verify --shard K/N --report FILE) as one report, one exit status and
 * one metrics file.  Refuses anything but the complete set of N shards of
 * one index: never a partial "OK".
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "report.h"
#include "scrub_out.h"
#include "tool.h"

static const char usage_text[] =
	"usage: vbfsctl merge REPORT... [--report FILE] [--json] [--metrics FILE]\n"
	"                     [--history FILE] [--name NAME] [--sign-key KEY]\n"
	"                     [--verify-key PUB]\n"
	"\n"
	"Merge the reports of the N shards of one scrub (vbfsctl verify --shard K/N\n"
	"--report FILE) into one: events in path and block order, counts summed.\n"
	"A missing or repeated shard, a shard of another index (root digest) or of\n"
	"another N, a shard stopped by its time budget, or a file that is not a\n"
	"report is an error: exit 2 and nothing written.\n"
	"\n"
	"  --report FILE       write the merged report to FILE (atomically)\n"
	"  --json              the merged report on stdout\n"
	"  --metrics FILE      Prometheus text for the whole store\n"
	"  --history FILE      append the verdict as one JSON line\n"
	"  --name NAME         the metrics' store label (default: the shards' STORE)\n"
	"  --sign-key KEY      sign the merged report (Ed25519 secret key)\n"
	"  --verify-key PUB    every shard report must be signed by this key\n"
	"\n"
	"Exit status: 0 every shard verified everything, 1 damage found, 2 usage or\n"
	"operational error.\n";

int cmd_merge(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "report", required_argument, NULL, 'O' },
		{ "json", no_argument, NULL, 'J' },
		{ "metrics", required_argument, NULL, 'M' },
		{ "history", required_argument, NULL, 'H' },
		{ "name", required_argument, NULL, 'N' },
		{ "sign-key", required_argument, NULL, 'K' },
		{ "verify-key", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct scrub_out out = { 0 };
	const char *verify_key = NULL;
	char why[VBFS_WHY_LEN], human[32];
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'O': out.report = optarg; break;
		case 'J': out.json = true; break;
		case 'M': out.metrics = optarg; break;
		case 'H': out.history = optarg; break;
		case 'N': out.name = optarg; break;
		case 'K': out.sign_key = optarg; break;
		case 'k': verify_key = optarg; break;
		case 'h': fputs(usage_text, stdout); return VBFS_EXIT_OK;
		default: tool_getopt_error("merge", c, argv);
		}
	}
	size_t n = (size_t)(argc - optind);
	if (n == 0)
		tool_usage_error("merge", "needs the shard reports");
	scrub_out_check("merge", &out, NULL);
	if (out.sign_key && vbfs_report_check_key(out.sign_key, why))
		tool_die("merge: --sign-key %s", why);

	cJSON **docs = xcalloc(n, sizeof *docs);
	const char **names = xcalloc(n, sizeof *names);
	size_t unsigned_ = 0;
	for (size_t i = 0; i < n; i++) {
		bool signed_;
		names[i] = argv[optind + i];
		if (vbfs_report_load(names[i], verify_key, &docs[i], &signed_, why))
			tool_die("merge: %s", why);
		unsigned_ += !signed_;
	}
	cJSON *doc;
	if (vbfs_report_merge(docs, names, n, &doc, why))
		tool_die("merge: %s", why);
	for (size_t i = 0; i < n; i++)
		cJSON_Delete(docs[i]);
	free(docs);
	free(names);

	const cJSON *ev;
	cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(doc, "events")) {
		struct vbfs_event e;
		char *path;
		if (!vbfs_event_from_json(ev, &e, &path, NULL))
			tool_print_event(stderr, &e);
		free(path);
	}
	unsigned long long by_kind[VBFS_EV_COUNT];
	unsigned long long damage = scrub_out_count(doc, by_kind);
	double bytes = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "bytes"));
	fprintf(stderr, "%s: %zu shards%s, %.0f files, %.0f blocks, %s verified: %llu damage event%s\n",
		damage ? "FAIL" : "OK", n, verify_key ? " (signatures verified)" :
		unsigned_ ? "" : " (signed; no --verify-key, so not checked)",
		cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "files")),
		cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "blocks")),
		tool_human_bytes(bytes, human), damage, damage == 1 ? "" : "s");
	scrub_out_write("merge", &out, doc);
	cJSON_Delete(doc);
	return damage ? VBFS_EXIT_DAMAGE : VBFS_EXIT_OK;
}
