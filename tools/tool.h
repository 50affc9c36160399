/*
 * tool.h - what every vbfsctl subcommand shares: the one-line error format,
 * die-fast allocation, the progress bar, JSON output.  Library code never
 * dies; tool code may (signify's habit).
 */
#ifndef VBFS_TOOL_H
#define VBFS_TOOL_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include "vbfs.h"

/* Subcommands: int cmd_NAME(int argc, char **argv), argv[0] = "NAME". */
int cmd_build(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_rto(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_repair(int argc, char **argv);
int cmd_merge(int argc, char **argv);

/* "vbfsctl: <what>: <why>" on stderr. */
void tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* tool_error + exit(VBFS_EXIT_USAGE). */
_Noreturn void tool_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Usage error: message, then "try 'vbfsctl CMD --help'", exit 2. */
_Noreturn void tool_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * getopt_long's two errors, worded once for every subcommand (optstring
 * starting with ':', opterr = 0): "--name needs a value" for a missing
 * value (c == ':'), else "unknown option '--frob'".  Exits 2.
 */
_Noreturn void tool_getopt_error(const char *cmd, int c, char **argv);

/*
 * --expect-backup-id ID and --max-age DURATION: what every command that
 * opens an index for a user requires of it (doc/trust.md, "Replay"), the
 * same rows, help lines and parsing for each (verify, export).  Put
 * TOOL_EXPECT_OPTIONS in the getopt_long table, TOOL_EXPECT_HELP in the
 * usage, and hand every option code to tool_expect_option first: true
 * when it was one of them (x filled); a bad DURATION is a usage error.
 */
enum { TOOL_OPT_EXPECT_BACKUP_ID = 0x200, TOOL_OPT_MAX_AGE };
#define TOOL_EXPECT_OPTIONS \
	{ "expect-backup-id", required_argument, NULL, TOOL_OPT_EXPECT_BACKUP_ID }, \
	{ "max-age", required_argument, NULL, TOOL_OPT_MAX_AGE }
#define TOOL_EXPECT_HELP \
	"  --expect-backup-id ID  refuse an index built for another backup id\n" \
	"  --max-age DURATION  refuse an index built longer ago (e.g. 26h, 90m)\n"
bool tool_expect_option(const char *cmd, int c, const char *arg, struct vbfs_index_expect *x);

/* --jobs N: 1..64 threads, else a usage error for `cmd`. */
unsigned tool_parse_jobs(const char *cmd, const char *arg);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
char *xstrdup(const char *s);

/* Print a cJSON document on stdout (pretty, one document) and free it. */
void tool_print_json(cJSON *doc);

/*
 * --json on the command line (set by vbfsctl.c before the subcommand runs,
 * so even an option error is covered).  Every exit with status 2 then still
 * prints one JSON document on stdout, {"ok": false, "error": "<the line
 * printed on stderr>", "exit_status": 2}, unless the command already
 * printed its own: tool_die and tool_usage_error do it, and vbfsctl.c does
 * it for a subcommand that returned 2.
 */
extern bool tool_json;
void tool_json_error_document(void);
/* A command that wrote its own document to stdout (not through
 * tool_print_json) says so: no error document follows it on exit 2. */
void tool_json_printed(void);

/* The event as a JSON object (vbfs_event_object); dies when out of memory. */
cJSON *tool_event_to_json(const struct vbfs_event *ev);

/* One human line per finding: "path: FAIL corrupt block 3 at offset N ...". */
void tool_print_event(FILE *f, const struct vbfs_event *ev);

/* Progress bar on stderr, only when stderr is a terminal. */
struct tool_progress {
	bool enabled;
	const char *label;
	double started, last_draw;
	/* Bytes already done when the first report came (a resumed pass):
	 * the rate and the ETA count only this run's bytes. */
	bool has_base;
	uint64_t base;
	/* > 0: when stderr is not a terminal, one line this often (batch logs). */
	double log_every;
};
void tool_progress_init(struct tool_progress *p, const char *label);
void tool_progress_cb(void *ctx, const struct vbfs_progress *pr); /* vbfs_progress_fn */
void tool_progress_done(struct tool_progress *p);

/*
 * The one stop flag of vbfsctl.  tool_install_signals() makes SIGINT,
 * SIGTERM and SIGHUP set tool_stop (to the signal's number) and nothing
 * else; no SA_RESTART, so a blocking read or poll returns EINTR and the
 * loop notices.  Builds and scrubs then stop writing nothing, drills unmount
 * and remove their work directory; all exit 2.  A second signal while
 * stopping ends vbfsctl at once (the user means it; a drill's daemon then
 * unmounts itself, PR_SET_PDEATHSIG).
 */
extern volatile sig_atomic_t tool_stop;
void tool_install_signals(void);

/* Is `path` an existing directory?  Otherwise tool_die with a clear line. */
void tool_require_dir(const char *what, const char *path);

/* An objective's duration ("3600", "90s", "45m", "1h30m"; units in that
 * order, each once) for option `opt` of `cmd`: more than zero, or a usage
 * error (exit 2). */
double tool_parse_objective(const char *cmd, const char *opt, const char *s);

/*
 * A file name for a human line: control characters (newline, escape, DEL)
 * as \xHH and a backslash as \\, so a name can neither fake a line nor hide
 * text.  Invalid UTF-8 is passed through (the terminal shows a
 * replacement).  Returns a malloc'd string.
 */
char *tool_safe_name(const char *name);
/* "<prefix><text escaped as above>\n" on stderr: every human line that
 * carries a name, a reason or a history string goes through here. */
void tool_print_line(const char *prefix, const char *text);

/* Human-readable size "1.5 GiB" into buf. */
const char *tool_human_bytes(double bytes, char buf[32]);

#endif
