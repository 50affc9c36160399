#!/bin/bash
# scale_shard_badinput.sh - bad input to the scale-out commands: every case
# is exit 2 with one line on stderr, and nothing is written (no report, no
# metrics, the state file untouched).
. "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || need jq

S=$T/store I=$T/index
mkdir -p "$S"; make_file "$S/a" 3; make_file "$S/b" 1
"$VBFSCTL" build "$S" "$I" --block-size 64K >/dev/null 2>&1 || { fail "build"; finish; exit 1; }
O=$T/other OI=$T/other.idx
mkdir -p "$O"; make_file "$O/x" 1
"$VBFSCTL" build "$O" "$OI" >/dev/null 2>&1
for k in 0 1 2; do "$VBFSCTL" verify "$S" "$I" --shard $k/3 --report "$T/r$k.json" 2>/dev/null; done
"$VBFSCTL" verify "$O" "$OI" --shard 2/3 --report "$T/other2.json" 2>/dev/null
"$VBFSCTL" verify "$S" "$I" --shard 2/4 --report "$T/n4.json" 2>/dev/null
"$VBFSCTL" verify "$S" "$I" --resume "$T/state" --max-duration 0 2>/dev/null
cp "$T/state" "$T/state.before"
printf '{"ok": true}\n' >"$T/notreport.json"
printf 'not json' >"$T/garbage"

# bad2 WHAT CMD...: exit 2, exactly one line on stderr, no report/metrics written.
bad2() {
	local what=$1; shift
	rm -f "$T/out.json" "$T/out.prom"
	expect_status "$what" 2 "$@"
	local lines; lines=$(wc -l <"$T/last.err")
	if [ "$lines" = 1 ]; then pass "$what: one line"; else fail "$what: $lines lines: $(head -c 300 "$T/last.err")"; fi
	if [ ! -e "$T/out.json" ] && [ ! -e "$T/out.prom" ]; then pass "$what: nothing written"; else fail "$what: wrote output"; fi
}
V() { "$VBFSCTL" verify "$S" "$I" --report "$T/out.json" --metrics "$T/out.prom" "$@"; }
bad2 "K = N" V --shard 3/3
bad2 "K > N" V --shard 7/3
bad2 "N = 0" V --shard 0/0
bad2 "malformed K/N" V --shard 1-3
bad2 "K not a number" V --shard x/3
bad2 "N too large" V --shard 0/100001
bad2 "empty --shard" V --shard ""
bad2 "/N without an engine's K" V --shard /4
bad2 "JOB_COMPLETION_INDEX >= VBFS_SHARDS" env JOB_COMPLETION_INDEX=4 VBFS_SHARDS=4 \
	"$VBFSCTL" verify "$S" "$I" --report "$T/out.json"
bad2 "JOB_COMPLETION_INDEX not a number" env JOB_COMPLETION_INDEX=x VBFS_SHARDS=4 \
	"$VBFSCTL" verify "$S" "$I" --report "$T/out.json"
bad2 "VBFS_SHARDS=0" env JOB_COMPLETION_INDEX=0 VBFS_SHARDS=0 "$VBFSCTL" verify "$S" "$I" --report "$T/out.json"
bad2 "SLURM task beyond the count (an array with gaps)" env SLURM_ARRAY_TASK_ID=9 \
	SLURM_ARRAY_TASK_COUNT=3 "$VBFSCTL" verify "$S" "$I" --shard auto --report "$T/out.json"
bad2 "--shard /N against SLURM_ARRAY_TASK_COUNT" env SLURM_ARRAY_TASK_ID=1 \
	SLURM_ARRAY_TASK_COUNT=3 "$VBFSCTL" verify "$S" "$I" --shard /4 --report "$T/out.json"
bad2 "bad --max-duration" V --max-duration 5x
# A budget that ran out before any block was checked verified nothing: never
# exit 0 (it did, with "PARTIAL", before), never a report or metrics file.
bad2 "a time budget that checks nothing (--max-duration 0)" V --max-duration 0 --history "$T/out.hist"
check "... says nothing was verified" grep -q -- "--max-duration 0: the time budget ran out before any block was checked: nothing was verified (64 blocks left)" "$T/last.err"
check "... and no history line" test ! -e "$T/out.hist"
expect_status "... --json says ok: false" 2 "$VBFSCTL" verify "$S" "$I" --max-duration 0 --json
check "... one document: the plan, the error and exit 2" jq -s -e 'length == 1 and (.[0] | .ok == false and
	.exit_status == 2 and .complete == false and .blocks == 0 and .shard.blocks == 64 and
	(.error | test("nothing was verified")))' "$T/last.out"
