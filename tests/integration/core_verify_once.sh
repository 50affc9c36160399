#!/usr/bin/env bash
# core_verify_once.sh - each block is verified once per mount (unless the
# cache had to evict it), and the counters say what was verified and what
# was served.
#
# The regression: with next_files look-ahead, a cp -a of 324 one-block files
# hashed 1,106 blocks: the look-ahead skipped files already cached and so ran
# further ahead on every open, until it evicted blocks nobody had read yet.
# Then: a shutdown while the prefetch workers are busy (the race on
# `stopping` in fs/readahead.c shows up when this runs under ThreadSanitizer:
# scripts/tsan-check runs this test against its TSan build).
. "$(dirname "$0")/lib.sh"
need jq; need getfattr attr

S=$T/store IDX=$T/index M=$T/mnt
mkdir -p "$S/d"
for n in $(seq 1 324); do head -c $((n * 31 + 100)) /dev/urandom >"$S/d/f$n"; done
make_file "$S/big" 20
bytes=$(find "$S" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
"$VBFSCTL" build "$S" "$IDX" >/dev/null 2>&1 || { fail "build"; finish; exit; }

stats() { getfattr -n user.vbfs.stats --only-values "$M"; }
vbfs_mount "$S" "$IDX" "$M" || { fail "mount"; finish; exit; }
cp -a "$M" "$T/out"
expect_eq "cp -a restores the tree" "" "$(diff -r "$S" "$T/out" 2>&1)"
st=$(stats)
# Under ThreadSanitizer (scripts/tsan-check sets VBFS_UNDER_TSAN) the daemon
# runs ~10x slower and the look-ahead lags behind cp: it may re-verify a file
# cp already read and the 64-block cache already evicted, which the "once
# unless evicted" rule allows.  There the counts are not checked; the normal
# run (pass 1) checks them exactly.
if [ -z "${VBFS_UNDER_TSAN:-}" ]; then
expect_eq "blocks_verified: 324 one-block files + 20 blocks, each once" 344 \
	"$(jq .blocks_verified <<<"$st")"
expect_eq "bytes_verified: every indexed byte once" "$bytes" "$(jq .bytes_verified <<<"$st")"
expect_eq "bytes_served: what cp read" "$bytes" "$(jq .bytes_served <<<"$st")"
expect_eq "prefetched_unused: no look-ahead thrown away" 0 "$(jq .prefetched_unused <<<"$st")"
# Re-reading from the kernel's page cache costs no verification.
cat "$M/big" >/dev/null
# The kernel keeps the verified pages (keep_cache), so a re-read costs no
# verification -- unless it dropped a page under memory pressure (a busy
# machine: seen once in a Debug build beside other suites, 345), which
# asks for that block again and verifies it again, as it must.
again=$(jq .blocks_verified <<<"$(stats)")
check "a re-read verifies nothing new (344; at most 2 pages dropped by the kernel): $again" \
	test "$again" -ge 344 -a "$again" -le 346
fi
vbfs_umount "$M"
expect_eq "clean unmount: exit 0" 0 "$VBFS_STATUS"

# Shut down with the prefetch queue full: open many files, unmount at once.
vbfs_mount "$S" "$IDX" "$M" "next_files=64,readahead=64" || { fail "mount 2"; finish; exit; }
for n in $(seq 1 40); do head -c 1 "$M/d/f$n" >/dev/null; done
head -c 1 "$M/big" >/dev/null
vbfs_umount "$M"
expect_eq "unmount with the workers busy: exit 0" 0 "$VBFS_STATUS"
finish
