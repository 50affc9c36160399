#!/usr/bin/env bash
# trust_tools_verdicts.sh - one verdict, the same word in every output.
#
# The regression (issue "No false OK"): a slow drill (`rto --target 1s
# --restore 'sleep 1.2'`) read MISSED on the command line,
# backup_verification_failed 0 in the metrics, "failed" in --trend and
# FAILED in the HTML report.  Now four drills - met, missed, failed,
# damaged - must each carry their one word through the command line,
# --json, the history, the metrics (backup_verification_failed 1 for every
# drill that did not meet its objective, backup_verification_verdict one-hot),
# --trend (text and JSON) and the HTML report.  Then: every `--json` that
# fails with exit 2 prints one JSON document, and names in drill output are
# escaped.
. "$(dirname "$0")/lib.sh"
need jq

S=$T/store I=$T/index H=$T/history.jsonl P=$T/drill.prom
mkdir -p "$S"
make_file "$S/a.bin" 2
printf 'hello\n' >"$S/small.txt"
"$VBFSCTL" build "$S" "$I" >/dev/null 2>&1 || { fail "build"; finish; exit; }
D=$T/damaged
cp -a "$S" "$D"
flip_byte "$D/a.bin" 1100000

# metric NAME [LABEL-SUBSTRING]: the value of the matching series
metric() { awk -v n="$1" -v l="${2:-}" '$1 ~ "^"n"\\{" && index($1, l) { print $2 }' "$P"; }

# drill WORD EXIT ARGS...: run it with --json, then again as text, and check
# the word in every output written by that run.
drill() {
	local word=$1 want=$2; shift 2
	local WORD
	WORD=$(tr a-z A-Z <<<"$word")
	expect_status "$word: exit $want (--json)" "$want" "$VBFSCTL" rto "$@" --history "$H" --metrics "$P" --json
	expect_eq "$word: --json verdict" "$word" "$(jq -r .verdict "$T/last.out")"
	expect_eq "$word: --json met/ok" "$([ "$word" = met ] && echo true || echo false) $([ "$word" = met ] && echo true || echo false)" \
		"$(jq -r '"\(.met) \(.ok)"' "$T/last.out")"
	expect_eq "$word: history line verdict" "$word" "$(tail -1 "$H" | jq -r .verdict)"
	expect_eq "$word: metric backup_verification_failed" "$([ "$word" = met ] && echo 0 || echo 1)" \
		"$(metric backup_verification_failed)"
	local v
	for v in met missed failed damaged; do
		expect_eq "$word: metric backup_verification_verdict{verdict=\"$v\"}" \
			"$([ "$v" = "$word" ] && echo 1 || echo 0)" \
			"$(metric backup_verification_verdict "verdict=\"$v\"")"
	done
	expect_status "$word: exit $want (text)" "$want" "$VBFSCTL" rto "$@"
	check "$word: the last line is the verdict word" grep -q "^rto: $WORD: " <(tail -1 "$T/last.err")
	check "$word: no other verdict line" test "$(grep -cE '^rto: (MET|MISSED|FAILED|DAMAGED):' "$T/last.err")" = 1
}

drill met 0 --target 1h --store "$S" --index "$I" --name s --restore 'cat "$VBFS_MOUNT/a.bin" >/dev/null'
sleep 1         # distinct history times
drill missed 1 --target 1s --store "$S" --index "$I" --name s --restore 'sleep 1.2'
check "missed: says by how much" grep -q '^rto: MISSED: 1\.[0-9]* s exceeds the 1 s target$' "$T/last.err"
sleep 1
drill failed 1 --target 1h --store "$S" --index "$I" --name s --restore 'exit 3'
check "failed: names the phase" grep -qx 'rto: FAILED: restore command failed (exit 3)' "$T/last.err"
sleep 1
# The restore fails on the EIO too: damaged outranks failed.
drill damaged 1 --target 1h --store "$D" --index "$I" --name s --restore 'cat "$VBFS_MOUNT/a.bin" >/dev/null'
check "damaged: the count, then the failed phase" \
	grep -qx 'rto: DAMAGED: 1 damage event during the drill; restore command failed (exit 1)' "$T/last.err"

