/*
 * cmd_rto.c - `vbfsctl rto`: time a restore against a recovery time
 * objective, and `vbfsctl rto --trend`: what the history says.
 *
 * Phases, each timed on the monotonic clock:
 *   mount     (with --store/--index) a private vbfs mount: privmount.c
 *   restore   CMD through /bin/sh -c, VBFS_MOUNT and VBFS_SCRATCH set
 *   validate  CMD, same environment (optional)
 * A failing phase stops the drill.  The restore reads through the mount, so
 * a damaged block is an EIO for the restore tool AND an event in the mount's
 * log: the drill fails on the event even when the tool swallowed the error.
 * The mount and the scratch directory are removed on every path, Ctrl-C
 * included (the commands run in their own process group and get the signal
 * forwarded, so we outlive them and clean up).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include "tool.h"
#include "heal.h"
#include "history.h"
#include "metrics.h"
#include "privmount.h"
#include "proc.h"
#include "workdir.h"

#define CMD_GRACE 10.0  /* seconds a signalled command gets before SIGKILL */

struct rto {
	/* options */
	const char *store, *index, *restore, *validate, *history, *metrics, *name;
	double target;
	bool has_target, json, trend, keep;
	/* the run */
	const char *label;              /* the store label: --name, STORE or "default" */
	char time[32];
	int64_t started;
	char *work, *scratch;
	struct privmount pm;
	bool mounted;
	double phase[HIST_NPHASES];
	bool has_phase[HIST_NPHASES];
	int failed_phase;               /* -1: none */
	char reason[VBFS_WHY_LEN];
	bool op_error;                  /* the mount could not be provisioned */
	struct privmount_stats stats;
	bool have_stats;
	struct privmount_events ev;
	bool log_read;
	struct tool_heal heal;          /* --replica, --parity: the mount heals */
	struct tool_heal_report healed;
	char check[VBFS_WHY_LEN];       /* why the drill cannot vouch for its result */
	double total;
	enum hist_verdict verdict;
	bool met;                       /* verdict == HIST_MET */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vbfsctl rto --target DURATION [--store STORE --index INDEX] --restore CMD\n"
		"                   [--validate CMD] [--history FILE] [--metrics FILE] [--name NAME]\n"
		"                   [--replica DIR]... [--parity DIR] [--keep] [--json]\n"
		"       vbfsctl rto --trend --history FILE [--json]\n\n"
		"Time a restore against a recovery time objective.  Phases: mount (with\n"
		"--store/--index: a private vbfs mount, every byte read through it verified),\n"
		"restore and validate (each CMD run by /bin/sh -c with VBFS_MOUNT and\n"
		"VBFS_SCRATCH in its environment).  The verdict, the same word in every\n"
		"output: met (within the target), missed (over the target), failed (a phase\n"
		"failed, or the drill cannot vouch for its result) or damaged (a damage\n"
		"event, whatever else happened).\n\n"
		"  --target DURATION  the RTO: 3600, 90s, 45m, 1h30m\n"
		"  --history FILE     append this run as one JSON line\n"
		"  --metrics FILE     write Prometheus text (atomically) for node_exporter\n"
		"  --name NAME        the store label in history and metrics (default: STORE)\n"
		"  --mount-opts OPTS  extra vbfs -o options for the private mount\n"
		"                     (allow_other: other users, e.g. a database server)\n"
		"  --replica DIR      the private mount serves a damaged block from this copy\n"
		"                     of the store (repeatable); --parity DIR: from parity.\n"
		"                     Healed blocks are still damage (verdict damaged), but\n"
		"                     the restore gets the original bytes: \"restored, N\n"
		"                     blocks healed from X\"\n"
		"  --keep             keep the scratch directory\n"
		"  --trend            summarize --history: success rate, mean per phase, trend\n"
		"  --json             one JSON document on stdout (command output goes to stderr)\n\n"
		"Exit: 0 met; 1 missed, failed or damaged; 2 usage or operational error\n"
		"(also: the mount could not be provisioned, the run could not be recorded).\n");
}

