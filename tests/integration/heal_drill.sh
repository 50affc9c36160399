#!/usr/bin/env bash
# heal_drill.sh - the drills with a replica or parity: the restore gets the
# original bytes and says so ("restored, N blocks healed from X"), the
# verdict stays damaged (exit 1: the store needs repair), and the metrics
# carry vbfs_blocks_healed_total{source} and vbfs_blocks_unrepairable_total.
. "$(dirname "$0")/lib.sh"
need jq

MiB=1048576
S=$T/store R=$T/replica IDX=$T/index P=$T/parity
make_file "$S/db.dump" 3
make_file "$S/wal.bin" 2
expect_status "build with parity" 0 "$VBFSCTL" build "$S" "$IDX" --parity 4+2 --parity-dir "$P"
cp -a "$S" "$R"
cp -a "$S" "$T/orig"
flip_byte "$S/db.dump" $((MiB + 5))   # block 1
RR=$(realpath "$R")

# ---- bad input --------------------------------------------------------------------
expect_status "sample --mount with --replica" 2 "$VBFSCTL" sample --mount "$T" --replica "$R"
expect_status "rto --replica without --store" 2 "$VBFSCTL" rto --target 1h --restore true --replica "$R"
expect_status "rto --replica that does not exist" 2 "$VBFSCTL" rto --target 1h \
	--store "$S" --index "$IDX" --restore true --replica "$T/a,b"
check "... says which" grep -q "replica $T/a,b: No such file or directory" "$T/last.err"

# ---- sample ------------------------------------------------------------------------------
expect_status "sample --replica: every file restored, the verdict is damaged" 1 \
	"$VBFSCTL" sample --store "$S" --index "$IDX" -n 2 --seed 1 --replica "$R" --json
expect_eq "sample: files ok / verdict / healed" "true true damaged 1 1" \
	"$(jq -r '"\([.files[].ok] | join(" ")) \(.verdict) \(.healed) \(.healed_by_source["replica:'"$RR"'"])"' "$T/last.out")"
check "sample: says it restored with healing" \
	grep -qx "sample: restored, 1 block healed: 1 from replica:$RR" "$T/last.err"

# ---- rto ---------------------------------------------------------------------------------
for src in replica parity; do
	if [ $src = replica ]; then opt=(--replica "$R"); label="replica:$RR"; else opt=(--parity "$P"); label=parity; fi
	expect_status "rto --$src: the restore succeeds, the verdict is damaged" 1 \
		"$VBFSCTL" rto --target 1h --store "$S" --index "$IDX" --name st "${opt[@]}" \
		--restore 'cp "$VBFS_MOUNT/db.dump" "$VBFS_SCRATCH/db.dump" && cmp "$VBFS_SCRATCH/db.dump" '"'$T/orig/db.dump'" \
		--metrics "$T/$src.prom" --json
	expect_eq "rto --$src: verdict, failed phase, healed" "damaged null 1" \
		"$(jq -r '"\(.verdict) \(.failed_phase) \(.healed)"' "$T/last.out")"
	check "rto --$src: says it restored with healing" \
		grep -qx "rto: restored, 1 block healed: 1 from $label" "$T/last.err"
	expect_eq "rto --$src: metrics" \
		"vbfs_blocks_healed_total{store=\"st\",source=\"$label\"} 1|vbfs_blocks_unrepairable_total{store=\"st\"} 0" \
		"$(grep -E '^vbfs_blocks_(healed|unrepairable)_total' "$T/$src.prom" | paste -sd'|')"
done
expect_status "rto without sources: the restore fails on the damaged block" 1 \
	"$VBFSCTL" rto --target 1h --store "$S" --index "$IDX" --name st \
	--restore 'cp "$VBFS_MOUNT/db.dump" "$VBFS_SCRATCH/db.dump"' --json
expect_eq "... a failed restore phase" "damaged restore" "$(jq -r '"\(.verdict) \(.failed_phase)"' "$T/last.out")"
finish
