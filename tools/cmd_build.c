/*
 * cmd_build.c - `vbfsctl build STORE INDEX`: index a store (manifest/build.c).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "heal.h"

static const char usage_text[] =
	"usage: vbfsctl build STORE INDEX [options]\n"
	"\n"
	"Walk STORE (no symlink followed), hash every regular file in blocks with\n"
	"SHA-256 on all cores, and write INDEX in one LMDB transaction: a crash or\n"
	"Ctrl-C leaves the previous index intact.  Incremental: files whose size,\n"
	"mtime and inode are unchanged keep their digests.  Hard links are hashed\n"
	"once per inode; whole-block holes of sparse files are recorded, not read.\n"
	"\n"
	"  --block-size SIZE   block size, power of two 4K..64M (default 1M; a new\n"
	"                      size rehashes everything)\n"
	"  --jobs N            hashing threads (default: all cores)\n"
	"  --full              rehash every file\n"
	"  --reuse OLD_INDEX   take the digests of files unchanged since OLD_INDEX\n"
	"                      (the previous snapshot's index): same device, inode,\n"
	"                      size, mtime, and ctime unless the link count changed\n"
	"  --backup-id ID      backup id recorded in the index (default: store name)\n"
	"  --file-digests      also record whole-file SHA-256 (for export)\n"
	"  --against MANIFEST  compare with a backup-time manifest (seed JSON,\n"
	"                      sha256sum output or PostgreSQL backup_manifest);\n"
	"                      implies --file-digests\n"
	"  --sign-key KEY      sign the index root with an Ed25519 secret key\n"
	"  --parity K+M        also write Reed-Solomon parity: M parity blocks per K\n"
	"                      data blocks (e.g. 32+2: 6.25% more bytes), so a mount\n"
	"                      or a repair can rebuild up to M damaged blocks of each\n"
	"                      stripe (see vbfs -o parity=DIR, vbfsctl repair)\n"
	"  --parity-dir DIR    where the parity goes (default: INDEX/parity); never\n"
	"                      inside the store\n"
	"  --reuse-parity DIR  with --reuse OLD_INDEX: OLD_INDEX's parity (default\n"
	"                      OLD_INDEX/parity); groups of blocks that did not\n"
	"                      change are copied from it, each fragment checked\n"
	"                      against OLD_INDEX (a rebuild in place reuses INDEX's)\n"
	"  --json              one JSON document on stdout\n"
	"  --help              this text\n"
	"\n"
	"A file that changes while it is hashed (size, mtime, ctime, inode) is\n"
	"hashed again, up to 3 times; one that never holds still is recorded without\n"
	"digests (every read of it fails) and reported as changed.  A directory that\n"
	"cannot be read is recorded as content unknown (listing it fails).\n"
	"\n"
	"Exit status: 0 indexed, 1 damage found (unreadable file or directory, file\n"
	"changed while indexing, manifest mismatch), 2 usage or operational error.\n";

struct build_ui {
	bool json;
	cJSON *events;
	struct tool_progress progress;
};

static void on_event(void *ctx, const struct vbfs_event *ev)
{
	struct build_ui *ui = ctx;
	tool_progress_done(&ui->progress);
	tool_print_event(stderr, ev);
	if (ui->json)
		cJSON_AddItemToArray(ui->events, tool_event_to_json(ev));
}

int cmd_build(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "block-size", required_argument, NULL, 'b' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "full", no_argument, NULL, 'F' },
		{ "reuse", required_argument, NULL, 'R' },
		{ "backup-id", required_argument, NULL, 'i' },
		{ "file-digests", no_argument, NULL, 'D' },
		{ "against", required_argument, NULL, 'a' },
		{ "sign-key", required_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'J' },
		{ "parity", required_argument, NULL, 'P' },
		{ "parity-dir", required_argument, NULL, 'Q' },
		{ "reuse-parity", required_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct vbfs_build_opts o = { 0 };
	struct vbfs_build_result r;
	struct build_ui ui = { 0 };
	struct vbfs_parity_opts po = { 0 };
	struct vbfs_parity_result pr = { 0 };
	char why[VBFS_WHY_LEN], a[32], b2[32];
	uint64_t v;
	int c;

	opterr = 0;   /* one line of our own, not getopt's too */
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (vbfs_parse_size(optarg, &v) || v < VBFS_BLOCK_MIN || v > VBFS_BLOCK_MAX ||
			    (v & (v - 1)))
				tool_usage_error("build", "--block-size %s: must be a power of two "
						 "from 4K to 64M", optarg);
			o.block_size = (uint32_t)v;
			break;
		case 'j': o.jobs = tool_parse_jobs("build", optarg); break;
		case 'F': o.full = true; break;
		case 'R': o.reuse = optarg; break;
		case 'i': o.backup_id = optarg; break;
		case 'D': o.file_digests = true; break;
		case 'a': o.against = optarg; o.file_digests = true; break;
		case 'k': o.sign_key = optarg; break;
		case 'J': ui.json = true; break;
		case 'P':
			if (vbfs_parse_parity(optarg, &po.k, &po.m))
				tool_usage_error("build", "--parity %s: must be K+M with K 1..127, "
						 "M >= 1, K+M <= 255 (e.g. 32+2)", optarg);
			break;
		case 'Q': po.dir = optarg; break;
		case 'U': po.reuse_dir = optarg; break;
		case 'h': fputs(usage_text, stdout); return VBFS_EXIT_OK;
		default: tool_getopt_error("build", c, argv);
		}
	}
	if (argc - optind != 2)
		tool_usage_error("build", "needs STORE and INDEX");
	o.store = argv[optind];
	o.index = argv[optind + 1];
	tool_require_dir("store", o.store);
	if (o.reuse)
		tool_require_dir("--reuse", o.reuse);
	if (po.dir && !po.k)
		tool_usage_error("build", "--parity-dir needs --parity K+M");
	if (po.reuse_dir && (!po.k || !o.reuse))
		tool_usage_error("build", "--reuse-parity needs --parity K+M and --reuse OLD_INDEX");
	if (po.reuse_dir)
		tool_require_dir("--reuse-parity", po.reuse_dir);
	char *default_dir = NULL;
	if (po.k && !po.dir) {
		default_dir = xmalloc(strlen(o.index) + sizeof "/parity");
		sprintf(default_dir, "%s/parity", o.index);
		po.dir = default_dir;
	}
	if (po.k && !default_dir)   /* INDEX itself is checked by the build */
		tool_require_outside("build", "--parity-dir", po.dir, o.store);
	tool_install_signals();
	tool_progress_init(&ui.progress, "indexing");
	ui.events = cJSON_CreateArray();
	o.progress = tool_progress_cb;
	o.progress_ctx = &ui.progress;
	o.event = on_event;
	o.event_ctx = &ui;
	o.stop = &tool_stop;

	vbfs_parity_plan *plan = NULL;
	vbfs_err err = VBFS_OK;
	if (po.k) {   /* the old parity is opened before the build changes INDEX */
		po.store = o.store;
		po.index = o.index;
		po.sign_key = o.sign_key;
		po.reuse_index = o.reuse;
		po.jobs = o.jobs;
		po.stop = &tool_stop;
		err = vbfs_parity_plan_new(&po, &plan, why);
		o.parity = plan;
	}
	if (!err)
		err = vbfs_build(&o, &r, why);
	tool_progress_done(&ui.progress);
	if (!err && po.k) {   /* the groups not encoded inline, then sealed in */
		if ((err = vbfs_parity_build(plan, &pr, why)))
			snprintf(why + strlen(why), VBFS_WHY_LEN - strlen(why),
				 " (the index itself was written)");
	}
	vbfs_parity_plan_free(plan);
	free(default_dir);
	if (err) {
		tool_error("build: %s", why[0] ? why : vbfs_strerror(err));
		cJSON_Delete(ui.events);
		return VBFS_EXIT_USAGE;
	}
	double rate = r.seconds > 0 ? r.bytes_hashed / r.seconds / 1e6 : 0;
	fprintf(stderr, "indexed %llu entries: %llu files hashed (%s), %llu reused (%s), "
		"%llu removed in %.2f s, %.0f MB/s\n",
		(unsigned long long)r.entries, (unsigned long long)r.files_hashed,
		tool_human_bytes((double)r.bytes_hashed, a), (unsigned long long)r.files_reused,
		tool_human_bytes((double)r.bytes_reused, b2), (unsigned long long)r.files_removed,
		r.seconds, rate);
	if (r.files_linked || r.bytes_holes)
		fprintf(stderr, "%llu hard links to files already hashed; %s of holes recorded, not read\n",
			(unsigned long long)r.files_linked, tool_human_bytes((double)r.bytes_holes, a));
	if (po.k) {
		fprintf(stderr, "parity %u+%u: %llu stripes, %s for %s of data (%.2f%%); "
			"%llu groups: %llu encoded (%llu while hashing), %llu reused; "
			"%.2f s after the index\n",
			po.k, po.m, (unsigned long long)pr.stripes,
			tool_human_bytes((double)pr.parity_bytes, a),
			tool_human_bytes((double)pr.data_bytes, b2),
			pr.data_bytes ? 100.0 * pr.parity_bytes / pr.data_bytes : 0.0,
			(unsigned long long)pr.groups, (unsigned long long)pr.groups_encoded,
			(unsigned long long)pr.groups_inline, (unsigned long long)pr.groups_reused,
			pr.seconds);
		if (pr.reuse_note[0])
			fprintf(stderr, "parity: %s\n", pr.reuse_note);
		if (pr.fragments_refused)
			fprintf(stderr, "parity: %llu fragments of the old parity did not match "
				"their digest: their groups were encoded again\n",
				(unsigned long long)pr.fragments_refused);
	}
	if (r.files_unreadable || r.files_changed || r.dirs_unreadable || r.files_rehashed)
		fprintf(stderr, "not indexed: %llu unreadable file%s, %llu file%s changed while "
			"indexing, %llu unreadable director%s (content unknown); %llu file%s "
			"hashed again after a change\n",
			(unsigned long long)r.files_unreadable, r.files_unreadable == 1 ? "" : "s",
			(unsigned long long)r.files_changed, r.files_changed == 1 ? "" : "s",
			(unsigned long long)r.dirs_unreadable, r.dirs_unreadable == 1 ? "y" : "ies",
			(unsigned long long)r.files_rehashed, r.files_rehashed == 1 ? "" : "s");
	if (o.against)
		fprintf(stderr, "against %s: %llu listed, %llu differ, %llu missing, "
			"%llu unlisted, %llu not checkable\n", o.against,
			(unsigned long long)r.against_listed, (unsigned long long)r.against_mismatched,
			(unsigned long long)r.against_missing, (unsigned long long)r.against_unlisted,
			(unsigned long long)r.against_uncheckable);
	if (ui.json) {
		cJSON *doc = cJSON_CreateObject();
		cJSON_AddBoolToObject(doc, "ok", r.damage_events == 0);
		cJSON_AddNumberToObject(doc, "entries", (double)r.entries);
		cJSON_AddNumberToObject(doc, "files_hashed", (double)r.files_hashed);
		cJSON_AddNumberToObject(doc, "files_reused", (double)r.files_reused);
		cJSON_AddNumberToObject(doc, "files_removed", (double)r.files_removed);
		cJSON_AddNumberToObject(doc, "files_unreadable", (double)r.files_unreadable);
		cJSON_AddNumberToObject(doc, "files_changed", (double)r.files_changed);
		cJSON_AddNumberToObject(doc, "files_rehashed", (double)r.files_rehashed);
		cJSON_AddNumberToObject(doc, "dirs_unreadable", (double)r.dirs_unreadable);
		cJSON_AddNumberToObject(doc, "bytes_hashed", (double)r.bytes_hashed);
		cJSON_AddNumberToObject(doc, "bytes_reused", (double)r.bytes_reused);
		cJSON_AddNumberToObject(doc, "files_linked", (double)r.files_linked);
		cJSON_AddNumberToObject(doc, "bytes_holes", (double)r.bytes_holes);
		cJSON_AddNumberToObject(doc, "seconds", r.seconds);
		if (po.k) {
			cJSON *par = cJSON_AddObjectToObject(doc, "parity");
			cJSON_AddNumberToObject(par, "k", po.k);
			cJSON_AddNumberToObject(par, "m", po.m);
			cJSON_AddNumberToObject(par, "stripes", (double)pr.stripes);
			cJSON_AddNumberToObject(par, "parity_bytes", (double)pr.parity_bytes);
			cJSON_AddNumberToObject(par, "data_bytes", (double)pr.data_bytes);
			cJSON_AddNumberToObject(par, "seconds", pr.seconds);
			cJSON_AddNumberToObject(par, "groups", (double)pr.groups);
			cJSON_AddNumberToObject(par, "groups_encoded", (double)pr.groups_encoded);
			cJSON_AddNumberToObject(par, "groups_encoded_inline", (double)pr.groups_inline);
			cJSON_AddNumberToObject(par, "groups_reused", (double)pr.groups_reused);
			cJSON_AddNumberToObject(par, "fragments_refused", (double)pr.fragments_refused);
			cJSON_AddNumberToObject(par, "bytes_read", (double)pr.bytes_read);
		}
		if (o.against) {
			cJSON *ag = cJSON_AddObjectToObject(doc, "against");
			cJSON_AddStringToObject(ag, "manifest", o.against);
			cJSON_AddNumberToObject(ag, "listed", (double)r.against_listed);
			cJSON_AddNumberToObject(ag, "mismatched", (double)r.against_mismatched);
			cJSON_AddNumberToObject(ag, "missing", (double)r.against_missing);
			cJSON_AddNumberToObject(ag, "unlisted", (double)r.against_unlisted);
			cJSON_AddNumberToObject(ag, "uncheckable", (double)r.against_uncheckable);
		}
		cJSON_AddItemToObject(doc, "events", ui.events);
		tool_print_json(doc);
	} else
		cJSON_Delete(ui.events);
	return r.damage_events ? VBFS_EXIT_DAMAGE : VBFS_EXIT_OK;
}