static void parse_args(struct rto *r, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "target",   required_argument, NULL, 't' },
		{ "store",    required_argument, NULL, 's' },
		{ "index",    required_argument, NULL, 'i' },
		{ "restore",  required_argument, NULL, 'r' },
		{ "validate", required_argument, NULL, 'v' },
		{ "history",  required_argument, NULL, 'H' },
		{ "metrics",  required_argument, NULL, 'M' },
		{ "name",     required_argument, NULL, 'N' },
		{ "mount-opts", required_argument, NULL, 'O' },
		{ "replica",  required_argument, NULL, 'R' },
		{ "parity",   required_argument, NULL, 'P' },
		{ "keep",     no_argument,       NULL, 'k' },
		{ "trend",    no_argument,       NULL, 'T' },
		{ "json",     no_argument,       NULL, 'j' },
		{ "help",     no_argument,       NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			r->target = tool_parse_objective("rto", "--target", optarg);
			r->has_target = true;
			break;
		case 's': r->store = optarg; break;
		case 'i': r->index = optarg; break;
		case 'r': r->restore = optarg; break;
		case 'v': r->validate = optarg[0] ? optarg : NULL; break;
		case 'H': r->history = optarg; break;
		case 'M': r->metrics = optarg; break;
		case 'N': r->name = optarg; break;
		case 'k': r->keep = true; break;
		case 'O': privmount_mount_opts = optarg; break;
		case 'R': tool_heal_add_replica(&r->heal, "rto", optarg); break;
		case 'P': tool_heal_set_parity(&r->heal, "rto", optarg); break;
		case 'T': r->trend = true; break;
		case 'j': r->json = true; break;
		case 'h': usage(stdout); exit(VBFS_EXIT_OK);
		default: tool_getopt_error("rto", c, argv);
		}
	}
	if (optind < argc)
		tool_usage_error("rto", "unexpected argument '%s'", argv[optind]);
	if (r->trend) {
		if (!r->history)
			tool_usage_error("rto", "--trend needs --history FILE");
		if (r->has_target || r->store || r->index || r->restore || r->validate
		    || r->metrics || r->keep)
			tool_usage_error("rto", "--trend takes only --history and --json");
		return;
	}
	if (!r->has_target)
		tool_usage_error("rto", "--target DURATION is required");
	if (!r->restore || !r->restore[0])
		tool_usage_error("rto", "--restore CMD is required");
	if (!r->store != !r->index)
		tool_usage_error("rto", "--store and --index go together");
	if (r->name && !r->name[0])
		tool_usage_error("rto", "--name must not be empty");
	if (tool_heal_given(&r->heal) && !r->store)
		tool_usage_error("rto", "--replica and --parity need --store and --index "
				 "(the drill's own mount heals)");
	if (tool_heal_given(&r->heal))
		privmount_mount_opts = tool_heal_privmount_opts(&r->heal, "rto", privmount_mount_opts);
}

/* ---- phases ------------------------------------------------------------- */

static void phase_failed(struct rto *r, int phase, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void phase_failed(struct rto *r, int phase, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof r->reason, fmt, ap);
	va_end(ap);
	r->failed_phase = phase;
}

static void phase_mount(struct rto *r)
{
	char why[VBFS_WHY_LEN];
	double t0 = vbfs_monotonic();
	vbfs_err err = privmount_start(&r->pm, r->work, r->store, r->index, why);
	r->phase[HIST_MOUNT] = vbfs_monotonic() - t0;
	r->has_phase[HIST_MOUNT] = true;
	if (err == VBFS_OK) {
		r->mounted = true;
		return;
	}
	if (err != VBFS_ERR_INTERRUPTED) {
		phase_failed(r, HIST_MOUNT, "mount failed: %s", why);
		r->op_error = true;
	}
}

