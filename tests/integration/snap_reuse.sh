#!/usr/bin/env bash
# snap_reuse.sh - full and incremental chains: `vbfsctl build --reuse
# OLD_INDEX` indexes a new snapshot (rsync --link-dest) at the cost of what
# changed, found by store inode.  A file is reused when its device, inode,
# size and mtime match, and its ctime too unless its link count changed (a
# new link moves the ctime).  Both sides of that rule are tested: an edit
# that kept the mtime is caught by the ctime, and what passes when the link
# count changed too.  Bad uses are exit 2 with one line, and write nothing.
. "$(dirname "$0")/lib.sh"
need jq; need rsync

KiB=1024
S=$T/store SRC=$T/src
mkdir -p "$SRC/db" "$S"
for i in $(seq 1 100); do make_file "$SRC/db/f$i" 1 "f$i"; done   # 100 x 1 MiB
make_file "$SRC/wal" 1 wal
rsync -a "$SRC/" "$S/2026-12-01/"
expect_status "full: index of the first snapshot" 0 "$VBFSCTL" build "$S/2026-12-01" "$T/i1" --json
expect_eq "101 files hashed" "101 105906176" "$(jq -r '"\(.files_hashed) \(.bytes_hashed)"' "$T/last.out")"

# The next night: one file rewritten, one appended to, one new; the rest
# are hard links to the previous snapshot (rsync --link-dest).
make_file "$SRC/db/f7" 1 f7-new
head -c $((64 * KiB)) /dev/urandom >>"$SRC/wal"
make_file "$SRC/db/f101" 1 f101
rsync -a --link-dest="$S/2026-12-01" "$SRC/" "$S/2026-12-02/"
expect_status "incremental: --reuse the previous index" 0 \
	"$VBFSCTL" build "$S/2026-12-02" "$T/i2" --reuse "$T/i1" --json
expect_eq "hashed 3 (f7, wal, f101), reused 99" "3 99" \
	"$(jq -r '"\(.files_hashed) \(.files_reused)"' "$T/last.out")"
expect_eq "bytes_hashed: what changed" $((3 * 1048576 + 64 * KiB)) "$(jq -r .bytes_hashed "$T/last.out")"
expect_eq "bytes_reused" $((99 * 1048576)) "$(jq -r .bytes_reused "$T/last.out")"
expect_status "the incremental index verifies" 0 "$VBFSCTL" verify "$S/2026-12-02" "$T/i2" --json
expect_eq "every block checked" 103 "$(jq -r .blocks "$T/last.out")"
expect_eq "exports agree on the reused files" \
	"$("$VBFSCTL" export "$T/i1" --format blocks | jq -c '.files["db/f50"]')" \
	"$("$VBFSCTL" export "$T/i2" --format blocks | jq -c '.files["db/f50"]')"

# ---- what is trusted -------------------------------------------------------------
# An edit in place with the mtime put back (f9 is shared with the first
# snapshot).  Against i2, which recorded f9 with the same link count, the
# moved ctime shows the edit: f9 is hashed again.
f=$S/2026-12-02/db/f9
mt=$(stat -c %y "$f")
flip_byte "$f" 100
touch -d "$mt" "$f"
expect_eq "the mtime is back, the ctime is not" "$mt" "$(stat -c %y "$f")"
expect_status "rebuild --reuse i2 after an edit that kept the mtime" 0 \
	"$VBFSCTL" build "$S/2026-12-02" "$T/i3" --reuse "$T/i2" --json
expect_eq "f9 is hashed again, not reused" "1 101" \
	"$(jq -r '"\(.files_hashed) \(.files_reused)"' "$T/last.out")"
expect_status "and verifies against its new bytes" 0 "$VBFSCTL" verify "$S/2026-12-02" "$T/i3"
# Against i1, f9's link count changed (1 -> 2: the snapshot's link), and a
# link moves the ctime too: then only device, inode, size and mtime are
# compared, and this edit passes (documented).  The older snapshot shares
# the inode, so its own index sees the edit as damage.
expect_status "rebuild --reuse i1" 0 "$VBFSCTL" build "$S/2026-12-02" "$T/i3b" --reuse "$T/i1" --json
expect_eq "f9 reused from i1: link count changed, mtime kept" "3 99" \
	"$(jq -r '"\(.files_hashed) \(.files_reused)"' "$T/last.out")"
