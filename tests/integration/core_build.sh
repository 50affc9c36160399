#!/usr/bin/env bash
# core_build.sh - `vbfsctl build` is incremental and atomic.
#
# An incremental rebuild reports what it reused and removed (--json); a
# build killed with SIGKILL half-way, or stopped with SIGINT, leaves the
# previous index exactly as it was and usable (verify exit 0, the mount
# serves it), and the next build works (LMDB's writer lock recovers).
. "$(dirname "$0")/lib.sh"
need jq
quiet() { "$@" >/dev/null 2>&1; }

MiB=1048576
S=$T/store IDX=$T/index

make_file "$S/keep/a.bin" 2
make_file "$S/keep/b.bin" 1
make_file "$S/old.bin" 1
expect_status "first build" 0 "$VBFSCTL" build "$S" "$IDX" --json
check "index dir is mode 0700" test "$(stat -c %a "$IDX")" = 700
expect_eq "first build: hashed 3" "true 3 0 0 $((4 * MiB))" \
	"$(jq -r '"\(.ok) \(.files_hashed) \(.files_reused) \(.files_removed) \(.bytes_hashed)"' "$T/last.out")"
check "build --json has seconds" quiet jq -e '.seconds >= 0' "$T/last.out"

# Incremental: one file changed, one removed, one added.
make_file "$S/keep/b.bin" 1 other-seed
rm "$S/old.bin"
make_file "$S/new.bin" 1
expect_status "incremental build" 0 "$VBFSCTL" build "$S" "$IDX" --json
expect_eq "incremental: hashed 2 (changed+new), reused 1, removed 1" "true 2 1 1 $((2 * MiB))" \
	"$(jq -r '"\(.ok) \(.files_hashed) \(.files_reused) \(.files_removed) \(.bytes_hashed)"' "$T/last.out")"
check "build summary on stderr, not stdout" grep -q "reused" "$T/last.err"
expect_status "--full" 0 "$VBFSCTL" build "$S" "$IDX" --full --json
expect_eq "--full rehashes all 3" "3 0" "$(jq -r '"\(.files_hashed) \(.files_reused)"' "$T/last.out")"
expect_status "verify after rebuilds" 0 "$VBFSCTL" verify "$S" "$IDX"

"$VBFSCTL" export "$IDX" --format blocks 2>/dev/null | jq -S -c .files >"$T/before.files"
expect_eq "the index lists 3 files" 3 "$(jq 'keys | length' "$T/before.files")"

# ---- a build killed with SIGKILL half-way --------------------------------------
# Big preallocated files: no data written, but every byte is read and
# hashed (holes of sparse files would be recorded without reading).
for i in 1 2 3 4; do fallocate -l 1G "$S/sparse$i"; done
"$VBFSCTL" build "$S" "$IDX" --full --jobs 2 >"$T/kill.out" 2>"$T/kill.err" &
bpid=$!
_PIDS+=("$bpid")
# Wait until it has read 256 MiB of the 4 GiB (mid-way, write txn open).
midway=no
for _ in $(seq 1 400); do
	rchar=$(awk '/^rchar/ { print $2 }' "/proc/$bpid/io" 2>/dev/null || echo 0)
	[ "${rchar:-0}" -ge $((256 * MiB)) ] && { midway=yes; break; }
	kill -0 "$bpid" 2>/dev/null || break
	sleep 0.05
done
expect_eq "build was mid-way when killed" yes "$midway"
kill -9 "$bpid" 2>/dev/null
wait "$bpid" 2>/dev/null; st=$?
expect_eq "build died of SIGKILL" 137 "$st"

expect_status "verify with the previous index after the kill" 0 "$VBFSCTL" verify "$S" "$IDX" --json
expect_eq "it verified the 3 files of the previous index" 3 "$(jq -r .files "$T/last.out")"
"$VBFSCTL" export "$IDX" --format blocks 2>/dev/null | jq -S -c .files >"$T/after.files"
check "the index lists exactly what it listed before" cmp -s "$T/before.files" "$T/after.files"

vbfs_mount "$S" "$IDX" "$T/mnt" || fail "mount after the killed build"
expect_eq "the mount shows the previous tree" "keep new.bin" "$(ls "$T/mnt" | xargs)"
check "and serves it" cmp -s "$S/keep/a.bin" "$T/mnt/keep/a.bin"
vbfs_umount "$T/mnt"
expect_eq "clean unmount" 0 "$VBFS_STATUS"