/* Run CMD for one phase; the drill's signals are forwarded to its group. */
static void phase_cmd(struct rto *r, int phase, const char *cmd)
{
	char why[VBFS_WHY_LEN];
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	struct proc_spawn s = {
		.argv = argv, .stdout_fd = r->json ? 2 : -1, .stderr_fd = -1,
		.new_group = true,
	};
	double t0 = vbfs_monotonic();
	pid_t pid = proc_spawn(&s, why);
	if (pid < 0) {
		r->has_phase[phase] = true;
		phase_failed(r, phase, "%s: %s", hist_phase_names[phase], why);
		return;
	}
	int status;
	if (proc_wait(pid, -1, true, &status) == PROC_STOPPED)
		status = proc_kill_group(pid, tool_stop, CMD_GRACE);
	r->phase[phase] = vbfs_monotonic() - t0;
	r->has_phase[phase] = true;
	if (tool_stop)
		return;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char st[64];
		proc_status_text(status, st, sizeof st);
		phase_failed(r, phase, "%s command failed (%s)", hist_phase_names[phase], st);
	}
}

static void set_env(struct rto *r)
{
	if (r->mounted)
		setenv("VBFS_MOUNT", r->pm.mnt, 1);
	else
		unsetenv("VBFS_MOUNT");
	setenv("VBFS_SCRATCH", r->scratch, 1);
	if (r->store)
		setenv("VBFS_STORE", r->store, 1);
}

/*
 * Three witnesses of damage: the event log, the mount's counters (read
 * before the unmount) and the daemon's exit status (1: it saw damage).
 * The damage count is the largest any of them reports; when they disagree,
 * or one could not be read, the drill cannot vouch for its result and
 * fails (a full $TMPDIR leaves the log empty while the restore command
 * swallowed the EIO: that must never read "met").
 */
static void cross_check(struct rto *r)
{
	uint64_t counted = 0;
	for (int k = 0; k < VBFS_EV_COUNT; k++)
		if (vbfs_event_is_damage((enum vbfs_event_kind)k))
			counted += r->stats.events[k];
	if (r->have_stats && counted > r->ev.damage) {
		if (!r->check[0])
			snprintf(r->check, sizeof r->check, "the event log holds %" PRIu64
				 " damage event%s, the mount counted %" PRIu64
				 " (was the log's filesystem full?)", r->ev.damage,
				 r->ev.damage == 1 ? "" : "s", counted);
		r->ev.damage = counted;
	}
	if (r->log_read && r->ev.unparsed && !r->check[0])
		snprintf(r->check, sizeof r->check, "the event log has %" PRIu64
			 " unreadable line%s", r->ev.unparsed, r->ev.unparsed == 1 ? "" : "s");
	if (r->pm.status == 1 && !r->ev.damage) {
		if (!r->check[0])
			snprintf(r->check, sizeof r->check, "vbfs exited 1 (damage seen) but "
				 "no damage event was read back");
		r->ev.damage = 1;
	} else if (r->pm.status == 0 && r->ev.damage && !r->check[0]) {
		snprintf(r->check, sizeof r->check, "vbfs exited 0 but %" PRIu64
			 " damage event%s were read back", r->ev.damage,
			 r->ev.damage == 1 ? "" : "s");
	} else if (r->pm.status < 0 && !r->check[0]) {
		snprintf(r->check, sizeof r->check, "the daemon's exit status is unknown");
	}
}

/* Unmount, count the damage the mount logged, remove the work directory.
 * false when cleanup itself failed (reported). */
