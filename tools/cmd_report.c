/*
 * cmd_report.c - `vbfsctl report --history FILE --html OUT.html`: one
 * self-contained HTML page about the RTO drills (inline CSS, inline SVG, no
 * script, no network fetch: a Content-Security-Policy forbids them), for an
 * operator's browser or a ticket attachment.
 *
 * Charts: restore time per run against the RTO target line, the phase
 * breakdown (stacked), damage events per run; then the table of runs,
 * newest first.  Every string from the history is HTML-escaped.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tool.h"
#include "history.h"
#include "metrics.h"

/* Chart geometry (SVG user units; the SVG scales to the page width). */
#define CW   960        /* whole chart */
#define CH   280
#define ML   70         /* margins: left (y labels), right, top, bottom */
#define MR   20
#define MT   20
#define MB   50
#define PW   (CW - ML - MR)
#define PH   (CH - MT - MB)

static const char *const phase_color[HIST_NPHASES] = { "#4e79a7", "#f28e2b", "#76b7b2" };
#define C_MET    "#59a14f"
#define C_MISSED "#d4a017"
#define C_FAIL   "#e15759"
#define C_TARGET "#d62728"
#define C_DAMAGE "#b30000"

/* One colour per verdict (history.h), in enum order. */
static const char *const verdict_color[HIST_NVERDICTS] = { C_MET, C_MISSED, C_FAIL, C_DAMAGE };

/* "1 run", "2 runs": every count printed with a noun goes through here. */
static const char *plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vbfsctl report --history FILE --html OUT.html\n\n"
		"Render the RTO drill history (vbfsctl rto --history FILE) as one\n"
		"self-contained HTML page: restore time per run against the RTO target,\n"
		"the phase breakdown, damage events over time, and the table of runs.\n"
		"The page loads nothing from the network.\n");
}

static void esc(FILE *o, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&':  fputs("&amp;", o); break;
		case '<':  fputs("&lt;", o); break;
		case '>':  fputs("&gt;", o); break;
		case '"':  fputs("&quot;", o); break;
		case '\'': fputs("&#39;", o); break;
		default:
			/* Control characters would make the XHTML-ish SVG invalid. */
			if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t')
				fputs("\xef\xbf\xbd", o);
			else
				fputc(*s, o);
		}
	}
}

/* "45 s", "12.5 min", "2.1 h" */
static const char *dur(double s, char buf[32])
{
	if (s < 120)
		snprintf(buf, 32, "%.*f s", s < 10 ? 2 : s < 100 ? 1 : 0, s);
	else if (s < 7200)
		snprintf(buf, 32, "%.1f min", s / 60);
	else
		snprintf(buf, 32, "%.1f h", s / 3600);
	return buf;
}

/* A round step (1, 2, 2.5 or 5 times a power of ten) giving about `ticks`
 * intervals up to max. */
static double nice_step(double max, int ticks)
{
	if (max <= 0)
		return 1;
	double raw = max / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
	double step = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
	return step * mag;
}

/*
 * A y axis.  The unit is chosen first (seconds, minutes or hours for
 * times) and the round step is taken in that unit, so every label is a
 * round number that sits exactly on its gridline: 0, 2, 4, 6 min, never
 * 0, 2, 3, 5, 7 min for gridlines at 0, 1.67, 3.33, 5, 6.67.
 */
struct axis {
	size_t n;
	double ymax, step;              /* in data units (seconds or counts) */
	double div;                     /* data units per label unit */
	int prec;                       /* decimals every label needs */
	const char *unit, *title;       /* " min", "minutes" */
};

static double xmid(const struct axis *a, size_t i)
{
	return ML + ((double)i + 0.5) * PW / (double)a->n;
}

static double ypos(const struct axis *a, double v)
{
	return MT + PH - v / a->ymax * PH;
}

/* Decimals needed to print every multiple of `step` exactly. */
static int step_decimals(double step)
{
	int prec = 0;
	while (prec < 6 && fabs(step * pow(10, prec) - round(step * pow(10, prec)))
	       > 1e-6 * step * pow(10, prec))
		prec++;
	return prec;
}

