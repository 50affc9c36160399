/*
 * vbfsctl.c - dispatch to one subcommand per file (cmd_*.c).
 */
#include <stdio.h>
#include <string.h>
#include "tool.h"

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *synopsis;
} commands[] = {
	{ "build",  cmd_build,  "build  STORE INDEX [--block-size SIZE] [--jobs N] [--full] [--backup-id ID]\n"
	                        "         [--file-digests] [--against MANIFEST] [--sign-key KEY] [--json]" },
	{ "verify", cmd_verify, "verify STORE INDEX [--jobs N] [--verify-key PUB] [--replica DIR]... [--parity DIR]\n"
	                        "         [--json] [--shard K/N] [--max-duration DURATION] [--resume STATE]\n"
	                        "         [--errors-only REPORT] [--report FILE] [--sign-key KEY]\n"
	                        "         [--expect-backup-id ID] [--max-age DURATION]" },
	{ "merge",  cmd_merge,  "merge  REPORT... [--report FILE] [--json] [--metrics FILE] [--sign-key KEY]\n"
	                        "         [--verify-key PUB]" },
	{ "sample", cmd_sample, "sample (--mount MOUNTPOINT | --store STORE --index INDEX) [-n N] [--seed S]\n"
	                        "         [--rto DURATION] [--keep] [--json]" },
	{ "rto",    cmd_rto,    "rto    --target DURATION [--store STORE --index INDEX] --restore CMD\n"
	                        "         [--validate CMD] [--history FILE] [--metrics FILE] [--name NAME] [--keep] [--json]\n"
	                        "  rto    --trend --history FILE [--json]" },
	{ "report", cmd_report, "report --history FILE --html OUT.html" },
	{ "keygen", cmd_keygen, "keygen SECRET_KEY PUBLIC_KEY" },
	{ "repair", cmd_repair, "repair STORE INDEX (--replica DIR | --parity DIR)... [--dry-run | --output DIR | --apply]\n"
	                        "         [--allow-store-mismatch] [--json]" },
	{ "export", cmd_export, "export INDEX --format manifest|sha256sum|blocks [--output FILE] [--verify-key PUB]" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vbfsctl COMMAND [ARGS]\n\n"
		"Build and check vbfs block indexes; run restore drills.\n\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %s\n", commands[i].synopsis);
	fprintf(f, "\nEvery command takes --help.  Exit status: 0 all verified, "
		"1 damage or failed drill, 2 usage or operational error.\n");
}

/* Is --json among the arguments (getopt_long also takes "--js", "--jso")?
 * Looked for before the subcommand parses them, so that an error in its
 * own option parsing still gets a JSON document. */
static bool wants_json(int argc, char **argv)
{
	for (int i = 2; i < argc && strcmp(argv[i], "--"); i++) {
		size_t n = strlen(argv[i]);
		if (n >= 4 && !strncmp(argv[i], "--json", n))
			return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	tool_json = wants_json(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return VBFS_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return VBFS_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("vbfsctl %s (index format %u)\n", VBFS_VERSION, VBFS_FORMAT_VERSION);
		return VBFS_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name)) {
			int rc = commands[i].fn(argc - 1, argv + 1);
			if (rc == VBFS_EXIT_USAGE)
				tool_json_error_document();
			return rc;
		}
	tool_error("unknown command '%s' (try 'vbfsctl --help')", argv[1]);
	tool_json_error_document();
	return VBFS_EXIT_USAGE;
}