static bool teardown(struct rto *r)
{
	char why[VBFS_WHY_LEN];
	bool ok = true;
	if (r->mounted) {
		if (privmount_stats(r->pm.mnt, &r->stats, why) == VBFS_OK)
			r->have_stats = true;
		else
			snprintf(r->check, sizeof r->check, "cannot read the mount's counters: %s", why);
	}
	if (r->pm.mnt) {
		if (privmount_stop(&r->pm, why) != VBFS_OK) {
			tool_error("rto: vbfs mount: %s", why);
			ok = false;
		}
		if (privmount_read_events(r->pm.log, &r->ev, why) == VBFS_OK)
			r->log_read = true;
		else if (!r->check[0])
			snprintf(r->check, sizeof r->check, "cannot read the event log: %s", why);
		if (r->mounted)
			cross_check(r);
		tool_heal_read_log(r->pm.log, &r->healed);
	}
	if (r->keep) {
		fprintf(stderr, "rto: scratch kept in %s\n", r->scratch);
	} else if (workdir_remove(r->work) != 0) {
		tool_error("rto: remove %s: %s", r->work, strerror(errno));
		ok = false;
	}
	return ok;
}

static void run_drill(struct rto *r)
{
	char why[VBFS_WHY_LEN];
	r->failed_phase = -1;
	r->work = workdir_create("rto", why);
	if (!r->work)
		tool_die("rto: scratch directory: %s", why);
	size_t n = strlen(r->work) + 16;
	r->scratch = xmalloc(n);
	snprintf(r->scratch, n, "%s/scratch", r->work);
	r->started = vbfs_now();
	vbfs_rfc3339(r->started, r->time);

	if (r->store)
		phase_mount(r);
	set_env(r);
	if (r->failed_phase < 0 && !tool_stop)
		phase_cmd(r, HIST_RESTORE, r->restore);
	if (r->validate && r->failed_phase < 0 && !tool_stop)
		phase_cmd(r, HIST_VALIDATE, r->validate);
	if (!teardown(r))
		r->op_error = true;

	/* Microseconds are plenty; the total is the sum of what is reported. */
	for (int p = 0; p < HIST_NPHASES; p++) {
		r->phase[p] = round(r->phase[p] * 1e6) / 1e6;
		r->total += r->has_phase[p] ? r->phase[p] : 0;
	}
	bool failed = r->failed_phase >= 0 || r->op_error || r->check[0];
	r->verdict = hist_verdict_decide(r->ev.damage > 0, failed, r->total > r->target);
	r->met = r->verdict == HIST_MET;
}

/* ---- results ------------------------------------------------------------ */

static cJSON *run_json(const struct rto *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", r->met);
	cJSON_AddBoolToObject(o, "met", r->met);
	cJSON_AddStringToObject(o, "verdict", hist_verdict_names[r->verdict]);
	cJSON_AddStringToObject(o, "store", r->label);
	if (r->store)
		cJSON_AddStringToObject(o, "store_path", r->store);
	cJSON_AddNumberToObject(o, "target_seconds", r->target);
	cJSON_AddNumberToObject(o, "total_seconds", r->total);
	cJSON *ph = cJSON_AddObjectToObject(o, "phases");
	for (int p = 0; p < HIST_NPHASES; p++)
		if (r->has_phase[p])
			cJSON_AddNumberToObject(ph, hist_phase_names[p], r->phase[p]);
	cJSON_AddNumberToObject(o, "events", (double)r->ev.damage);
	if (tool_heal_given(&r->heal))
		tool_heal_json(o, &r->healed);
	cJSON_AddStringToObject(o, "time", r->time);
	if (r->failed_phase >= 0) {
		cJSON_AddStringToObject(o, "failed_phase", hist_phase_names[r->failed_phase]);
		cJSON_AddStringToObject(o, "reason", r->reason);
	} else {
		cJSON_AddNullToObject(o, "failed_phase");
		if (r->check[0])
			cJSON_AddStringToObject(o, "reason", r->check);
	}
	cJSON_AddNumberToObject(o, "blocks_verified", (double)r->stats.blocks_verified);
	cJSON_AddNumberToObject(o, "bytes_verified", (double)r->stats.bytes_verified);
	return o;
}