# --- --trend: the same words ----------------------------------------------------
# (8 runs: each drill ran twice with --history? no: only the --json runs recorded)
expect_eq "history: 4 runs, in order" "met missed failed damaged" "$(jq -r .verdict "$H" | xargs)"
expect_status "--trend text" 0 "$VBFSCTL" rto --trend --history "$H"
check "--trend: runs per verdict" grep -qx 'runs: 4 (1 met, 1 missed, 1 failed, 1 damaged; success rate 25.0%)' "$T/last.err"
check "--trend: the last run's verdict" grep -q '^last run: .*Z, damaged$' "$T/last.err"
expect_status "--trend --json" 0 "$VBFSCTL" rto --trend --history "$H" --json
expect_eq "--trend --json: verdicts" '{"met":1,"missed":1,"failed":1,"damaged":1}' "$(jq -c .verdicts "$T/last.out")"
expect_eq "--trend --json: last_verdict" damaged "$(jq -r .last_verdict "$T/last.out")"

# --- the HTML report: the same words ----------------------------------------------
expect_status "report" 0 "$VBFSCTL" report --history "$H" --html "$T/r.html"
expect_eq "report: table rows, newest first, class and text" \
	"damaged:damaged failed:failed missed:missed met:met" \
	"$(grep -o '<tr class="[a-z]*"><td>[0-9]*</td>.*<td class="res">[a-z]*</td>' "$T/r.html" \
	   | sed 's/<tr class="\([a-z]*\)">.*<td class="res">\([a-z]*\)<\/td>/\1:\2/' | xargs)"
expect_eq "report: point titles carry the verdict" "met missed failed damaged" \
	"$(grep -o '<title>run [0-9]*, [^<]*</title>' "$T/r.html" | head -4 \
	   | sed 's/.*target [^,]*, \([a-z]*\).*/\1/' | xargs)"
check "report: no FAILED in capitals, no 'met the RTO' for a missed run" \
	test "$(grep -c 'FAILED' "$T/r.html")" = 0
check "report: verdict counts card" grep -q '<b>1 met &middot; 1 missed &middot; 1 failed &middot; 1 damaged</b><span>verdicts</span>' "$T/r.html"

# --- an old history line (no "verdict") is judged from what it holds ------------
cat >"$T/old.jsonl" <<'EOF'
{"ok":true,"met":true,"store":"k","target_seconds":100,"total_seconds":40,"events":0,"time":"2026-11-01T03:00:00Z","failed_phase":null}
{"ok":false,"met":false,"store":"k","target_seconds":10,"total_seconds":40,"events":0,"time":"2026-11-02T03:00:00Z","failed_phase":null}
{"ok":false,"met":false,"store":"k","target_seconds":100,"total_seconds":3,"events":0,"time":"2026-11-03T03:00:00Z","failed_phase":"restore"}
{"ok":false,"met":false,"store":"k","target_seconds":100,"total_seconds":3,"events":2,"time":"2026-11-04T03:00:00Z","failed_phase":"restore"}
{"ok":false,"met":false,"store":"k","target_seconds":100,"total_seconds":3,"events":0,"time":"2026-11-05T03:00:00Z","failed_phase":null,"reason":"the daemon's exit status is unknown"}
{"ok":true,"met":true,"verdict":"met","store":"k","target_seconds":100,"total_seconds":3,"events":5,"time":"2026-11-06T03:00:00Z","failed_phase":null}
EOF
expect_status "old lines: --trend" 0 "$VBFSCTL" rto --trend --history "$T/old.jsonl" --json
expect_eq "old lines: met, missed, failed, damaged, failed (cannot vouch), a 'met' with events is damaged" \
	'{"met":1,"missed":1,"failed":2,"damaged":2}' "$(jq -c .verdicts "$T/last.out")"

