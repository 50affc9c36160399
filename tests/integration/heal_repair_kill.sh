#!/usr/bin/env bash
# heal_repair_kill.sh - `vbfsctl repair --apply` killed with SIGKILL at
# several points: every block is then either as it was (damaged) or the
# original, never anything else, and a rerun finishes the repair.
. "$(dirname "$0")/lib.sh"

K64=65536
S=$T/store R=$T/replica IDX=$T/index
for i in 1 2 3 4; do make_file "$S/f$i.bin" 8 "f$i"; done
expect_status "build (64 KiB blocks)" 0 "$VBFSCTL" build "$S" "$IDX" --block-size 64K
cp -a "$S" "$R"
cp -a "$S" "$T/orig"
# Every 4th block of every file zeroed: 128 damaged blocks.
for i in 1 2 3 4; do
	for b in $(seq 0 4 127); do
		dd if=/dev/zero of="$S/f$i.bin" bs=$K64 seek=$b count=1 conv=notrunc status=none
	done
done
cp -a "$S" "$T/damaged"

# each block of the store is either the original or as damaged
blocks_sane() {
	local i b cur fixed=0
	for i in 1 2 3 4; do
		for b in $(seq 0 127); do
			cur=$(dd if="$S/f$i.bin" bs=$K64 skip=$b count=1 status=none | sha256sum)
			if [ "$cur" = "$(dd if="$T/orig/f$i.bin" bs=$K64 skip=$b count=1 status=none | sha256sum)" ]; then
				[ $((b % 4)) = 0 ] && fixed=$((fixed + 1))
			elif [ "$cur" != "$(dd if="$T/damaged/f$i.bin" bs=$K64 skip=$b count=1 status=none | sha256sum)" ]; then
				echo "f$i.bin block $b is neither" >&2; return 1
			fi
		done
	done
	echo "# $fixed of 128 damaged blocks repaired so far"
}

for delay in 0.05 0.2 0.5; do
	"$VBFSCTL" repair "$S" "$IDX" --replica "$R" --apply >/dev/null 2>&1 &
	pid=$!
	sleep "$delay"
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	check "killed after ${delay}s: every block is the original or as it was" blocks_sane
done
expect_status "a rerun finishes the repair" 0 "$VBFSCTL" repair "$S" "$IDX" --replica "$R" --apply
for i in 1 2 3 4; do
	check "f$i.bin is the original" cmp -s "$S/f$i.bin" "$T/orig/f$i.bin"
done
expect_status "the store verifies clean" 0 "$VBFSCTL" verify "$S" "$IDX"
finish