static void print_text(const struct rto *r)
{
	for (int p = 0; p < HIST_NPHASES; p++)
		if (r->has_phase[p])
			fprintf(stderr, "rto: %-9s %10.3f s%s\n", hist_phase_names[p], r->phase[p],
			       p == r->failed_phase ? "  FAILED" : "");
	fprintf(stderr, "rto: %-9s %10.3f s (target %g s)\n", "total", r->total, r->target);
	if (r->stats.blocks_verified) {
		char b[32];
		fprintf(stderr, "rto: verified %" PRIu64 " block%s, %s through the mount\n",
		       r->stats.blocks_verified, r->stats.blocks_verified == 1 ? "" : "s",
		       tool_human_bytes((double)r->stats.bytes_verified, b));
	}
	/* The last line: the verdict word (in capitals), then why. */
	switch (r->verdict) {
	case HIST_DAMAGED:
		fprintf(stderr, "rto: DAMAGED: %" PRIu64 " damage event%s during the drill%s",
			r->ev.damage, r->ev.damage == 1 ? "" : "s", r->failed_phase >= 0 ? "; " : "\n");
		if (r->failed_phase >= 0)
			tool_print_line("", r->reason);
		break;
	case HIST_FAILED:
		tool_print_line("rto: FAILED: ", r->failed_phase >= 0 ? r->reason
			: r->check[0] ? "the drill cannot vouch for the restore"
			: "the drill could not clean up after itself");
		break;
	case HIST_MISSED:
		fprintf(stderr, "rto: MISSED: %.3f s exceeds the %g s target\n", r->total, r->target);
		break;
	default:
		fprintf(stderr, "rto: MET: %.3f s within the %g s target\n", r->total, r->target);
	}
}

/* Last success for this store: from the history when there is one, else
 * kept from the previous metrics file. */
static int64_t last_success(const struct rto *r)
{
	int64_t best = r->met ? r->started : 0;
	char why[VBFS_WHY_LEN];
	struct history h;
	if (r->history && history_load(r->history, &h, why) == VBFS_OK) {
		for (size_t i = 0; i < h.n; i++)
			if (h.runs[i].met && !strcmp(h.runs[i].store, r->label)
			    && h.runs[i].time > best)
				best = h.runs[i].time;
		history_free(&h);
		return best;
	}
	double old;
	if (!best && metrics_read_value(r->metrics, M_LAST_SUCCESS, r->label, &old) && old > 0)
		best = (int64_t)old;
	return best;
}

static bool write_metrics(const struct rto *r)
{
	struct drill_metrics d = {
		.store = r->label,
		.failed = !r->met,
		.verdict = r->verdict,
		.checksum_failures = r->ev.damage,
		.last_success = last_success(r),
		.last_run = r->started,
		.duration = r->total,
		.target = r->target,
		.blocks_verified = r->stats.blocks_verified,
		.bytes_verified = r->stats.bytes_verified,
	};
	for (int p = 0; p < HIST_NPHASES; p++) {
		d.phase[p] = r->phase[p];
		d.has_phase[p] = r->has_phase[p];
	}
	for (int k = 0; k < VBFS_EV_COUNT; k++)
		d.events[k] = r->ev.by_kind[k];
	struct metrics m = { 0 };
	metrics_drill(&m, &d);
	tool_heal_metrics(&m, r->label, &r->healed);
	char why[VBFS_WHY_LEN];
	vbfs_err err = metrics_write_atomic(r->metrics, &m, why);
	metrics_free(&m);
	if (err != VBFS_OK)
		tool_error("rto: metrics %s", why);
	return err == VBFS_OK;
}