bad2 "a state of another index" "$VBFSCTL" verify "$O" "$OI" --resume "$T/state" --report "$T/out.json"
bad2 "a state of another shard" V --resume "$T/state" --shard 0/2
bad2 "a state that is not one" V --resume "$T/garbage"
check "the state is untouched" cmp -s "$T/state" "$T/state.before"
check "the file that is not a state is untouched" test "$(cat "$T/garbage")" = "not json"
bad2 "--errors-only: not a report" V --errors-only "$T/notreport.json"
bad2 "--errors-only: not JSON" V --errors-only "$T/garbage"
bad2 "--errors-only: another index's report" V --errors-only "$T/other2.json"
bad2 "--errors-only with --shard" V --errors-only "$T/r0.json" --shard 0/2
bad2 "--sign-key that is not a key" V --shard 0/3 --sign-key "$T/garbage"
M() { "$VBFSCTL" merge --report "$T/out.json" --metrics "$T/out.prom" "$@"; }
bad2 "merge: a shard missing" M "$T/r0.json" "$T/r1.json"
bad2 "merge: a shard twice" M "$T/r0.json" "$T/r1.json" "$T/r1.json"
bad2 "merge: a shard of another index" M "$T/r0.json" "$T/r1.json" "$T/other2.json"
bad2 "merge: a shard of another N" M "$T/r0.json" "$T/r1.json" "$T/n4.json"
bad2 "merge: not a report" M "$T/r0.json" "$T/r1.json" "$T/notreport.json"
bad2 "merge: not JSON" M "$T/garbage"
bad2 "merge: no such file" M "$T/nope.json"
bad2 "merge: nothing to merge" M
bad2 "merge: unsigned shards under --verify-key" M "$T/r0.json" "$T/r1.json" "$T/r2.json" \
	--verify-key "$T/garbage"
# Every number of a shard report is checked (one reader, manifest/cjson_num.c):
# "block": -5 was merged and shown as block 18446744073709551611 before.
# badnum WHAT JQ-EXPR MESSAGE: shard 1 edited by jq; exit 2, one line naming
# the file and the member, nothing written.
badnum() {
	jq "$2" "$T/r1e.json" >"$T/num.json"
	bad2 "merge: $1" M "$T/r0.json" "$T/num.json" "$T/r2.json"
	expect_eq "merge: $1: the message" "vbfsctl: merge: $T/num.json: not a vbfs verify report ($3)" \
		"$(cat "$T/last.err")"
}
# (the clean store's shard 1 with one event put in, to have event numbers)
jq '.events = [{"time":"2026-12-02T00:00:00Z","event":"corrupt","path":"a","block":3,"offset":196608,"length":65536}]' \
	"$T/r1.json" >"$T/r1e.json"
W="must be a whole number from 0 to 9223372036854775807"
badnum "negative block" '.events[0].block = -5' "events[0]: \"block\": -5: $W"
badnum "fractional block" '.events[0].block = 2.5' "events[0]: \"block\": 2.5: $W"
badnum "block as a string" '.events[0].block = "3"' "events[0]: \"block\": a string: $W"
badnum "block null" '.events[0].block = null' "events[0]: \"block\": null: $W"
badnum "negative offset" '.events[0].offset = -7' "events[0]: \"offset\": -7: $W"
badnum "offset 2^64" '.events[0].offset = 18446744073709551616' "events[0]: \"offset\": 1.844674407370955e+19: $W"
badnum "length beyond any block" '.events[0].length = 1e300' "events[0]: \"length\": 1e+300: must be a whole number from 0 to 67108864"
badnum "negative bytes" '.bytes = -1' "\"bytes\": -1: $W"
badnum "files as a string" '.files = "7"' "\"files\": a string: $W"
badnum "blocks missing" 'del(.blocks)' "no \"blocks\""
badnum "shard begin negative" '.shard.begin = -3' "\"shard\": \"begin\": -3: $W"
badnum "damage_events fractional" '.damage_events = 0.5' "\"damage_events\": 0.5: $W"
badnum "seconds as a string" '.seconds = "fast"' "\"seconds\": a string: must be a number from 0 to 1000000000000"
jq '.events[0].block = -5' "$T/r1e.json" >"$T/num.json"
bad2 "--errors-only: a negative block" V --errors-only "$T/num.json"
check "... named" grep -qF "num.json: not a vbfs verify report (events[0]: \"block\": -5: $W)" "$T/last.err"
# Signed shard reports: one changed after signing (a forged "all clear").
"$VBFSCTL" keygen "$T/k" "$T/k.pub" >/dev/null 2>&1
for k in 0 1 2; do "$VBFSCTL" verify "$S" "$I" --shard $k/3 --sign-key "$T/k" --report "$T/s$k.json" 2>/dev/null; done
expect_status "merge: signed shards verify" 0 "$VBFSCTL" merge "$T"/s?.json --verify-key "$T/k.pub"
sed -i 's/"blocks":\t\([0-9]*\),/"blocks":\t1\1,/' "$T/s1.json"
bad2 "merge: a shard report changed after signing" M "$T/s0.json" "$T/s1.json" "$T/s2.json" --verify-key "$T/k.pub"
check "... named as such" grep -q "s1.json: signature does not verify" "$T/last.err"
"$VBFSCTL" keygen "$T/k2" "$T/k2.pub" >/dev/null 2>&1
bad2 "merge: shards signed by another key" M "$T/s0.json" "$T/s2.json" "$T/r1.json" --verify-key "$T/k2.pub"
# The history line carries the shard.
"$VBFSCTL" verify "$S" "$I" --shard 1/3 --history "$T/h.jsonl" 2>/dev/null
expect_eq "the history line carries the shard" '{"k":1,"n":3}' "$(jq -c '.shard | {k, n}' "$T/h.jsonl")"
expect_status "merge: the right three are fine" 0 "$VBFSCTL" merge "$T/r2.json" "$T/r0.json" "$T/r1.json"
finish
