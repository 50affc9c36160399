#!/bin/bash
# review_outputs.sh - where `vbfsctl verify` and `vbfsctl merge` write
# their outputs (--report, --metrics, --history, --resume STATE).
#
# Found in review: an output in a missing directory was noticed only after
# the whole scrub (hours on a large store), and the exit 2 then hid the
# verdict (damage found: 1); an output or a resume state inside the store
# was written into the store.  Now both are refused before the scrub: exit
# 2, one line, nothing written.
. "$(dirname "$0")/lib.sh"

S=$T/store I=$T/idx
mkdir -p "$S/d"
make_file "$S/a.bin" 1
"$VBFSCTL" build "$S" "$I" --block-size 4K >/dev/null 2>&1 || fail "build fixture"
printf 'XXXX' | dd of="$S/a.bin" bs=1 seek=5000 conv=notrunc 2>/dev/null
"$VBFSCTL" verify "$S" "$I" --shard 0/2 --report "$T/r0.json" >/dev/null 2>&1
"$VBFSCTL" verify "$S" "$I" --shard 1/2 --report "$T/r1.json" >/dev/null 2>&1
check "shard reports written" test -s "$T/r0.json" -a -s "$T/r1.json"

BEFORE=$(tree_sum "$S")


for o in report metrics history; do
	refused "verify --$o in a missing directory" "vbfsctl: verify: $o $T/no/x: No such file or directory" \
		"$VBFSCTL" verify "$S" "$I" --$o "$T/no/x"
	refused "verify --$o inside the store" "vbfsctl: verify: $o $S/d/x: must not be inside the store" \
		"$VBFSCTL" verify "$S" "$I" --$o "$S/d/x"
	refused "merge --$o in a missing directory" "vbfsctl: merge: $o $T/no/x: No such file or directory" \
		"$VBFSCTL" merge "$T/r0.json" "$T/r1.json" --$o "$T/no/x"
	refused "verify --$o under a regular file" "vbfsctl: verify: $o $T/r0.json/x: Not a directory" \
		"$VBFSCTL" verify "$S" "$I" --$o "$T/r0.json/x"
done
refused "verify --resume inside the store" "vbfsctl: verify: state $S/state: must not be inside the store" \
	"$VBFSCTL" verify "$S" "$I" --resume "$S/state"
refused "verify --resume in a missing directory" "vbfsctl: verify: state $T/no/state: No such file or directory" \
	"$VBFSCTL" verify "$S" "$I" --resume "$T/no/state"
check "nothing written into the missing directory" test ! -e "$T/no"

# merge's own inputs
refused "merge: the same shard twice" "vbfsctl: merge: $T/r0.json: shard 0/2 given twice (also $T/r0.json)" \
	"$VBFSCTL" merge "$T/r0.json" "$T/r0.json"
refused "merge: a shard missing" "vbfsctl: merge: shard 1/2 is missing (1 of 2 shard reports given)" \
	"$VBFSCTL" merge "$T/r0.json"
head -c $(( $(stat -c %s "$T/r1.json") / 2 )) "$T/r1.json" >"$T/half.json"
refused "merge: a truncated report" "vbfsctl: merge: $T/half.json: not a vbfs verify report (not JSON)" \
	"$VBFSCTL" merge "$T/r0.json" "$T/half.json" --report "$T/m.json"
check "refused merge wrote no report" test ! -e "$T/m.json"
mkdir -p "$T/other"; echo other >"$T/other/x"
"$VBFSCTL" build "$T/other" "$T/oidx" >/dev/null 2>&1
"$VBFSCTL" verify "$T/other" "$T/oidx" --shard 1/2 --report "$T/o1.json" >/dev/null 2>&1
ROOT=$(sed -n 's/.*"root":[[:space:]]*"\([0-9a-f]\{16\}\).*/\1/p' "$T/r0.json")
OROOT=$(sed -n 's/.*"root":[[:space:]]*"\([0-9a-f]\{16\}\).*/\1/p' "$T/o1.json")
refused "merge: a shard of another index" \
	"vbfsctl: merge: $T/o1.json: shard 1/2 is of another index (root $OROOT…, $T/r0.json has $ROOT…)" \
	"$VBFSCTL" merge "$T/r0.json" "$T/o1.json"

# shard numbers that only pass once converted: a fraction, 10^18
jq '.shard.k = 1.5' "$T/r1.json" >"$T/kfrac.json"
refused "merge: shard k 1.5" "vbfsctl: merge: $T/kfrac.json: not a vbfs verify report (\"shard\": \"k\": 1.5: must be a whole number from 0 to 100000)" \
	"$VBFSCTL" merge "$T/r0.json" "$T/kfrac.json"
jq '.shard.n = 1000000000000000000' "$T/r1.json" >"$T/bign.json"
refused "merge: shard n 10^18" "vbfsctl: merge: $T/bign.json: not a vbfs verify report (\"shard\": \"n\": 1e+18: must be a whole number from 0 to 100000)" \
	"$VBFSCTL" merge "$T/r0.json" "$T/bign.json"

# the good case still works: damage is exit 1 with the report written
expect_status "verify with every output" 1 "$VBFSCTL" verify "$S" "$I" --report "$T/v.json" \
	--metrics "$T/v.prom" --history "$T/v.jsonl" --resume "$T/v.state"
check "outputs written" test -s "$T/v.json" -a -s "$T/v.prom" -a -s "$T/v.jsonl"
expect_status "merge with every output" 1 "$VBFSCTL" merge "$T/r0.json" "$T/r1.json" \
	--report "$T/m.json" --metrics "$T/m.prom" --history "$T/m.jsonl"
expect_eq "store unchanged at the end" "$BEFORE" "$(tree_sum "$S")"
finish
