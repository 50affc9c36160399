#!/usr/bin/env bash
# core_stress.sh - many short-lived concurrent readers, good and damaged.
#
# Each reader opens a file, reads it through and closes it, so RELEASE
# requests race with the tail of READ handling on other FUSE threads and
# with read-ahead verification on the workers.  Every read must return the
# original bytes (or EIO for the one damaged file), the daemon must survive
# and exit 1 (damage was seen) - not die on a signal.  ~10 s.
. "$(dirname "$0")/lib.sh"
need jq

MiB=1048576
S=$T/store IDX=$T/index M=$T/mnt
READERS=4 ROUNDS=${VBFS_STRESS_ROUNDS:-10}

for i in $(seq 1 16); do
	make_file "$S/f$i" 2
	truncate -s $((MiB + i * 50000)) "$S/f$i"
done
make_file "$S/bad" 4
expect_status "build" 0 "$VBFSCTL" build "$S" "$IDX"
# Damage block 2 of "bad" in the store after indexing.
printf 'XXXX' | dd of="$S/bad" bs=1 seek=$((2 * MiB + 100)) conv=notrunc status=none
(cd "$S" && md5sum f*) >"$T/want.sums"

vbfs_mount "$S" "$IDX" "$M" || { fail "mount"; finish; exit 1; }
reader() {   # reader N: ROUNDS passes over every file, in its own order
	local r f out=$T/reader$1
	: >"$out"
	for r in $(seq 1 "$ROUNDS"); do
		(cd "$M" && md5sum f*) >"$out.sums" 2>>"$out.err" || echo "round $r: md5sum failed" >>"$out"
		cmp -s "$out.sums" "$T/want.sums" || echo "round $r: wrong bytes" >>"$out"
		if cat "$M/bad" >/dev/null 2>"$out.bad"; then
			echo "round $r: damaged file read without error" >>"$out"
		elif ! grep -q "Input/output error" "$out.bad"; then
			echo "round $r: damaged file: $(cat "$out.bad")" >>"$out"
		fi
		# Open, read a little, close at once: many RELEASEs right behind
		# READ replies (and read-ahead kicked off by a read at offset 0).
		for f in "$M"/f*; do
			head -c 300000 "$f" >/dev/null 2>>"$out.err" || echo "round $r: head $f failed" >>"$out"
		done
		# Short reads at odd places, some across the block boundary.
		dd if="$M/f$((1 + (r + $1) % 16))" bs=64K skip=$(((r * 7 + $1) % 16)) count=3 \
			status=none of=/dev/null 2>>"$out.err" || echo "round $r: dd failed" >>"$out"
		# Drop this mount's cached pages (fadvise DONTNEED, nothing global)
		# so later rounds reach the daemon again.
		for f in "$M"/f* "$M/bad"; do
			dd if="$f" iflag=nocache count=0 status=none 2>/dev/null
		done
	done
}
pids=()
for n in $(seq 1 "$READERS"); do
	reader "$n" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for n in $(seq 1 "$READERS"); do
	expect_eq "reader $n: every round right" "" "$(head -5 "$T/reader$n")"
done
check "the daemon survived" kill -0 "$VBFS_PID"
# Every file was opened 40+ times: closed files must not keep store fds.
nfd=$(ls "/proc/$VBFS_PID/fd" 2>/dev/null | wc -l)
check "daemon holds few fds after 700+ opens (has $nfd)" test "$nfd" -lt 40
# (Not under ASan: its shadow memory and quarantine dwarf the daemon's.)
if [ -z "${ASAN_OPTIONS:-}" ]; then
	rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$VBFS_PID/status")
	check "daemon RSS bounded: $rss KiB < 200 MiB (64 MiB block cache)" test "${rss:-0}" -lt 204800
fi
vbfs_umount "$M"
expect_eq "vbfs exits 1 (damage seen), not on a signal" 1 "$VBFS_STATUS"
expect_eq "only the damaged block was logged" "corrupt bad 2" \
	"$(jq -r '"\(.event) \(.path) \(.block)"' "$M.log" | sort -u | xargs)"
check "no sanitizer report" bash -c "! grep -q 'Sanitizer' '$M.stderr'"
# On failure, the daemon's own last words (not the event lines).
[ "$VBFS_STATUS" = 1 ] || grep -v '^{' "$M.stderr" | head -20 >&2
finish
