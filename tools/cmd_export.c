/*
 * cmd_export.c - `vbfsctl export INDEX --format manifest|sha256sum|blocks`:
 * hand the index's checksums to tools that do not know vbfs (the seed
 * article's Python, `sha256sum -c`).  The work is vbfs_export() in
 * manifest/export.c; this file is options, the atomic --output and
 * the exit status.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tool.h"
#include "formats.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vbfsctl export INDEX --format manifest|sha256sum|blocks [--output FILE]\n"
		"                      [--verify-key PUBLIC_KEY] [--expect-backup-id ID]\n"
		"                      [--max-age DURATION]\n\n"
		"Write the index's checksums in a format other tools read.  Regular files,\n"
		"sorted by path, paths relative to the store root.\n\n"
		"  --format manifest   the seed article's JSON manifest (backup_id, created_at,\n"
		"                      algorithm, files, manifest_checksum); needs an index\n"
		"                      built with --file-digests (or --against)\n"
		"  --format sha256sum  lines for `cd STORE && sha256sum -c FILE`; same need\n"
		"  --format blocks     per-file block lists {block, offset, size, checksum}\n"
		"  --output FILE       write FILE atomically (temp file + rename); default stdout\n"
		"  --verify-key KEY    also check the index's signature (PEM Ed25519 public key)\n"
		TOOL_EXPECT_HELP "\n"
		"Files the index marks damaged or unreadable are left out and named on stderr.\n"
		"Exit: 0 written, 1 written but damaged files were left out,\n"
		"2 usage or operational error (no such index, index damaged, no digests).\n");
}

struct export_args {
	const char *index, *output;
	struct vbfs_index_expect expect;        /* --verify-key, --expect-backup-id, --max-age */
	enum vbfs_export_format format;
};

static void parse_args(struct export_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format",     required_argument, NULL, 'f' },
		{ "output",     required_argument, NULL, 'o' },
		{ "verify-key", required_argument, NULL, 'k' },
		TOOL_EXPECT_OPTIONS,
		{ "help",       no_argument,       NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:o:h", opts, NULL)) != -1) {
		if (tool_expect_option("export", c, optarg, &a->expect))
			continue;
		switch (c) {
		case 'f':
			if (!strcmp(optarg, "manifest"))
				a->format = VBFS_EXPORT_MANIFEST;
			else if (!strcmp(optarg, "sha256sum"))
				a->format = VBFS_EXPORT_SHA256SUM;
			else if (!strcmp(optarg, "blocks"))
				a->format = VBFS_EXPORT_BLOCKS;
			else
				tool_usage_error("export", "--format: '%s' is not one of "
						 "manifest, sha256sum, blocks", optarg);
			break;
		case 'o': a->output = optarg; break;
		case 'k': a->expect.verify_key = optarg; break;
		case 'h': usage(stdout); exit(VBFS_EXIT_OK);
		default: tool_getopt_error("export", c, argv);
		}
	}
	if (optind >= argc)
		tool_usage_error("export", "missing INDEX");
	a->index = argv[optind++];
	if (optind < argc)
		tool_usage_error("export", "unexpected argument '%s'", argv[optind]);
	if (!a->format)
		tool_usage_error("export", "missing --format manifest|sha256sum|blocks");
}

static void on_skip(void *ctx, const char *path, uint32_t flags)
{
	(void)ctx;
	tool_error("export: left out '%s': the index marks it %s", path,
		   flags & VBFS_F_DAMAGED ? "damaged (it disagreed with the backup-time manifest)"
					  : "unreadable at build time");
}

/* FILE is written whole or not at all (vbfs_atomic_open): a temp file
 * beside it, renamed over it only when complete.  stdio writes go through
 * a duplicate of the temp file's descriptor. */
static FILE *open_output(const char *output, struct vbfs_atomic_file *af)
{
	char why[VBFS_WHY_LEN];
	mode_t um = umask(0);
	umask(um);
	if (vbfs_atomic_open(af, output, 0666 & ~um, why) != VBFS_OK) {
		tool_error("export: %s", why);
		return NULL;
	}
	int fd = dup(af->fd);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		tool_error("export: %s: %s", af->tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		vbfs_atomic_abort(af);
	}
	return f;
}

static bool close_output(FILE *f, struct vbfs_atomic_file *af, bool keep)
{
	char why[VBFS_WHY_LEN];
	bool ok = keep;
	if (fclose(f) != 0 && ok) {
		tool_error("export: %s: %s", af->tmp, strerror(errno));
		ok = false;
	}
	if (!ok) {
		vbfs_atomic_abort(af);
		return false;
	}
	if (vbfs_atomic_commit(af, why) != VBFS_OK) {
		tool_error("export: %s", why);
		return false;
	}
	return true;
}

int cmd_export(int argc, char **argv)
{
	struct export_args a = { 0 };
	char why[VBFS_WHY_LEN] = "";
	parse_args(&a, argc, argv);
	tool_require_dir("index", a.index);

	vbfs_index *idx;
	vbfs_err err = vbfs_index_open_expect(a.index, &a.expect, &idx, why);
	if (err) {
		tool_error("export: %s", why[0] ? why : vbfs_strerror(err));
		return VBFS_EXIT_USAGE;
	}
	struct vbfs_atomic_file af;
	FILE *out = a.output ? open_output(a.output, &af) : stdout;
	if (!out) {
		vbfs_index_close(idx);
		return VBFS_EXIT_USAGE;
	}
	struct vbfs_export_result r;
	err = vbfs_export(idx, a.format, out, on_skip, NULL, &r, why);
	vbfs_index_close(idx);
	if (err)
		tool_error("export: %s", why[0] ? why : vbfs_strerror(err));
	if (a.output) {
		if (!close_output(out, &af, !err))
			return VBFS_EXIT_USAGE;
	} else if (fflush(stdout) != 0 || ferror(stdout)) {
		if (!err)
			tool_error("export: stdout: %s", strerror(errno));
		return VBFS_EXIT_USAGE;
	}
	if (err)
		return VBFS_EXIT_USAGE;
	if (r.skipped) {
		tool_error("export: %llu damaged or unreadable file(s) left out",
			   (unsigned long long)r.skipped);
		return VBFS_EXIT_DAMAGE;
	}
	return VBFS_EXIT_OK;
}