static void axis_init(struct axis *a, size_t n, double maxv, bool seconds, const char *counts)
{
	double top = maxv > 0 ? maxv * 1.08 : 1;
	a->n = n ? n : 1;
	a->div = 1;
	a->unit = seconds ? " s" : "";
	a->title = seconds ? "seconds" : counts;
	if (seconds && top >= 7200) {
		a->div = 3600;
		a->unit = " h";
		a->title = "hours";
	} else if (seconds && top >= 180) {
		a->div = 60;
		a->unit = " min";
		a->title = "minutes";
	}
	double step_u = nice_step(top / a->div, 5);
	if (!seconds && step_u < 1)
		step_u = 1;             /* counts are whole */
	a->prec = step_decimals(step_u);
	a->step = step_u * a->div;
	a->ymax = ceil(top / a->div / step_u - 1e-9) * a->step;
}

/*
 * The x labels of the runs shown (every `every`-th): "11-26 14:37"; with
 * seconds when two shown runs fall in the same minute; with the run number
 * too when they fall in the same second, so no two labels read the same.
 */
static void x_labels(const struct history *h, size_t every, char (*lab)[32])
{
	for (int detail = 0; detail < 3; detail++) {
		for (size_t i = 0; i < h->n; i += every) {
			const char *t = h->runs[i].time_str;
			/* "2026-11-26T14:37:25Z" -> "11-26 14:37" (detail 1: ":25") */
			if (strlen(t) >= 19 && t[10] == 'T')
				snprintf(lab[i], 32, "%.5s %.*s", t + 5, detail ? 8 : 5, t + 11);
			else
				snprintf(lab[i], 32, "%.16s", t);
			if (detail == 2) {
				char num[24];
				snprintf(num, sizeof num, " #%zu", i + 1);
				size_t len = strlen(lab[i]), nl = strlen(num);
				if (len + nl >= 32)
					len = 31 - nl;
				memcpy(lab[i] + len, num, nl + 1);
			}
		}
		bool same = false;
		for (size_t i = 0; i < h->n && !same; i += every)
			for (size_t j = i + every; j < h->n && !same; j += every)
				same = !strcmp(lab[i], lab[j]);
		if (!same)
			return;
	}
}

static void svg_open(FILE *o, const char *label)
{
	fprintf(o, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" role=\"img\" "
		"xmlns=\"http://www.w3.org/2000/svg\" aria-label=\"", CW, CH);
	esc(o, label);
	fprintf(o, "\">\n");
}

/* Grid, y labels (the axis's unit) and x labels (run dates). */
static void svg_axes(FILE *o, const struct axis *a, const struct history *h)
{
	char b[48];
	long ticks = lround(a->ymax / a->step);
	for (long k = 0; k <= ticks; k++) {
		double y = ypos(a, (double)k * a->step);
		fprintf(o, "<line class=\"grid\" x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\"/>\n",
			ML, y, ML + PW, y);
		snprintf(b, sizeof b, "%.*f%s", a->prec, (double)k * a->step / a->div, a->unit);
		fprintf(o, "<text class=\"ylab\" x=\"%d\" y=\"%.2f\">%s</text>\n", ML - 6, y + 4, b);
	}
	fprintf(o, "<text class=\"axis-title\" x=\"14\" y=\"%d\" transform=\"rotate(-90 14 %d)\">",
		MT + PH / 2, MT + PH / 2);
	esc(o, a->title);
	fprintf(o, "</text>\n");
	fprintf(o, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n",
		ML, MT + PH, ML + PW, MT + PH);
	size_t every = h->n > 8 ? (h->n + 7) / 8 : 1;
	char (*lab)[32] = calloc(h->n ? h->n : 1, sizeof *lab);
	if (!lab)
		return;
	x_labels(h, every, lab);
	for (size_t i = 0; i < h->n; i += every) {
		fprintf(o, "<text class=\"xlab\" x=\"%.1f\" y=\"%d\">", xmid(a, i), MT + PH + 18);
		esc(o, lab[i]);
		fprintf(o, "</text>\n");
	}
	free(lab);
	fprintf(o, "<text class=\"xlab\" x=\"%d\" y=\"%d\">run time (UTC), oldest left</text>\n",
		ML + PW / 2, CH - 6);
}