static int drill(struct rto *r)
{
	if (r->store) {
		tool_require_dir("store", r->store);
		tool_require_dir("index", r->index);
	}
	r->label = r->name ? r->name : r->store ? r->store : "default";
	tool_install_signals();
	run_drill(r);
	if (tool_stop) {
		tool_error("rto: interrupted by SIG%s: mount and scratch removed, "
			   "nothing recorded", sigabbrev_np(tool_stop) ? sigabbrev_np(tool_stop) : "?");
		return VBFS_EXIT_USAGE;
	}
	for (size_t i = 0; i < r->ev.kept; i++)
		tool_print_line("rto: damage: ", r->ev.first[i]);
	if (r->ev.damage > r->ev.kept)
		fprintf(stderr, "rto: damage: %s%" PRIu64 " %s\n", r->ev.kept ? "... " : "",
			r->ev.damage - r->ev.kept, r->ev.kept ? "more in total"
			: "counted by the mount, not in its event log");
	if (r->check[0])
		tool_print_line("rto: the drill cannot vouch for the restore: ", r->check);
	tool_heal_say("rto: ", &r->healed);

	cJSON *o = run_json(r);
	bool recorded = true;
	if (r->history) {
		char why[VBFS_WHY_LEN];
		char *line = cJSON_PrintUnformatted(o);
		if (!line || history_append(r->history, line, why) != VBFS_OK) {
			tool_error("rto: history %s", line ? why : "out of memory");
			recorded = false;
		}
		free(line);
	}
	if (r->metrics && !write_metrics(r))
		recorded = false;
	if (r->op_error || !recorded) {
		/* Exit 2: the document says ok false and why, as every exit-2
		 * document does (tool.h). */
		cJSON_ReplaceItemInObjectCaseSensitive(o, "ok", cJSON_CreateFalse());
		cJSON_AddStringToObject(o, "error", r->failed_phase == HIST_MOUNT ? r->reason
					: !recorded ? "the run could not be recorded (history or "
					"metrics: see stderr)" : "the drill could not clean up after itself");
		cJSON_AddNumberToObject(o, "exit_status", VBFS_EXIT_USAGE);
	}
	if (r->json)
		tool_print_json(o);
	else {
		cJSON_Delete(o);
		print_text(r);
	}
	if (r->op_error || !recorded)
		return VBFS_EXIT_USAGE;
	return r->met ? VBFS_EXIT_OK : VBFS_EXIT_DAMAGE;
}

/* ---- --trend ------------------------------------------------------------ */

static void trend_text(const struct history *h, const struct hist_trend *t)
{
	fprintf(stderr, "runs: %zu (", t->runs);
	for (int v = 0; v < HIST_NVERDICTS; v++)
		fprintf(stderr, "%s%zu %s", v ? ", " : "", t->verdicts[v], hist_verdict_names[v]);
	fprintf(stderr, "; success rate %.1f%%)\n", 100.0 * t->success_rate);
	if (!t->runs) {
		tool_print_line("recommendation: ", t->recommendation);
		return;
	}
	if (!t->completed) {
		fprintf(stderr, "no run completed all its phases: no times to average\n");
		tool_print_line("recommendation: ", t->recommendation);
		return;
	}
	fprintf(stderr, "mean seconds over %zu completed run%s:", t->completed,
	       t->completed == 1 ? "" : "s");
	const char *sep = " ";
	for (int p = 0; p < HIST_NPHASES; p++)
		if (t->count[p]) {
			fprintf(stderr, "%s%s %.3f", sep, hist_phase_names[p], t->mean[p]);
			sep = ", ";
		}
	fprintf(stderr, "; total %.3f (min %.3f, max %.3f)\n", t->mean_total, t->min_total, t->max_total);
	if (t->slowest >= 0)
		fprintf(stderr, "slowest phase: %s\n", hist_phase_names[t->slowest]);
	if (t->completed >= 2)
		fprintf(stderr, "trend: %s, %+.3f s per run (%+.1f%% over %zu runs)\n",
		       !strcmp(t->direction, "steady") ? "steady"
		       : !strcmp(t->direction, "slower") ? "getting slower" : "getting faster",
		       t->slope_per_run, 100.0 * t->change, t->completed);
	else
		fprintf(stderr, "trend: needs at least 2 completed runs\n");
	if (t->damaged)
		fprintf(stderr, "runs with damage: %zu\n", t->damaged);
	char ts[32];
	if (t->last_success) {
		vbfs_rfc3339(t->last_success, ts);
		fprintf(stderr, "last success: %s\n", ts);
	} else {
		fprintf(stderr, "last success: never\n");
	}
	char *when = tool_safe_name(h->runs[h->n - 1].time_str);
	fprintf(stderr, "last run: %s, %s\n", when, hist_verdict_names[h->runs[h->n - 1].verdict]);
	free(when);
	tool_print_line("recommendation: ", t->recommendation);
}

