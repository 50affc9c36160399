#!/bin/bash
# scale_shard.sh - vbfsctl verify --shard K/N and vbfsctl merge: for every N
# from 1 to 16, N shard processes over a damaged store check every block
# exactly once (counted from a block trace), balance the bytes within 5%,
# and their merged report has exactly the events of one unsharded scrub;
# the exit statuses agree.  K and N also come from the Kubernetes and
# Slurm variables, and each report says where they came from.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/scale_store.inc"
command -v jq >/dev/null || need jq

S=$T/store I=$T/index
scale_store "$S" "$I" 600 || { fail "make the store"; finish; exit 1; }
expect_status "unsharded scrub finds the damage" 1 "$VBFSCTL" verify "$S" "$I" --json
cp "$T/last.out" "$T/all.json"
events "$T/all.json" >"$T/all.events"
BLOCKS=$(jq .blocks "$T/all.json")
check "at least 20 damage events" test "$(jq '[.events[] | select(.event != "transient")] | length' "$T/all.json")" -ge 20
# The blocks a scrub checks: those of present files (absent/replaced files have none to read).
VBFS_SCRUB_TRACE=$T/all.trace "$VBFSCTL" verify "$S" "$I" >/dev/null 2>&1
expect_eq "the unsharded trace has every verified block once" "$BLOCKS" "$(sort -u "$T/all.trace" | wc -l)"

for n in $(seq 1 16); do
	d=$T/n$n
	mkdir -p "$d"
	pids=() k=0
	for k in $(seq 0 $((n - 1))); do
		VBFS_SCRUB_TRACE=$d/trace "$VBFSCTL" verify "$S" "$I" --shard "$k/$n" --jobs 1 \
			--report "$d/shard-$k.json" >/dev/null 2>"$d/err-$k" &
		pids+=($!)
	done
	bad=0
	for p in "${pids[@]}"; do wait "$p"; st=$?; [ $st -le 1 ] || bad=1; done
	[ $bad = 0 ] || fail "N=$n: a shard failed: $(cat "$d"/err-* | grep vbfsctl | head -1)"
	"$VBFSCTL" merge "$d"/shard-*.json --report "$d/merged.json" >/dev/null 2>&1
	expect_eq "N=$n: merge exits 1 like the unsharded scrub" 1 $?
	# Exactly once: every block of the unsharded trace, none twice, nothing else.
	expect_eq "N=$n: every block verified exactly once" "$(sort "$T/all.trace" | md5sum)" \
		"$(sort "$d/trace" | md5sum)"
	expect_eq "N=$n: merged block count" "$BLOCKS" "$(jq .blocks "$d/merged.json")"
	if cmp -s "$T/all.events" <(events "$d/merged.json"); then
		pass "N=$n: merged events equal the unsharded scrub's"
	else
		fail "N=$n: merged events differ: $(diff "$T/all.events" <(events "$d/merged.json") | head -3)"
	fi
	# Byte balance: each shard's planned bytes within 5% of total/N; the ranges tile.
	jq -s --argjson n "$n" '
		(map(.shard.bytes) | add) as $t | ($t / $n) as $fair
		| (map(.shard.bytes - $fair | fabs) | max) / $fair <= 0.05
		  and (sort_by(.shard.k) | [.[0].shard.begin == 0, (.[-1].shard.end == .[0].shard.index_bytes)]
		       | all)' "$d"/shard-*.json >"$d/balance"
	expect_eq "N=$n: bytes balanced within 5%, ranges cover the index" true "$(cat "$d/balance")"
done

# The batch engines' variables: Kubernetes Indexed Job, Slurm array.
for k in 0 1 2 3; do
	JOB_COMPLETION_INDEX=$k VBFS_SHARDS=4 "$VBFSCTL" verify "$S" "$I" \
		--report "$T/k8s-$k.json" >/dev/null 2>"$T/k8s-$k.err"
done
expect_eq "K from JOB_COMPLETION_INDEX, N from VBFS_SHARDS" \
	"K from JOB_COMPLETION_INDEX, N from VBFS_SHARDS" "$(jq -r .shard.source "$T/k8s-2.json")"
check "the output says where K came from" grep -q "shard 2/4 (K from JOB_COMPLETION_INDEX" "$T/k8s-2.err"
"$VBFSCTL" merge "$T"/k8s-*.json --json >"$T/k8s.json" 2>/dev/null
check "Indexed Job shards merge to the unsharded events" cmp -s "$T/all.events" <(events "$T/k8s.json")
for id in 5 6 7; do
	SLURM_ARRAY_TASK_ID=$id SLURM_ARRAY_TASK_MIN=5 SLURM_ARRAY_TASK_COUNT=3 \
		"$VBFSCTL" verify "$S" "$I" --shard auto --report "$T/slurm-$id.json" >/dev/null 2>&1
done
expect_eq "Slurm: K = TASK_ID - TASK_MIN" "1/3" "$(jq -r '"\(.shard.k)/\(.shard.n)"' "$T/slurm-6.json")"
"$VBFSCTL" merge "$T"/slurm-*.json --json >"$T/slurm.json" 2>/dev/null
check "Slurm array shards merge to the unsharded events" cmp -s "$T/all.events" <(events "$T/slurm.json")

# The same index always gives the same split.
"$VBFSCTL" verify "$S" "$I" --shard 3/7 --report "$T/again.json" >/dev/null 2>&1
expect_eq "the split is the same every run" "$(jq -c .shard "$T/n7/shard-3.json")" "$(jq -c .shard "$T/again.json")"

# A clean store: every shard and the merge exit 0; metrics carry the verdict.
C=$T/clean CI=$T/clean.idx
mkdir -p "$C"; make_file "$C/a" 3; make_file "$C/b" 2
"$VBFSCTL" build "$C" "$CI" --block-size 64K >/dev/null 2>&1
for k in 0 1 2; do
	expect_status "clean shard $k/3 exits 0" 0 "$VBFSCTL" verify "$C" "$CI" --shard $k/3 \
		--report "$T/c$k.json" --metrics "$T/c$k.prom"
done
check "shard metrics carry the shard label" grep -q 'vbfs_blocks_verified_total{store="'"$C"'",shard="1/3"}' "$T/c1.prom"
expect_status "clean merge exits 0" 0 "$VBFSCTL" merge "$T"/c?.json --metrics "$T/c.prom" --name clean
check "merged metrics: not failed" grep -qx 'backup_verification_failed{store="clean"} 0' "$T/c.prom"
check "merged metrics: all 80 blocks" grep -qx 'vbfs_blocks_verified_total{store="clean"} 80' "$T/c.prom"
check "merged metrics: last success set" grep -Eq '^backup_verification_last_success_timestamp\{store="clean"\} [1-9][0-9]{9}$' "$T/c.prom"
finish