expect_status "a verify of the new snapshot names it" 1 "$VBFSCTL" verify "$S/2026-12-02" "$T/i3b" --json
expect_eq "corrupt db/f9 block 0" "corrupt db/f9 0" "$(jq -r '.events[] | "\(.event) \(.path) \(.block)"' "$T/last.out")"
expect_status "the first snapshot's index sees the edit too" 1 "$VBFSCTL" verify "$S/2026-12-01" "$T/i1"
# A copy with the same bytes and mtime is another inode: hashed.
cp -p "$S/2026-12-01/db/f3" "$T/f3" && rm "$S/2026-12-02/db/f3" && cp -p "$T/f3" "$S/2026-12-02/db/f3"
expect_status "rebuild after a file was replaced by a copy" 0 \
	"$VBFSCTL" build "$S/2026-12-02" "$T/i4" --reuse "$T/i3" --json
expect_eq "only the copy is hashed" "1 101" "$(jq -r '"\(.files_hashed) \(.files_reused)"' "$T/last.out")"

# ---- in place: a rotating rsnapshot tree -----------------------------------------
R=$T/rot
mkdir -p "$R/daily.0"
for i in $(seq 1 10); do make_file "$R/daily.0/f$i" 1 "rot$i"; done
for n in 1 2 3; do cp -al "$R/daily.0" "$R/daily.$n"; done
expect_status "rotating tree: first build" 0 "$VBFSCTL" build "$R" "$T/irot" --json
expect_eq "10 hashed, 30 links" "10 30" "$(jq -r '"\(.files_hashed) \(.files_linked)"' "$T/last.out")"
rotate() {   # rsnapshot: drop the oldest, shift, link daily.0 into daily.1, one file new
	rm -rf "$R/daily.3"; mv "$R/daily.2" "$R/daily.3"; mv "$R/daily.1" "$R/daily.2"
	cp -al "$R/daily.0" "$R/daily.1"
	rm "$R/daily.0/f$1" && make_file "$R/daily.0/f$1" 1 "rot$1-new"
}
for i in 5 6; do
	rotate "$i"
	expect_status "rotation with f$i changed: in-place rebuild" 0 "$VBFSCTL" build "$R" "$T/irot" --json
	expect_eq "only the new f$i is hashed; its old version keeps its digests by inode" "1 1048576" \
		"$(jq -r '"\(.files_hashed) \(.bytes_hashed)"' "$T/last.out")"
done
mv "$R/daily.3" "$R/renamed"
expect_status "a snapshot renamed: rebuild" 0 "$VBFSCTL" build "$R" "$T/irot" --json
expect_eq "nothing hashed" 0 "$(jq -r .files_hashed "$T/last.out")"
expect_status "the rotated index verifies" 0 "$VBFSCTL" verify "$R" "$T/irot"

# ---- bad uses: exit 2, one line, nothing written ------------------------------------
expect_status "--reuse of the index being built" 2 "$VBFSCTL" build "$S/2026-12-02" "$T/i2" --reuse "$T/i2"
expect_eq "one line naming it" "vbfsctl: build: --reuse $T/i2: is the index being built (a rebuild of an index reuses its own digests already)" \
	"$(cat "$T/last.err")"
expect_status "--reuse with another block size" 2 \
	"$VBFSCTL" build "$S/2026-12-02" "$T/i5" --reuse "$T/i1" --block-size 64K
check "no index left behind" [ ! -e "$T/i5" ]
expect_status "--reuse of a directory that is not an index" 2 \
	"$VBFSCTL" build "$S/2026-12-02" "$T/i5" --reuse "$SRC"
check "one line" [ "$(wc -l <"$T/last.err")" = 1 ]
check "no index left behind" [ ! -e "$T/i5" ]
expect_status "--reuse of nothing" 2 "$VBFSCTL" build "$S/2026-12-02" "$T/i5" --reuse "$T/nothing"
expect_status "--reuse without a value" 2 "$VBFSCTL" build "$S/2026-12-02" "$T/i5" --reuse
finish
