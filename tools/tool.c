/*
 * tool.c - shared plumbing for vbfsctl subcommands (see tool.h).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tool.h"

volatile sig_atomic_t tool_stop;
bool tool_json;
static bool json_printed;          /* a document is on stdout already */
static char last_error[1024];      /* the last one-line error, for --json */

/* Print the one error line on stderr and keep it for the JSON document. */
static void vmsg_prefixed(const char *prefix, const char *fmt, va_list ap)
{
	int n = snprintf(last_error, sizeof last_error, "%s", prefix);
	vsnprintf(last_error + n, sizeof last_error - (size_t)n, fmt, ap);
	fprintf(stderr, "%s\n", last_error);
}

static void vmsg(const char *fmt, va_list ap)
{
	vmsg_prefixed("vbfsctl: ", fmt, ap);
}

static void tool_error_prefixed(const char *prefix, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void tool_error_prefixed(const char *prefix, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg_prefixed(prefix, fmt, ap);
	va_end(ap);
}

void tool_json_error_document(void)
{
	if (!tool_json || json_printed)
		return;
	json_printed = true;    /* once, even if printing it fails and dies */
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddBoolToObject(o, "ok", false)
	    || !cJSON_AddStringToObject(o, "error", last_error[0] ? last_error
					: "vbfsctl: failed (exit status 2)")
	    || !cJSON_AddNumberToObject(o, "exit_status", VBFS_EXIT_USAGE)) {
		cJSON_Delete(o);
		fputs("{\"ok\": false, \"error\": \"out of memory\", \"exit_status\": 2}\n", stdout);
		fflush(stdout);
		return;
	}
	tool_print_json(o);
}

void tool_json_printed(void)
{
	json_printed = true;
}

void tool_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
}

void tool_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	tool_json_error_document();
	exit(VBFS_EXIT_USAGE);
}

void tool_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	char prefix[64], msg[sizeof last_error];
	snprintf(prefix, sizeof prefix, "vbfsctl %s: ", cmd);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	tool_error_prefixed(prefix, "%s (try 'vbfsctl %s --help')", msg, cmd);
	tool_json_error_document();
	exit(VBFS_EXIT_USAGE);
}

void tool_getopt_error(const char *cmd, int c, char **argv)
{
	/* getopt_long leaves optind just past the offending argument. */
	if (c == ':')
		tool_usage_error(cmd, "%s needs a value", argv[optind - 1]);
	tool_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
}

unsigned tool_parse_jobs(const char *cmd, const char *arg)
{
	char *end;
	errno = 0;
	long n = strtol(arg, &end, 10);
	if (end == arg || *end || errno || n < 1 || n > 64)
		tool_usage_error(cmd, "--jobs %s: must be 1..64", arg);
	return (unsigned)n;
}

bool tool_expect_option(const char *cmd, int c, const char *arg, struct vbfs_index_expect *x)
{
	switch (c) {
	case TOOL_OPT_EXPECT_BACKUP_ID:
		x->backup_id = arg;
		return true;
	case TOOL_OPT_MAX_AGE:
		if (vbfs_parse_duration(arg, &x->max_age) || x->max_age <= 0)
			tool_usage_error(cmd, "--max-age %s: must be a duration above 0 (e.g. 26h, 90m)", arg);
		return true;
	}
	return false;
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) tool_die("out of memory");
	return p;
}

void *xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (!p) tool_die("out of memory");
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p) tool_die("out of memory");
	return p;
}

void tool_print_json(cJSON *doc)
{
	char *text = cJSON_Print(doc);
	if (!text) tool_die("out of memory");
	puts(text);
	fflush(stdout);
	json_printed = true;
	free(text);
	cJSON_Delete(doc);
}

cJSON *tool_event_to_json(const struct vbfs_event *ev)
{
	cJSON *o = vbfs_event_object(ev);
	if (!o) tool_die("out of memory");
	return o;
}

const char *tool_human_bytes(double bytes, char buf[32])
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	int u = 0;
	while (bytes >= 1024 && u < 5) { bytes /= 1024; u++; }
	snprintf(buf, 32, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
	return buf;
}

void tool_progress_init(struct tool_progress *p, const char *label)
{
	memset(p, 0, sizeof *p);
	p->enabled = isatty(STDERR_FILENO);
	p->label = label;
	p->started = vbfs_monotonic();
}

/* "1h02m", "3m05s", "42s" */
static void human_seconds(double secs, char out[32])
{
	unsigned long s = secs > 0 && secs < 1e9 ? (unsigned long)(secs + 0.5) : 0;
	if (s >= 3600)
		snprintf(out, 32, "%luh%02lum", s / 3600, s / 60 % 60);
	else if (s >= 60)
		snprintf(out, 32, "%lum%02lus", s / 60, s % 60);
	else
		snprintf(out, 32, "%lus", s);
}