static void run_title(FILE *o, const struct hist_run *r, size_t i)
{
	char b1[32], b2[32];
	fprintf(o, "<title>run %zu, ", i + 1);
	esc(o, r->time_str);
	fprintf(o, ": total %s, target %s, %s", dur(r->total, b1), dur(r->target, b2),
		hist_verdict_names[r->verdict]);
	if (r->events)
		fprintf(o, ", %" PRIu64 " damage %s", r->events, plural(r->events, "event", "events"));
	if (r->failed_phase) {
		fprintf(o, ", failed in ");
		esc(o, r->failed_phase);
	}
	fprintf(o, "</title>");
}

static void chart_total(FILE *o, const struct history *h)
{
	double maxv = 0;
	for (size_t i = 0; i < h->n; i++)
		maxv = fmax(maxv, fmax(h->runs[i].total, h->runs[i].target));
	struct axis a;
	axis_init(&a, h->n, maxv, true, NULL);
	svg_open(o, "Restore time per run against the RTO target");
	svg_axes(o, &a, h);
	/* The target as a step line: it may change between runs. */
	fprintf(o, "<polyline class=\"target\" points=\"");
	for (size_t i = 0; i < h->n; i++) {
		double y = ypos(&a, h->runs[i].target);
		fprintf(o, "%.1f,%.1f %.1f,%.1f ", ML + (double)i * PW / (double)a.n, y,
			ML + (double)(i + 1) * PW / (double)a.n, y);
	}
	fprintf(o, "\"/>\n");
	if (h->n) {
		char b[32];
		/* Above the line at the left end, where the oldest runs are. */
		fprintf(o, "<text class=\"target-lab\" x=\"%d\" y=\"%.1f\">RTO target %s</text>\n",
			ML + 6, ypos(&a, h->runs[0].target) - 7, dur(h->runs[0].target, b));
	}
	fprintf(o, "<polyline class=\"total\" points=\"");
	for (size_t i = 0; i < h->n; i++)
		fprintf(o, "%.1f,%.1f ", xmid(&a, i), ypos(&a, h->runs[i].total));
	fprintf(o, "\"/>\n");
	double r = h->n > 200 ? 1.5 : h->n > 60 ? 2.5 : 4;
	for (size_t i = 0; i < h->n; i++) {
		fprintf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\">",
			xmid(&a, i), ypos(&a, h->runs[i].total), r, verdict_color[h->runs[i].verdict]);
		run_title(o, &h->runs[i], i);
		fprintf(o, "</circle>\n");
	}
	fprintf(o, "</svg>\n");
}

static double bar_width(const struct axis *a)
{
	double w = (double)PW / (double)a->n * 0.7;
	return w < 1 ? 1 : w > 40 ? 40 : w;
}

static void chart_phases(FILE *o, const struct history *h)
{
	double maxv = 0;
	for (size_t i = 0; i < h->n; i++) {
		double sum = 0;
		for (int p = 0; p < HIST_NPHASES; p++)
			sum += h->runs[i].has_phase[p] ? h->runs[i].phase[p] : 0;
		maxv = fmax(maxv, sum);
	}
	struct axis a;
	axis_init(&a, h->n, maxv, true, NULL);
	svg_open(o, "Phase breakdown per run: mount, restore, validate");
	svg_axes(o, &a, h);
	double w = bar_width(&a);
	for (size_t i = 0; i < h->n; i++) {
		double base = 0;
		for (int p = 0; p < HIST_NPHASES; p++) {
			const struct hist_run *r = &h->runs[i];
			if (!r->has_phase[p] || r->phase[p] <= 0)
				continue;
			double y0 = ypos(&a, base), y1 = ypos(&a, base + r->phase[p]);
			char b[32];
			fprintf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.2f\" "
				"fill=\"%s\"><title>run %zu %s: %s</title></rect>\n",
				xmid(&a, i) - w / 2, y1, w, y0 - y1, phase_color[p], i + 1,
				hist_phase_names[p], dur(r->phase[p], b));
			base += r->phase[p];
		}
	}
	fprintf(o, "</svg>\n<p class=\"legend\">");
	for (int p = 0; p < HIST_NPHASES; p++)
		fprintf(o, "<span><i style=\"background:%s\"></i>%s</span>",
			phase_color[p], hist_phase_names[p]);
	fprintf(o, "</p>\n");
}