static void trend_json(const struct hist_trend *t, const struct history *h)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "runs", (double)t->runs);
	cJSON_AddNumberToObject(o, "met", (double)t->met);
	cJSON *v = cJSON_AddObjectToObject(o, "verdicts");
	for (int i = 0; i < HIST_NVERDICTS; i++)
		cJSON_AddNumberToObject(v, hist_verdict_names[i], (double)t->verdicts[i]);
	if (h->n)
		cJSON_AddStringToObject(o, "last_verdict", hist_verdict_names[h->runs[h->n - 1].verdict]);
	else
		cJSON_AddNullToObject(o, "last_verdict");
	cJSON_AddNumberToObject(o, "completed_runs", (double)t->completed);
	cJSON_AddNumberToObject(o, "success_rate", t->success_rate);
	cJSON *m = cJSON_AddObjectToObject(o, "mean_seconds");
	for (int p = 0; p < HIST_NPHASES; p++)
		if (t->count[p])
			cJSON_AddNumberToObject(m, hist_phase_names[p], t->mean[p]);
	if (t->slowest >= 0)
		cJSON_AddStringToObject(o, "slowest_phase", hist_phase_names[t->slowest]);
	else
		cJSON_AddNullToObject(o, "slowest_phase");
	cJSON_AddStringToObject(o, "recommendation", t->recommendation);
	cJSON_AddNumberToObject(o, "mean_total_seconds", t->mean_total);
	cJSON_AddNumberToObject(o, "min_total_seconds", t->min_total);
	cJSON_AddNumberToObject(o, "max_total_seconds", t->max_total);
	cJSON_AddNumberToObject(o, "trend_seconds_per_run", t->slope_per_run);
	cJSON_AddNumberToObject(o, "trend_change", t->change);
	cJSON_AddStringToObject(o, "trend", t->direction);
	cJSON_AddNumberToObject(o, "damaged_runs", (double)t->damaged);
	char ts[32];
	if (t->last_success) {
		vbfs_rfc3339(t->last_success, ts);
		cJSON_AddStringToObject(o, "last_success", ts);
	} else {
		cJSON_AddNullToObject(o, "last_success");
	}
	cJSON_AddNumberToObject(o, "skipped_lines", (double)h->skipped);
	tool_print_json(o);
}

static int trend(const struct rto *r)
{
	struct history h;
	char why[VBFS_WHY_LEN];
	vbfs_err err = history_load(r->history, &h, why);
	if (err != VBFS_OK)
		tool_die("rto: history %s", why);
	if (h.skipped)
		tool_error("rto: history %s: %zu line%s not a run record, skipped (first: line %zu)",
			   r->history, h.skipped, h.skipped == 1 ? "" : "s", h.first_skipped_line);
	struct hist_trend t;
	history_trend(&h, &t);
	if (r->json)
		trend_json(&t, &h);
	else
		trend_text(&h, &t);
	history_free(&h);
	return VBFS_EXIT_OK;
}

int cmd_rto(int argc, char **argv)
{
	struct rto r;
	memset(&r, 0, sizeof r);
	parse_args(&r, argc, argv);
	if (r.trend)
		return trend(&r);
	int rc = drill(&r);
	privmount_events_free(&r.ev);
	privmount_free(&r.pm);
	free(r.work);
	free(r.scratch);
	return rc;
}
