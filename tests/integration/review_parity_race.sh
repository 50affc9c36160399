#!/usr/bin/env bash
# review_parity_race.sh - parity heals in one mount from many readers at
# once: each reader heals a different damaged block (the fast path's kept
# buffers and its helper thread shared between heals), some of the same
# block, and one stripe with a damaged member besides the target (the fast
# path decodes wrong bytes, which must never be served: the slow path
# finds the bad member).  Every byte read must be the original's.
. "$(dirname "$0")/lib.sh"
need jq
need getfattr attr

K64=65536
S=$T/store IDX=$T/index P=$T/index/parity M=$T/mnt
gen() {   # gen FILE BYTES SEED
	openssl enc -aes-128-ctr -pass "pass:$3" -nosalt -pbkdf2 -in /dev/zero 2>/dev/null | head -c "$2" >"$1"
}
mkdir -p "$S" "$T/orig"
for i in $(seq -w 1 24); do gen "$S/f$i" $((12 * K64 + 10#$i * 77)) "f$i"; done
cp -a "$S/." "$T/orig/"
expect_status "build --parity 4+2" 0 "$VBFSCTL" build "$S" "$IDX" --block-size 64K --parity 4+2

# One damaged block in each file (a different block each), the short
# block of four of them, and in f05 two blocks next to each other (two
# members of one group, most likely of different stripes).
for i in $(seq 1 24); do
	f=$(printf 'f%02d' "$i")
	flip_byte "$S/$f" $(( (i % 12) * K64 + 1000 + i ))
done
for f in f03 f11 f17 f22; do flip_byte "$S/$f" $((12 * K64 + 5)); done
flip_byte "$S/f05" $((7 * K64 + 9))

vbfs_mount "$S" "$IDX" "$M" "parity=$P" || { fail "mount"; finish; exit 1; }
# 24 readers at once, each file twice over (the same blocks healed by two
# readers), into files compared afterwards.
mkdir -p "$T/got"
readers=()
for r in 1 2; do
	for i in $(seq -w 1 24); do
		( dd if="$M/f$i" of="$T/got/f$i.$r" bs=$K64 status=none 2>"$T/got/f$i.$r.err" ) &
		readers+=($!)
	done
done
wait_ok=0
for j in "${readers[@]}"; do wait "$j" || wait_ok=1; done
expect_eq "every reader finished without error" 0 "$wait_ok"
bad=0
for i in $(seq -w 1 24); do
	for r in 1 2; do cmp -s "$T/orig/f$i" "$T/got/f$i.$r" || { bad=$((bad + 1)); echo "# f$i.$r differs" >&2; }; done
done
expect_eq "every file read back byte for byte (48 reads)" 0 "$bad"
STATS=$(getfattr --absolute-names -n user.vbfs.stats --only-values "$M")
expect_eq "stats: the 29 damaged blocks healed from parity, none unrepairable" "29 0" \
	"$(jq -r '"\(.healed_by_source.parity) \(.unrepairable)"' <<<"$STATS")"
vbfs_umount "$M"

# ---- a FIFO planted as parity.idx or parity.dat never hangs a mount or a tool --------
cp -a "$P" "$T/pfifo"; rm "$T/pfifo/parity.idx"; mkfifo "$T/pfifo/parity.idx"
mount_refused "mount -o parity= with a FIFO as parity.idx" "$S" "$IDX" \
	"vbfs: parity $T/pfifo/parity.idx: not a regular file (not opened)" "parity=$T/pfifo"
expect_status "repair --parity with a FIFO as parity.idx: exit 2, no hang" 2 \
	timeout 30 "$VBFSCTL" repair "$S" "$IDX" --parity "$T/pfifo"
cp -a "$P" "$T/dfifo"; rm "$T/dfifo/parity.dat"; mkfifo "$T/dfifo/parity.dat"
# parity.dat not a file: every parity fragment is an erasure, as when it is
# missing; at 4+2 with all four data members readable the block still heals.
expect_status "repair --parity with a FIFO as parity.dat: no hang, damage found" 1 \
	timeout 30 "$VBFSCTL" repair "$S" "$IDX" --parity "$T/dfifo"
finish