static void chart_events(FILE *o, const struct history *h)
{
	double maxv = 0;
	for (size_t i = 0; i < h->n; i++)
		maxv = fmax(maxv, (double)h->runs[i].events);
	struct axis a;
	axis_init(&a, h->n, maxv > 4 ? maxv : 4, false, "damage events");
	svg_open(o, "Damage events per run");
	svg_axes(o, &a, h);
	double w = bar_width(&a);
	for (size_t i = 0; i < h->n; i++) {
		const struct hist_run *r = &h->runs[i];
		if (!r->events) {
			fprintf(o, "<circle cx=\"%.1f\" cy=\"%d\" r=\"2\" fill=\"%s\">"
				"<title>run %zu: no damage</title></circle>\n",
				xmid(&a, i), MT + PH, C_MET, i + 1);
			continue;
		}
		double y = ypos(&a, (double)r->events);
		fprintf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.2f\" fill=\"%s\">"
			"<title>run %zu: %" PRIu64 " damage %s</title></rect>\n",
			xmid(&a, i) - w / 2, y, w, MT + PH - y, C_DAMAGE, i + 1, r->events,
			plural(r->events, "event", "events"));
	}
	fprintf(o, "</svg>\n");
}

static void table(FILE *o, const struct history *h)
{
	char b[32];
	fprintf(o, "<table>\n<thead><tr><th>#</th><th>time (UTC)</th><th>store</th>"
		"<th>result</th><th>total</th><th>target</th>");
	for (int p = 0; p < HIST_NPHASES; p++)
		fprintf(o, "<th>%s</th>", hist_phase_names[p]);
	fprintf(o, "<th>damage events</th><th>reason</th></tr></thead>\n<tbody>\n");
	for (size_t k = h->n; k-- > 0;) {
		const struct hist_run *r = &h->runs[k];
		fprintf(o, "<tr class=\"%s\"><td>%zu</td><td class=\"time\">",
			hist_verdict_names[r->verdict], k + 1);
		/* "2026-11-26T14:37:25Z" reads better as "2026-11-26 14:37:25". */
		char tbuf[64];
		snprintf(tbuf, sizeof tbuf, "%s", r->time_str);
		if (strlen(tbuf) == 20 && tbuf[10] == 'T' && tbuf[19] == 'Z') {
			tbuf[10] = ' ';
			tbuf[19] = '\0';
		}
		esc(o, tbuf);
		fprintf(o, "</td><td>");
		esc(o, r->store);
		fprintf(o, "</td><td class=\"res\">%s</td><td class=\"num\">%.3f s</td>"
			"<td class=\"num\">%s</td>", hist_verdict_names[r->verdict], r->total,
			dur(r->target, b));
		for (int p = 0; p < HIST_NPHASES; p++) {
			if (r->has_phase[p])
				fprintf(o, "<td class=\"num\">%.3f s</td>", r->phase[p]);
			else
				fprintf(o, "<td class=\"num\">&mdash;</td>");
		}
		fprintf(o, "<td class=\"num\">%" PRIu64 "</td><td>", r->events);
		if (r->reason)
			esc(o, r->reason);
		else if (r->verdict == HIST_DAMAGED)
			fprintf(o, "damage found during the restore");
		else if (r->verdict == HIST_MISSED)
			fprintf(o, "over the target");
		fprintf(o, "</td></tr>\n");
	}
	fprintf(o, "</tbody>\n</table>\n");
}

