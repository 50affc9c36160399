#!/bin/bash
# drill_report.sh - `vbfsctl report`: one self-contained HTML page, rendered
# by headless Chromium (Debian's `chromium`): the three SVG charts and the
# table are in the DOM, nothing is fetched, the console stays silent, every
# history string is escaped, and a screenshot comes out at the asked size.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
if ! command -v chromium >/dev/null; then
	echo "# installing chromium (Debian package)"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends chromium; } >"$T/apt.log" 2>&1
	command -v chromium >/dev/null || skip "chromium cannot be installed: $(tail -1 "$T/apt.log")"
fi

# A month of nightly drills: slowly getting slower, one damaged run, one
# failed restore, the target lowered near the end, and a hostile store name.
H=$T/history.jsonl
$PY - "$H" <<'EOF'
import json, sys, datetime
t0 = datetime.datetime(2026, 10, 28, 3, 0, 0)
with open(sys.argv[1], "w") as f:
    for i in range(30):
        ph = {"mount": 0.05 + i / 1000, "restore": 40 + 1.5 * i, "validate": 5.0}
        ev, failed, reason = 0, None, None
        if i == 12:
            ev = 3
        if i == 20:
            failed, reason = "restore", "restore command failed (exit 2) <b>&amp;</b>"
            ph = {"mount": 0.05, "restore": 4.2}
        target = 90 if i < 25 else 80
        total = round(sum(ph.values()), 6)
        met = failed is None and ev == 0 and total <= target
        f.write(json.dumps({"ok": met, "met": met, "store": "pg<script>alert(1)</script>&\"x\"",
                            "target_seconds": target, "total_seconds": total, "phases": ph,
                            "events": ev, "time": (t0 + datetime.timedelta(days=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "failed_phase": failed, **({"reason": reason} if reason else {})}) + "\n")
EOF

expect_status "report renders" 0 $VBFSCTL report --history "$H" --html "$T/report.html"
check "report: says where it wrote" grep -q "report: 30 runs -> $T/report.html" "$T/last.err"
R=$T/report.html
expect_eq "three inline SVG charts" "3" "$(grep -c '<svg class="chart"' "$R")"
check "no <script> anywhere (strings escaped)" test "$(grep -ci '<script' "$R")" = 0
check "store name escaped" grep -qF 'pg&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;x&quot;' "$R"
check "reason escaped" grep -qF 'restore command failed (exit 2) &lt;b&gt;&amp;amp;&lt;/b&gt;' "$R"
check "no external resources (src=, href=, url(), @import)" \
	test "$(grep -Eci 'src=|href=|url\(|@import' "$R")" = 0
check "only the SVG namespace looks like a URL" \
	test "$(grep -o 'https\?://[^" ]*' "$R" | sort -u)" = "http://www.w3.org/2000/svg"
check "a CSP forbids every fetch" grep -q "Content-Security-Policy\" content=\"default-src 'none'" "$R"
check "RTO target line drawn" grep -q '<polyline class="target"' "$R"
expect_eq "one point per run" "30" "$(grep -c '<circle cx=[^>]*fill="#[0-9a-f]*"><title>run [0-9]*, ' "$R")"
expect_eq "table: one row per run" "30" "$(grep -c '^<tr class="\(met\|missed\|failed\|damaged\)">' "$R")"
MET=$($PY -c 'import json,sys; print(sum(json.loads(l)["met"] for l in open(sys.argv[1])))' "$H")
check "summary: success rate ($MET of 30)" grep -q "<b>$(( (MET * 100 + 15) / 30 ))%</b><span>met the RTO ($MET of 30)</span>" "$R"
check "summary: trend" grep -q '<b>slower</b>' "$R"

# --- Chromium: DOM, console, screenshot -------------------------------------
chrome() {
	timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
		--user-data-dir="$T/chrome" --enable-logging=stderr --v=0 "$@"
}
chrome --dump-dom "file://$R" >"$T/dom.html" 2>"$T/dom.err"
expect_eq "DOM: three SVG charts" "3" "$(grep -o '<svg class="chart"' "$T/dom.html" | wc -l)"
expect_eq "DOM: 30 table rows" "30" "$(grep -o '<tr class="\(met\|missed\|failed\|damaged\)">' "$T/dom.html" | wc -l)"
check "DOM: the page title" grep -q '<title>vbfs restore drills</title>' "$T/dom.html"
if grep -q 'CONSOLE' "$T/dom.err"; then
	fail "console messages: $(grep CONSOLE "$T/dom.err" | head -3)"
else
	pass "no console errors or blocked loads"
fi
# The console check must be able to fail: a page that tries a fetch is caught.
printf '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="default-src %s"></head><body><img src="http://127.0.0.1:9/x.png"></body></html>\n' "'none'" >"$T/bad.html"
chrome --dump-dom "file://$T/bad.html" >/dev/null 2>"$T/bad.err"
check "control: a blocked fetch shows up on the console" grep -q 'CONSOLE' "$T/bad.err"

chrome --screenshot="$T/report.png" --window-size=1200,1600 "file://$R" >/dev/null 2>"$T/shot.err"
expect_eq "screenshot: a 1200x1600 PNG" "1200x1600" "$($PY -c '
import struct, sys
b = open(sys.argv[1], "rb").read(32)
assert b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR"
print("%dx%d" % struct.unpack(">II", b[16:24]))' "$T/report.png" 2>&1)"
# Keep it where a person can look at it.
if [ -n "${VBFS_BUILD:-}" ] && [ -d "$VBFS_BUILD" ]; then
	cp "$T/report.png" "$VBFS_BUILD/drill_report.png" && cp "$R" "$VBFS_BUILD/drill_report.html"
fi

# --- edge cases ---------------------------------------------------------------
: >"$T/empty.jsonl"
expect_status "empty history renders" 0 $VBFSCTL report --history "$T/empty.jsonl" --html "$T/empty.html"
check "empty: says no runs" grep -q 'No runs recorded yet' "$T/empty.html"
expect_eq "empty: charts still there" "3" "$(grep -c '<svg class="chart"' "$T/empty.html")"
printf '{"total_seconds":1,"met":true,"time":"2026-11-01T03:00:00Z","store":"s","target_seconds":2}\n{"tot\n' >"$T/torn.jsonl"
expect_status "torn line skipped" 0 $VBFSCTL report --history "$T/torn.jsonl" --html "$T/torn.html"
check "torn: warned" grep -q 'not a run record, skipped' "$T/last.err"
expect_status "missing history: exit 2" 2 $VBFSCTL report --history "$T/none.jsonl" --html "$T/x.html"
check "missing history: no output file" test ! -e "$T/x.html"
expect_status "unwritable output: exit 2" 2 $VBFSCTL report --history "$H" --html "$T/no/dir/x.html"
expect_status "no --html" 2 $VBFSCTL report --history "$H"
expect_status "--help" 0 $VBFSCTL report --help
check "no temp files left" test -z "$(ls "$T" | grep '\.tmp\.')"

finish
