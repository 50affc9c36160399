#!/usr/bin/env bash
# trust_tools_report.sh - the HTML report's charts say what the numbers say,
# checked in the DOM headless Chromium builds from the page.
#
# The regressions: y-axis labels "0, 2, 3, 5, 7 min" on gridlines at 0, 1.67,
# 3.33, 5, 6.67 minutes; an axis titled "seconds" over minute labels; runs
# in the same minute all labelled alike; "1 damage events", "1 runs".
# For every chart: each gridline has one label, 4 units below it; the labels
# are round steps (1, 2, 2.5 or 5 x 10^n) in one unit that the axis title
# names; label values are proportional to their height; each run's point
# sits at its total on that scale; the shown x labels are distinct.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
command -v chromium >/dev/null || skip "no chromium (drill_report.sh installs it)"

chrome() {
	timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
		--user-data-dir="$T/chrome" "$@" 2>/dev/null
}

# history FILE "TIME TOTAL TARGET EVENTS" ...
history() {
	local f=$1; shift
	: >"$f"
	local r
	for r in "$@"; do
		set -- $r
		printf '{"ok":false,"met":false,"store":"s","target_seconds":%s,"total_seconds":%s,"phases":{"mount":0,"restore":%s},"events":%s,"time":"%s","failed_phase":null}\n' \
			"$3" "$2" "$2" "$4" "$1" >>"$f"
	done
}

# The issue's page: totals up to 400 s, so the axis is in minutes; three
# runs in one minute, two in one second.
history "$T/minutes.jsonl" \
	"2026-11-26T14:37:01Z 100 300 0" "2026-11-26T14:37:02Z 200 300 0" \
	"2026-11-26T14:37:02Z 300 300 1" "2026-11-26T14:38:00Z 400 300 0"
history "$T/hours.jsonl" "2026-11-20T03:00:00Z 9000 10800 0" "2026-11-21T03:00:00Z 11000 10800 0"
history "$T/subsecond.jsonl" "2026-11-20T03:00:00Z 0.31 0.5 0" "2026-11-21T03:00:00Z 0.42 0.5 0"
history "$T/one.jsonl" "2026-11-20T03:00:00Z 12 60 1"

cat >"$T/check.py" <<'EOF'
import html.parser, json, math, re, sys

class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.charts, self.cur, self.text, self.body = [], None, None, []
    def handle_starttag(self, tag, a):
        a = dict(a)
        if tag == "svg" and "chart" in a.get("class", ""):
            self.cur = {"grid": [], "ylab": [], "xlab": [], "title": None, "points": []}
            self.charts.append(self.cur)
        elif self.cur is not None and tag == "line" and a.get("class") == "grid":
            self.cur["grid"].append(float(a["y1"]))
        elif self.cur is not None and tag == "text" and a.get("class") in ("ylab", "xlab", "axis-title"):
            self.text = [a["class"], float(a.get("y", 0)), ""]
        elif self.cur is not None and tag == "circle" and "fill" in a:
            self.cur["points"].append(float(a["cy"]))
    def handle_endtag(self, tag):
        if tag == "svg":
            self.cur = None
        if tag == "text" and self.text:
            kind, y, s = self.text
            if kind == "ylab": self.cur["ylab"].append((y, s))
            elif kind == "xlab": self.cur["xlab"].append(s)
            else: self.cur["title"] = s
            self.text = None
    def handle_data(self, d):
        if self.text: self.text[2] += d
        self.body.append(d)