static const char css[] =
	"body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
	"margin:0;background:#f6f7f9;color:#1d2330}"
	"main{max-width:1100px;margin:0 auto;padding:24px}"
	"h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}"
	".sub{color:#5b6475;margin:0 0 16px}"
	".cards{display:flex;flex-wrap:wrap;gap:12px}"
	".card{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:10px 14px;min-width:150px}"
	".card b{display:block;font-size:20px}.card span{color:#5b6475;font-size:13px}"
	".rec{background:#fff8e1;border:1px solid #f0d98c;border-radius:8px;padding:10px 14px;margin-top:12px}"
	".rec.good{background:#eef8ee;border-color:#a8d5a8}"
	".panel{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:8px}"
	"svg.chart{width:100%;height:auto;display:block}"
	".grid{stroke:#e3e6ec;stroke-width:1}.axis{stroke:#8a93a5;stroke-width:1}"
	".ylab{font-size:12px;fill:#5b6475;text-anchor:end}"
	".xlab{font-size:12px;fill:#5b6475;text-anchor:middle}"
	".axis-title{font-size:12px;fill:#5b6475;text-anchor:middle}"
	".target{fill:none;stroke:" C_TARGET ";stroke-width:2;stroke-dasharray:7 5}"
	".target-lab{font-size:12px;fill:" C_TARGET ";text-anchor:start;font-weight:600;"
	"paint-order:stroke;stroke:#fff;stroke-width:4px}"
	".total{fill:none;stroke:#4e79a7;stroke-width:2}"
	".legend{margin:6px 0 0;font-size:13px}.legend span{margin-right:16px}"
	".legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;vertical-align:-1px}"
	"table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}"
	"th,td{border-bottom:1px solid #e3e6ec;padding:5px 8px;text-align:left;vertical-align:top}"
	"th{background:#eef0f4;position:sticky;top:0}"
	"td.time{white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
	"tr.met td.res{color:" C_MET "}tr.missed td.res{color:#9a7400;font-weight:700}"
	"tr.failed td.res{color:" C_FAIL ";font-weight:700}"
	"tr.damaged td.res{color:" C_DAMAGE ";font-weight:700}"
	"footer{color:#8a93a5;font-size:12px;margin-top:24px}";

static void summary(FILE *o, const struct history *h, const char *src)
{
	struct hist_trend t;
	history_trend(h, &t);
	char b[32], ts[32];
	fprintf(o, "<h1>Restore drills</h1>\n<p class=\"sub\">");
	/* The distinct stores, in order of first appearance. */
	size_t shown = 0;
	for (size_t i = 0; i < h->n && shown < 8; i++) {
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = !strcmp(h->runs[j].store, h->runs[i].store);
		if (seen)
			continue;
		fprintf(o, "%s<b>", shown++ ? ", " : "store ");
		esc(o, h->runs[i].store);
		fprintf(o, "</b>");
	}
	fprintf(o, "%shistory ", shown ? " &middot; " : "");
	esc(o, src);
	fprintf(o, "</p>\n<div class=\"cards\">\n");
	fprintf(o, "<div class=\"card\"><b>%zu</b><span>%s</span></div>\n", t.runs,
		plural(t.runs, "run", "runs"));
	fprintf(o, "<div class=\"card\"><b>%.0f%%</b><span>met the RTO (%zu of %zu)</span></div>\n",
		100 * t.success_rate, t.met, t.runs);
	fprintf(o, "<div class=\"card verdicts\"><b>");
	for (int v = 0; v < HIST_NVERDICTS; v++)
		fprintf(o, "%s%zu %s", v ? " &middot; " : "", t.verdicts[v], hist_verdict_names[v]);
	fprintf(o, "</b><span>verdicts</span></div>\n");
	if (h->n)
		fprintf(o, "<div class=\"card\"><b class=\"verdict-%s\">%s</b><span>last run</span></div>\n",
			hist_verdict_names[h->runs[h->n - 1].verdict],
			hist_verdict_names[h->runs[h->n - 1].verdict]);
	fprintf(o, "<div class=\"card\"><b>%s</b><span>mean total</span></div>\n",
		dur(t.mean_total, b));
	fprintf(o, "<div class=\"card\"><b>%s</b><span>latest RTO target</span></div>\n",
		dur(t.last_target, b));
	fprintf(o, "<div class=\"card\"><b>%s</b><span>slowest phase</span></div>\n",
		t.slowest >= 0 ? hist_phase_names[t.slowest] : "&mdash;");
	fprintf(o, "<div class=\"card\"><b>%s</b><span>trend, %+.2f s per run</span></div>\n",
		t.direction, t.slope_per_run);
	if (t.last_success) {
		vbfs_rfc3339(t.last_success, ts);
		if (strlen(ts) == 20) {         /* "2026-11-21 03:12" */
			ts[10] = ' ';
			ts[16] = '\0';
		}
	}
	fprintf(o, "<div class=\"card\"><b>%s</b><span>last success (UTC)</span></div>\n",
		t.last_success ? ts : "never");
	fprintf(o, "</div>\n<p class=\"rec%s\"><b>Recommendation:</b> ",
		!strcmp(t.recommendation, "RTO targets met consistently") ? " good" : "");
	esc(o, t.recommendation);
	fprintf(o, "</p>\n");
}