# ---- SIGINT: stops, says so, writes nothing --------------------------------------
"$VBFSCTL" build "$S" "$IDX" --full --jobs 2 >"$T/int.out" 2>"$T/int.err" &
bpid=$!
_PIDS+=("$bpid")
for _ in $(seq 1 400); do
	rchar=$(awk '/^rchar/ { print $2 }' "/proc/$bpid/io" 2>/dev/null || echo 0)
	[ "${rchar:-0}" -ge $((128 * MiB)) ] && break
	sleep 0.05
done
kill -INT "$bpid" 2>/dev/null
wait "$bpid" 2>/dev/null; st=$?
expect_eq "interrupted build exits 2" 2 "$st"
expect_eq "one line on stderr" 1 "$(grep -c . "$T/int.err")"
check "it says the index is unchanged" grep -q "^vbfsctl: .*unchanged" "$T/int.err"
"$VBFSCTL" export "$IDX" --format blocks 2>/dev/null | jq -S -c .files >"$T/after2.files"
check "index unchanged after SIGINT" cmp -s "$T/before.files" "$T/after2.files"

# ---- the next build works (no stale writer lock) ---------------------------------
for i in 1 2 3 4; do truncate -s $((8 * MiB)) "$S/sparse$i"; done
expect_status "build after the kill" 0 timeout 60 "$VBFSCTL" build "$S" "$IDX" --json
expect_eq "it hashed the 4 new files, reused 3" "4 3" \
	"$(jq -r '"\(.files_hashed) \(.files_reused)"' "$T/last.out")"
expect_status "verify the new index" 0 "$VBFSCTL" verify "$S" "$IDX"

# ---- an index inside the store ------------------------------------------------------
# A common slip: `vbfsctl build STORE STORE/.index`.  Either refuse it
# (exit 2, one line) or leave the index out of what it indexes; it must not
# index its own LMDB files, or every verify after it reports damage.
mkdir -p "$T/inner"
make_file "$T/inner/data.bin" 1
"$VBFSCTL" build "$T/inner" "$T/inner/.vbfs-index" >"$T/inner.out" 2>"$T/inner.err"; st=$?
if [ "$st" = 2 ]; then
	expect_eq "index inside the store: refused with one line" 1 "$(grep -c . "$T/inner.err")"
	check "and no index written into the store" test ! -e "$T/inner/.vbfs-index/data.mdb"
else
	expect_eq "index inside the store: build exit" 0 "$st"
	expect_status "index inside the store: the next verify finds nothing" 0 \
		"$VBFSCTL" verify "$T/inner" "$T/inner/.vbfs-index"
fi

# ---- a rebuild under a live mount ------------------------------------------------
# cron rebuilds the index while a restore reads through the mount, and one
# file changed (new bytes, new size).  Whatever the mount shows, a reader
# must get exactly the old file, exactly the new one, or EIO - never old
# bytes cut at the new size.
rm -f "$S"/sparse*
make_file "$S/live.bin" 3 live-old
cp "$S/live.bin" "$T/live.old"
expect_status "index for the live mount" 0 "$VBFSCTL" build "$S" "$IDX"
vbfs_mount "$S" "$IDX" "$T/mnt" || fail "mount"
check "old file read once through the mount" cmp -s "$T/mnt/live.bin" "$T/live.old"
make_file "$T/live.new" 3 live-new
truncate -s $((2 * MiB + MiB / 2)) "$T/live.new"
cp "$T/live.new" "$S/live.bin.tmp" && mv "$S/live.bin.tmp" "$S/live.bin"
make_file "$S/added.bin" 1
expect_status "rebuild while mounted" 0 "$VBFSCTL" build "$S" "$IDX"
# Drop this file's pages from the kernel cache (nothing global), then read.
dd if="$T/mnt/live.bin" iflag=nocache count=0 status=none
if cat "$T/mnt/live.bin" >"$T/live.got" 2>"$T/live.err"; then
	if cmp -s "$T/live.got" "$T/live.old"; then pass "rebuilt under the mount: old file, whole"
	elif cmp -s "$T/live.got" "$T/live.new"; then pass "rebuilt under the mount: new file, whole"
	else fail "rebuilt under the mount: got $(stat -c %s "$T/live.got") bytes that are neither file" \
		"(old: $(stat -c %s "$T/live.old"), new: $(stat -c %s "$T/live.new");" \
		"first $(cmp "$T/live.got" "$T/live.old" 2>&1 | grep -q EOF && echo "bytes = old file's prefix" || echo "bytes differ from old"))"
	fi
else
	check "rebuilt under the mount: EIO" grep -q "Input/output error" "$T/live.err"
fi
check "untouched files still read through" cmp -s "$S/keep/a.bin" "$T/mnt/keep/a.bin"
vbfs_umount "$T/mnt"
finish