dom, hist = sys.argv[1], sys.argv[2]
p = Page(); p.feed(open(dom).read())
runs = [json.loads(l) for l in open(hist)]
assert len(p.charts) == 3, "charts: %d" % len(p.charts)
UNIT = {"s": "seconds", "min": "minutes", "h": "hours", "": "damage events"}
DIV = {"s": 1, "min": 60, "h": 3600, "": 1}
for n, c in enumerate(p.charts):
    grid, labs = c["grid"], c["ylab"]
    assert len(grid) == len(labs) >= 3, (n, grid, labs)
    vals, units = [], set()
    for g, (y, s) in zip(grid, labs):
        assert abs(y - (g + 4)) < 0.01, "chart %d: label %r at %g, gridline at %g" % (n, s, y, g)
        m = re.fullmatch(r"(-?[0-9.]+)(?: (s|min|h))?", s)
        assert m, "chart %d: label %r" % (n, s)
        vals.append(float(m.group(1))); units.add(m.group(2) or "")
    assert len(units) == 1, "chart %d: units %r" % (n, units)
    unit = units.pop()
    assert c["title"] == UNIT[unit], "chart %d: title %r over %r labels" % (n, c["title"], unit)
    step = vals[1] - vals[0]
    assert vals[0] == 0 and step > 0
    mant = step / 10 ** math.floor(math.log10(step))
    assert any(abs(mant - k) < 1e-9 for k in (1, 2, 2.5, 5)), "chart %d: step %g" % (n, step)
    for k, v in enumerate(vals):
        assert abs(v - k * step) < 1e-9 * max(1, v), "chart %d: labels %r not in steps of %g" % (n, vals, step)
    bottom, top = grid[0], grid[-1]
    for g, v in zip(grid, vals):   # the height of a label is proportional to its value
        assert abs((bottom - g) - v / vals[-1] * (bottom - top)) < 0.05, (n, g, v)
    if n == 0:                     # the totals chart: each point at its total
        assert len(c["points"]) == len(runs)
        for cy, r in zip(c["points"], runs):
            want = bottom - r["total_seconds"] / DIV[unit] / vals[-1] * (bottom - top)
            assert abs(cy - want) < 0.06, "run total %g at y %g, wanted %g" % (r["total_seconds"], cy, want)
    shown = c["xlab"][:-1]          # the last one is the axis title
    assert len(shown) == len(set(shown)), "chart %d: x labels repeat: %r" % (n, shown)
    print("chart %d: %s, %s" % (n, c["title"], ", ".join(s for _, s in labs)))
text = " ".join(p.body)
bad = re.findall(r"\b1 (?:runs|damage events|events)\b", text)
assert not bad, "plurals: %r" % bad
EOF

for h in minutes hours subsecond one; do
	expect_status "$h: report" 0 "$VBFSCTL" report --history "$T/$h.jsonl" --html "$T/$h.html"
	chrome --dump-dom "file://$T/$h.html" >"$T/$h.dom"
	check "$h: Chromium built the page" grep -q '<svg class="chart"' "$T/$h.dom"
	if $PY "$T/check.py" "$T/$h.dom" "$T/$h.jsonl" >"$T/$h.res" 2>&1; then
		pass "$h: every chart's labels sit on its gridlines, in its unit: $(head -1 "$T/$h.res")"
	else
		fail "$h: $(tail -1 "$T/$h.res")"
	fi
done
check "minutes: the totals axis reads 0 2 4 6 8 min" grep -qx 'chart 0: minutes, 0 min, 2 min, 4 min, 6 min, 8 min' "$T/minutes.res"
check "hours: the axis is in hours" grep -qx 'chart 0: hours, 0 h, 1 h, 2 h, 3 h, 4 h' "$T/hours.res"
check "subsecond: the axis is in seconds" grep -qx 'chart 0: seconds, 0.0 s, 0.2 s, 0.4 s, 0.6 s' "$T/subsecond.res"
expect_eq "minutes: same-minute runs get seconds, same-second ones a run number" \
	"11-26 14:37:01 #1|11-26 14:37:02 #2|11-26 14:37:02 #3|11-26 14:38:00 #4" \
	"$(grep -o '<text class="xlab"[^>]*>[^<]*' "$T/minutes.dom" | sed 's/.*>//' | grep -v 'run time' | head -4 | paste -sd'|')"
check "one run: '1 run' on its card" grep -q '<b>1</b><span>run</span>' "$T/one.dom"
check "one run: '1 damage event' in its title" grep -q '1 damage event</title>' "$T/one.dom"
check "report: '1 run ->' on stderr" grep -q "^report: 1 run -> $T/one.html$" "$T/last.err"

# The check itself must be able to fail: the old axis, labels off their lines.
sed 's/>2 min</>3 min</' "$T/minutes.dom" >"$T/broken.dom"
check "control: a label off its gridline is caught" bash -c "! $PY '$T/check.py' '$T/broken.dom' '$T/minutes.jsonl' >/dev/null 2>&1"
sed 's/>minutes</>seconds</' "$T/minutes.dom" >"$T/broken.dom"
check "control: a title in another unit is caught" bash -c "! $PY '$T/check.py' '$T/broken.dom' '$T/minutes.jsonl' >/dev/null 2>&1"
finish