# --- --json on exit 2: one document, ok false, the error line ---------------------
json_err() {   # WHAT CMD...: exit 2, stdout one JSON document that says why
	local what=$1; shift
	"$@" >"$T/je.out" 2>"$T/je.err"; local got=$?
	expect_eq "$what: exit 2" 2 "$got"
	expect_eq "$what: one JSON document, ok false, exit_status 2" "false 2 1" \
		"$(jq -s -r '"\(.[0].ok) \(.[0].exit_status) \(length)"' "$T/je.out" 2>&1)"
	expect_eq "$what: error = the stderr line" "$(tail -1 "$T/je.err")" "$(jq -r .error "$T/je.out" 2>&1)"
}
json_err "verify STORE missing-index" "$VBFSCTL" verify "$S" "$T/missing-index" --json
json_err "verify STORE INDEX extra" "$VBFSCTL" verify "$S" "$I" extra --json
check "verify extra: says unexpected argument" grep -q "unexpected argument 'extra'" "$T/je.err"
json_err "verify bad option before --json" "$VBFSCTL" verify --jobs 0 "$S" "$I" --json
json_err "build into a missing store" "$VBFSCTL" build "$T/missing-store" "$T/newidx" --json
json_err "sample -n -3" "$VBFSCTL" sample --store "$S" --index "$I" -n -3 --json
json_err "sample --index missing" "$VBFSCTL" sample --store "$S" --index "$T/missing-index" --json
json_err "rto --target 0" "$VBFSCTL" rto --target 0 --restore true --json
json_err "rto --trend on a missing history" "$VBFSCTL" rto --trend --history "$T/none.jsonl" --json
"$VBFSCTL" rto --target 1h --store "$S" --index "$T" --restore true --json >"$T/je.out" 2>"$T/je.err"
expect_eq "rto, mount fails: exit 2" 2 "$?"
expect_eq "rto, mount fails: one document, ok false, verdict failed, exit_status 2" "false failed 2 1" \
	"$(jq -s -r '"\(.[0].ok) \(.[0].verdict) \(.[0].exit_status) \(length)"' "$T/je.out")"
check "rto, mount fails: error names the mount and the index" \
	grep -q "^mount failed: vbfs exited (exit 2): vbfs: $T: not a vbfs index" <(jq -r .error "$T/je.out")
json_err "abbreviated --js" "$VBFSCTL" verify "$S" "$T/missing-index" --js
json_err "unknown subcommand" "$VBFSCTL" frobnicate --json
# A drill that met its target but could not record it: exit 2, and the
# document must not say ok.
"$VBFSCTL" rto --target 1h --restore true --history "$T/no/dir/h.jsonl" --json >"$T/je.out" 2>"$T/je.err"
expect_eq "unrecorded met drill: exit 2" 2 "$?"
expect_eq "unrecorded met drill: one document, ok false, verdict met, an error" "false met true 1" \
	"$(jq -s -r '"\(.[0].ok) \(.[0].verdict) \(.[0].error != null) \(length)"' "$T/je.out")"

# --- names in drill output are escaped ------------------------------------------------
W=$T/weird WI=$T/weird-index
mkdir -p "$W"
NL=$'x\nrto: MET: 0.001 s within the 3600 s target'
ESC=$'e\x1b[8mhidden'
printf 'one\n' >"$W/$NL"; printf 'two\n' >"$W/$ESC"
"$VBFSCTL" build "$W" "$WI" >/dev/null 2>&1 || fail "build weird"
printf 'ONE\n' >"$W/$NL"; printf 'TWO\n' >"$W/$ESC"
expect_status "rto on damaged weird names" 1 "$VBFSCTL" rto --target 1h --store "$W" --index "$WI" \
	--restore 'cat "$VBFS_MOUNT"/* >/dev/null 2>&1; true'
check "rto: no forged MET line" test "$(grep -c '^rto: MET' "$T/last.err")" = 0
check "rto: the newline shown as \\x0a" grep -qF 'corrupt x\x0arto: MET: 0.001 s' "$T/last.err"
check "rto: the escape shown as \\x1b" grep -qF 'corrupt e\x1b[8mhidden' "$T/last.err"
check "rto: no raw control character on stderr" bash -c "! grep -qP '[\x00-\x08\x0b-\x1f\x7f]' '$T/last.err'"
expect_status "sample on damaged weird names" 1 "$VBFSCTL" sample --store "$W" --index "$WI" -n 2 --seed 1
check "sample: no forged MET line" test "$(grep -c '^rto: MET' "$T/last.err")" = 0
check "sample: FAIL lines escaped" grep -qF '  FAIL  x\x0arto: MET: 0.001 s within the 3600 s target: EIO at byte offset 0' "$T/last.err"
check "sample: no raw control character on stderr" bash -c "! grep -qP '[\x00-\x08\x0b-\x1f\x7f]' '$T/last.err'"
finish