static void render(FILE *o, const struct history *h, const char *src)
{
	fprintf(o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
		"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
		"style-src 'unsafe-inline'; img-src data:\">\n"
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
		"<title>vbfs restore drills</title>\n<style>%s</style>\n</head>\n<body>\n<main>\n",
		css);
	summary(o, h, src);
	fprintf(o, "<h2>Restore time per run</h2>\n<div class=\"panel\">\n");
	chart_total(o, h);
	fprintf(o, "<p class=\"legend\">");
	for (int v = 0; v < HIST_NVERDICTS; v++)
		fprintf(o, "<span><i style=\"background:%s\"></i>%s</span>", verdict_color[v],
			hist_verdict_names[v]);
	fprintf(o, "<span><i style=\"background:%s\"></i>RTO target (dashed)</span></p>\n</div>\n",
		C_TARGET);
	fprintf(o, "<h2>Phase breakdown</h2>\n<div class=\"panel\">\n");
	chart_phases(o, h);
	fprintf(o, "</div>\n<h2>Damage events over time</h2>\n<div class=\"panel\">\n");
	chart_events(o, h);
	fprintf(o, "</div>\n<h2>Runs</h2>\n");
	if (h->n)
		table(o, h);
	else
		fprintf(o, "<p>No runs recorded yet: run <code>vbfsctl rto --history FILE</code>.</p>\n");
	char ts[32];
	vbfs_rfc3339(vbfs_now(), ts);
	fprintf(o, "<footer>Generated by vbfsctl %s at %s UTC.</footer>\n</main>\n</body>\n</html>\n",
		VBFS_VERSION, ts);
}

int cmd_report(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "history", required_argument, NULL, 'H' },
		{ "html",    required_argument, NULL, 'o' },
		{ "help",    no_argument,       NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *hist = NULL, *out = NULL;
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (c) {
		case 'H': hist = optarg; break;
		case 'o': out = optarg; break;
		case 'h': usage(stdout); return VBFS_EXIT_OK;
		default: tool_getopt_error("report", c, argv);
		}
	}
	if (optind < argc)
		tool_usage_error("report", "unexpected argument '%s'", argv[optind]);
	if (!hist || !out)
		tool_usage_error("report", "give --history FILE and --html OUT.html");

	struct history h;
	char why[VBFS_WHY_LEN];
	if (history_load(hist, &h, why) != VBFS_OK)
		tool_die("report: history %s", why);
	if (h.skipped)
		tool_error("report: history %s: %zu line%s not a run record, skipped (first: line %zu)",
			   hist, h.skipped, h.skipped == 1 ? "" : "s", h.first_skipped_line);
	char *buf = NULL;
	size_t len = 0;
	FILE *o = open_memstream(&buf, &len);
	if (!o)
		tool_die("report: out of memory");
	render(o, &h, hist);
	if (fclose(o) != 0)
		tool_die("report: out of memory");
	vbfs_err err = vbfs_write_file_atomic(out, buf, len, 0644, why);
	free(buf);
	if (err != VBFS_OK)
		tool_die("report: %s", why);
	fprintf(stderr, "report: %zu %s -> %s\n", h.n, plural(h.n, "run", "runs"), out);
	history_free(&h);
	return VBFS_EXIT_OK;
}