void tool_progress_cb(void *ctx, const struct vbfs_progress *pr)
{
	struct tool_progress *p = ctx;
	double now = vbfs_monotonic();
	char done[32], total[32], eta[40] = "", left[32];
	if (!p->has_base) {
		p->has_base = true;
		p->base = pr->bytes_done;
	}
	bool line = !p->enabled && p->log_every > 0;
	if ((!p->enabled && !line) || now - p->last_draw < (line ? p->log_every : 0.2))
		return;
	if (line && p->last_draw == 0) {        /* the first line after log_every, not at once */
		p->last_draw = now;
		return;
	}
	p->last_draw = now;
	double frac = pr->bytes_total ? (double)pr->bytes_done / pr->bytes_total : 1.0;
	int width = 30, fill = (int)(frac * width + 0.5);
	double rate = (pr->bytes_done - p->base) / (now - p->started + 1e-9);
	if (rate > 0 && pr->bytes_total > pr->bytes_done) {
		human_seconds((pr->bytes_total - pr->bytes_done) / rate, left);
		snprintf(eta, sizeof eta, " ETA %s", left);
	}
	if (line)
		fprintf(stderr, "%s: %.1f%% %s / %s %.0f MB/s%s\n", p->label, frac * 100,
			tool_human_bytes((double)pr->bytes_done, done),
			tool_human_bytes((double)pr->bytes_total, total), rate / 1e6, eta);
	else
		fprintf(stderr, "\r%s [%-*.*s] %3.0f%% %s / %s %6.0f MB/s%s\033[K", p->label, width, fill,
			"##############################", frac * 100,
			tool_human_bytes((double)pr->bytes_done, done),
			tool_human_bytes((double)pr->bytes_total, total), rate / 1e6, eta);
}

void tool_progress_done(struct tool_progress *p)
{
	if (p->enabled && p->last_draw > 0)
		fputs("\r\033[K", stderr);
}

static void on_signal(int sig)
{
	if (tool_stop) {
		/* Second Ctrl-C: the user means it. */
		signal(sig, SIG_DFL);
		raise(sig);
	}
	tool_stop = sig;
}

void tool_install_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };    /* no SA_RESTART */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

void tool_require_dir(const char *what, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		tool_die("%s %s: %s", what, path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		tool_die("%s %s: not a directory", what, path);
}

double tool_parse_objective(const char *cmd, const char *opt, const char *s)
{
	double v;
	if (vbfs_parse_duration(s, &v) != 0)
		tool_usage_error(cmd, "%s %s: not a duration like 3600, 90s, 45m or 1h30m", opt, s);
	if (!(v > 0))
		tool_usage_error(cmd, "%s: must be more than 0 seconds", opt);
	return v;
}

char *tool_safe_name(const char *name)
{
	size_t n = strlen(name);
	char *out = xmalloc(4 * n + 1), *o = out;
	for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
		if (*c < 0x20 || *c == 0x7f)
			o += sprintf(o, "\\x%02x", *c);
		else if (*c == '\\') {
			*o++ = '\\';
			*o++ = '\\';
		} else
			*o++ = (char)*c;
	}
	*o = '\0';
	return out;
}

void tool_print_line(const char *prefix, const char *text)
{
	char *safe = tool_safe_name(text);
	fprintf(stderr, "%s%s\n", prefix, safe);
	free(safe);
}

void tool_print_event(FILE *f, const struct vbfs_event *ev)
{
	char exp[VBFS_HEX_LEN], act[VBFS_HEX_LEN];
	/* %.*s would print raw control characters and invalid UTF-8: the
	 * human line shows the path as the JSON form does (U+FFFD for bad
	 * bytes), then through tool_safe_name. */
	bool clean;
	char *utf8 = vbfs_utf8_sanitize(ev->path ? ev->path : "", ev->path ? ev->path_len : 0,
					&clean);
	char *safe = tool_safe_name(utf8 ? utf8 : "?");
	fprintf(f, "%s: %s %s", safe,
		vbfs_event_is_damage(ev->kind) && !vbfs_event_is_refusal(ev) ? "FAIL" : "note",
		vbfs_event_kind_name(ev->kind));
	if (ev->block >= 0)
		fprintf(f, " block %lld at offset %llu", (long long)ev->block,
			(unsigned long long)ev->offset);
	if (ev->has_expected && ev->has_actual) {
		vbfs_hex(ev->expected, VBFS_DIGEST_LEN, exp);
		vbfs_hex(ev->actual, VBFS_DIGEST_LEN, act);
		fprintf(f, " (expected %.16s…, actual %.16s…)", exp, act);
	}
	if (ev->detail)
		fprintf(f, ": %s", ev->detail);
	if (ev->repair != VBFS_REPAIR_UNJUDGED)   /* --replica/--parity judged it */
		fprintf(f, "%s%s", ev->repair == VBFS_REPAIR_YES ? "; repairable from " : "; NOT repairable",
			ev->repair == VBFS_REPAIR_YES && ev->source ? ev->source : "");
	else if (vbfs_event_is_refusal(ev))
		fprintf(f, " (%s's copy, refused)", ev->source);
	else if (ev->source)
		fprintf(f, " from %s", ev->source);
	fputc('\n', f);
	free(safe);
	free(utf8);
}
