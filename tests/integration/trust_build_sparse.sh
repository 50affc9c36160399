#!/bin/bash
# trust_build_sparse.sh - a huge sparse file never makes the build run out
# of memory (issue 15, "the edges"):
#   - a 1 EiB sparse file: the build stops at once, exit 2, naming the file
#     and the block size that would fit (or that none would) - not "out of
#     memory" - and leaves no index behind;
#   - a 64 GiB sparse file at 4 KiB blocks (16 Mi blocks, 512 MiB of
#     digests) under a 256 MiB data limit (ulimit -d): the build's memory
#     does not grow with the file (digests are written as they are made),
#     so it never says "out of memory": it indexes the file (holes are not
#     read), or, still going after 2 s, Ctrl-C stops it, exit 2.
# The files live on a private tmpfs (ext4 stops at 16 TiB).
. "$(dirname "$0")/lib.sh"
TM=$T/tmpfs
mkdir -p "$TM"
mount -t tmpfs -o size=16m tmpfs "$TM" || skip "cannot mount a tmpfs"
_MOUNTS+=("$TM")   # lib.sh's cleanup unmounts it

# ---- 1 EiB ----------------------------------------------------------------------
mkdir "$TM/s1"
truncate -s 1E "$TM/s1/huge.img" || skip "tmpfs refuses a 1 EiB file"
echo small >"$TM/s1/small.txt"
START=$(date +%s)
expect_status "1 EiB: refused" 2 timeout 60 "$VBFSCTL" build "$TM/s1" "$T/i1"
expect_eq "1 EiB: one line naming the file and why" \
	"vbfsctl: build: huge.img: 1152921504606846976 bytes: at 1024 KiB blocks the store's digests would not fit in an index (at most 512 GiB of them); it is too large for any block size" \
	"$(cat "$T/last.err")"
check "1 EiB: at once (< 10 s)" test $(( $(date +%s) - START )) -lt 10
check "1 EiB: no index left behind" test ! -e "$T/i1"
# 256 TiB needs 2 TiB of digests at 4 KiB blocks, 512 GiB at 16 KiB: the
# message says which block size fits.
rm "$TM/s1/huge.img" "$TM/s1/small.txt"; truncate -s 256T "$TM/s1/huge.img"
expect_status "256 TiB at 4 KiB blocks: refused" 2 timeout 60 "$VBFSCTL" build "$TM/s1" "$T/i1" --block-size 4K
case $(cat "$T/last.err") in
*"huge.img: 281474976710656 bytes: at 4 KiB blocks"*"index it with --block-size 16K or larger") pass "256 TiB: names the block size that fits";;
*) fail "256 TiB: $(cat "$T/last.err")";; esac
rm -rf "$TM/s1"

# ---- 64 GiB at 4 KiB blocks, memory limited ---------------------------------------------
# A sanitizer build reserves terabytes of shadow memory: no data limit there.
if ldd "$VBFSCTL" 2>/dev/null | grep -q 'libasan\|libtsan'; then
	echo "# sanitizer build: the memory-limit case is skipped"
else
	mkdir "$TM/s2"
	truncate -s 64G "$TM/s2/disk.img"
	# 768 MiB: LMDB's write transaction holds up to 512 MiB of dirty pages
	# before it spills them (measured peak 553 MB); the old build, which
	# allocated the file's digests at once, peaked at 1.04 GB.
	( ulimit -d 786432; exec "$VBFSCTL" build "$TM/s2" "$T/i2" --block-size 4K ) >"$T/b2.out" 2>"$T/b2.err" &
	BPID=$!
	_PIDS+=("$BPID")
	sleep 2
	# Holes are not read (SEEK_DATA): the build may be done already; what
	# it must never do is run out of memory.
	if kill -0 "$BPID" 2>/dev/null; then
		kill -INT "$BPID"
		wait "$BPID"; RC=$?
		expect_eq "64 GiB in 768 MiB: still going after 2 s, Ctrl-C is exit 2" 2 "$RC"
		expect_eq "64 GiB: it says so" "vbfsctl: build: interrupted: the previous index is unchanged" \
			"$(tail -1 "$T/b2.err")"
		check "64 GiB: no index left behind" test ! -e "$T/i2"
	else
		wait "$BPID"; RC=$?
		expect_eq "64 GiB in 768 MiB: indexed, exit 0 ($(tail -1 "$T/b2.err"))" 0 "$RC"
		expect_status "64 GiB: verify" 0 "$VBFSCTL" verify "$TM/s2" "$T/i2"
	fi
fi
finish
