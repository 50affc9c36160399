#!/bin/bash
# scale_shard_resume.sh - verify --resume STATE and --max-duration: a pass
# killed with SIGKILL at 10 random points still covers every block (counted
# from the block trace), checks again no more blocks than were in flight
# (--jobs 2: at most 2 per kill), and its final report has exactly the
# unsharded scrub's events; a time budget stops cleanly and the next run
# continues; a complete pass makes the next run start a new one; on a
# terminal the progress shows the pass's percentage and the ETA;
# --errors-only checks again just what a report found.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/scale_store.inc"
command -v jq >/dev/null || need jq

S=$T/store I=$T/index ST=$T/scrub.state
scale_store "$S" "$I" 1500 || { fail "make the store"; finish; exit 1; }
"$VBFSCTL" verify "$S" "$I" --json >"$T/all.json" 2>/dev/null
events "$T/all.json" >"$T/all.events"
VBFS_SCRUB_TRACE=$T/all.trace "$VBFSCTL" verify "$S" "$I" --jobs 1 >/dev/null 2>&1
BLOCKS=$(jq .blocks "$T/all.json")
SECS=$(jq .seconds "$T/all.json")
echo "# $BLOCKS blocks, an unsharded scrub takes $SECS s"

# --- kill -9 at 10 random points of one pass -----------------------------------
# Each run is killed with SIGKILL once it has checked a random number of
# blocks, up to 1/40 of the pass: a random point of its work whatever the
# machine's load, so ten kills land inside the pass (the scrub runs niced
# so that the watcher sees its moment even on a busy machine).
kills=0
: >"$T/trace"
for i in $(seq 1 10); do
	at=$(( $(wc -l <"$T/trace") + 1 + RANDOM * (BLOCKS / 40) / 32768 ))
	VBFS_SCRUB_TRACE=$T/trace nice -n 15 "$VBFSCTL" verify "$S" "$I" --jobs 2 --resume "$ST" >/dev/null 2>&1 &
	pid=$!
	while [ "$(wc -l <"$T/trace")" -lt "$at" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.002; done
	if kill -KILL "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
	wait "$pid" 2>/dev/null
done
echo "# $kills runs killed mid-pass"
expect_eq "every run was killed mid-pass" 10 "$kills"
expect_status "the last run completes the pass" 1 env VBFS_SCRUB_TRACE="$T/trace" \
	"$VBFSCTL" verify "$S" "$I" --jobs 2 --resume "$ST" --report "$T/final.json"
check "the report says complete" jqe '.complete == true and .pass == 1' "$T/final.json"
check "the pass's runs are counted" jqe --argjson k "$kills" '.runs == $k + 1' "$T/final.json"
expect_eq "the pass covers every block" "$(sort -u "$T/all.trace" | md5sum)" "$(sort -u "$T/trace" | md5sum)"
expect_eq "nothing but the index's blocks" "$BLOCKS" "$(sort -u "$T/trace" | wc -l)"
twice=$(( $(wc -l <"$T/trace") - BLOCKS ))
echo "# $twice blocks checked twice after $kills kills"
check "blocks checked again <= blocks in flight (2 per kill)" test "$twice" -le $((2 * kills))
expect_eq "the pass's report counts every block once" "$BLOCKS" "$(jq .blocks "$T/final.json")"
if cmp -s "$T/all.events" <(events "$T/final.json"); then
	pass "the pass's events equal one uninterrupted scrub's"
else
	fail "events differ: $(diff "$T/all.events" <(events "$T/final.json") | head -3)"
fi

# --- a new pass after a complete one; the time budget ------------------------------
expect_status "a budget of 0 stops at once" 1 "$VBFSCTL" verify "$S" "$I" --resume "$ST" \
	--max-duration 0 --report "$T/p2.json"
check "pass 2 has begun, incomplete" jqe '.pass == 2 and .runs == 1 and .complete == false and .blocks == 0' "$T/p2.json"
check "stderr says how to continue" grep -q "the next run with --resume continues here" "$T/last.err"
expect_status "the merge refuses an unfinished shard" 2 "$VBFSCTL" merge "$T/p2.json"
check "... in one line" test "$(wc -l <"$T/last.err")" = 1
: >"$T/trace2"
for i in 1 2 3 4 5 6; do
	VBFS_SCRUB_TRACE=$T/trace2 "$VBFSCTL" verify "$S" "$I" --jobs 1 --resume "$ST" \
		--max-duration 0.05 --report "$T/p2.json" >/dev/null 2>&1
	jq -e .complete "$T/p2.json" >/dev/null && break
done
check "budgeted runs make progress" test "$(jq .blocks "$T/p2.json")" -gt 0
# (On a fast machine the budgeted runs may already have completed pass 2;
# another run would start pass 3.)
jq -e .complete "$T/p2.json" >/dev/null ||
	VBFS_SCRUB_TRACE=$T/trace2 "$VBFSCTL" verify "$S" "$I" --jobs 1 --resume "$ST" --report "$T/p2.json" >/dev/null 2>&1
expect_eq "pass 2 also covers every block exactly once" "$(sort "$T/all.trace" | md5sum)" "$(sort "$T/trace2" | md5sum)"
check "pass 2 complete" jqe '.pass == 2 and .complete' "$T/p2.json"

# --- progress on a terminal: the pass's percentage (earlier runs' part
# included) and the ETA ------------------------------------------------------------
command -v script >/dev/null || need script util-linux
# A first run that stops part-way: the budget that does 5-90% of the pass
# on this machine, today (a fixed one did 99% on a fast, quiet machine).
for budget in 0.02 0.05 0.1 0.2 0.4 0.8; do
	rm -f "$T/tty.state"
	"$VBFSCTL" verify "$S" "$I" --jobs 1 --resume "$T/tty.state" --max-duration "$budget" \
		--report "$T/tty1.json" >/dev/null 2>&1
	part=$(jq 'if .complete then 100 else (.bytes * 100 / .shard.bytes) | floor end' "$T/tty1.json")
	[ "$part" -ge 5 ] && [ "$part" -le 90 ] && break
done
t0=$(date +%s%N)
script -qec "'$VBFSCTL' verify '$S' '$I' --jobs 1 --resume '$T/tty.state'" /dev/null >"$T/tty.out" 2>&1
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
tr '\r' '\n' <"$T/tty.out" | grep -a -E '^verifying \[#* *\] +[0-9]+% ' >"$T/tty.lines"
check "progress lines with the pass's percentage" test -s "$T/tty.lines"
first=$(head -1 "$T/tty.lines" | sed -E 's/.*\] +([0-9]+)%.*/\1/')
done1=$(jq '(.bytes * 100 / .shard.bytes) | floor' "$T/tty1.json")
check "the first line counts the earlier run's part of the pass ($done1%): $first%" \
	test "${first:-0}" -ge "$done1" -a "$done1" -gt 0
# A line is drawn every 0.2 s; the ETA needs a rate, so from the second on.
if [ "$ms" -ge 500 ]; then
	check "progress shows the ETA (a $ms ms run)" grep -q -E '% .* MB/s ETA [0-9]+[smh]' "$T/tty.lines"
else
	echo "# the run took $ms ms: too short to draw an ETA"
fi

# --- the state belongs to one index and one shard ------------------------------------
O=$T/other OI=$T/other.idx
mkdir -p "$O"; make_file "$O/x" 1
"$VBFSCTL" build "$O" "$OI" >/dev/null 2>&1
expect_status "a state of another index is refused" 2 "$VBFSCTL" verify "$O" "$OI" --resume "$ST"
check "... in one line naming it" grep -q "state $ST is of another index" "$T/last.err"
expect_status "a state of another shard is refused" 2 "$VBFSCTL" verify "$S" "$I" --resume "$ST" --shard 1/2
check "... saying which" grep -q "is of the whole index, not shard 1/2" "$T/last.err"

# --- --errors-only: just what the report found ---------------------------------------
expect_status "errors-only finds the same damage again" 1 "$VBFSCTL" verify "$S" "$I" \
	--errors-only "$T/all.json" --json
cp "$T/last.out" "$T/eo.json"
# The blocks named, plus the whole of the one file that changed (grew) but is still a file.
grown=$(jq -r '.events[] | select(.detail // "" | startswith("file grew")) | .path' "$T/all.json")
want=$(( $(jq '[.events[] | select(.block != null)] | length' "$T/all.json") \
	+ ($(stat -c %s "$S/$grown") - 4 + 16383) / 16384 ))
expect_eq "errors-only checks just the named blocks and the grown file" "$want" "$(jq .blocks "$T/eo.json")"
expect_eq "errors-only finds the same damage events" \
	"$(jq -c '.events[] | select(.event != "transient") | del(.time)' "$T/all.json" | sort | md5sum)" \
	"$(events "$T/eo.json" | md5sum)"
# Repair the first corrupt file (flip its byte back): it drops out, the rest stay.
p=$(jq -r '[.events[] | select(.event == "corrupt")][0].path' "$T/all.json")
python3 - "$S/$p" <<'PY'
import sys
p = sys.argv[1]; B = 16384
off = 2 * B + 100 + (len(p) % 2) * B    # where scale_store flipped it
with open(p, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0xff]))
PY
expect_status "after the repair: still damage elsewhere" 1 "$VBFSCTL" verify "$S" "$I" \
	--errors-only "$T/all.json" --json
expect_eq "after the repair: one event fewer" "$(( $(jq '.events | length' "$T/eo.json") - 1 ))" \
	"$(jq '.events | length' "$T/last.out")"
check "after the repair: the repaired path is not named" \
	jqe --arg p "$p" '[.events[] | select(.path == $p)] | length == 0' "$T/last.out"
finish
