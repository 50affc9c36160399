#!/usr/bin/env bash
# snap_links.sh - an rsnapshot-style store: six daily snapshots hard-linking
# the same three files.  Each store inode is one inode in the index and in
# the mount: hashed once at build, one st_ino and the store's link count
# through every path, verified once per mount; cp -a, rsync -aH and tar
# restore links as links.  Damage is named by the path that was read; a link
# count that changed since indexing is a `changed` event.
. "$(dirname "$0")/lib.sh"
need jq; need getfattr attr; need rsync

MiB=1048576
S=$T/store IDX=$T/index M=$T/mnt
mkdir -p "$S/daily.0"
make_file "$S/daily.0/a.bin" 4 a
make_file "$S/daily.0/b.bin" 3 b
make_file "$T/c" 1 c; { cat "$T/c"; printf 'tail!'; } >"$S/daily.0/c.bin"
for i in 1 2 3 4 5; do cp -al "$S/daily.0" "$S/daily.$i"; done
distinct=$((4 * MiB + 3 * MiB + MiB + 5))

# ---- build: each inode hashed once ----------------------------------------------
expect_status "build" 0 "$VBFSCTL" build "$S" "$IDX" --json
expect_eq "3 files hashed, 15 hard links not hashed" "3 15" \
	"$(jq -r '"\(.files_hashed) \(.files_linked)"' "$T/last.out")"
expect_eq "bytes_hashed is the distinct data, not 6 times it" "$distinct" \
	"$(jq -r .bytes_hashed "$T/last.out")"

# ---- the mount: one inode per store inode ------------------------------------------
vbfs_mount "$S" "$IDX" "$M" || { fail "mount"; finish; exit; }
# Index ids in walk order: / 1, daily.0 2, daily.0/a.bin 3, b.bin 4, c.bin 5.
for i in 0 1 2 3 4 5; do
	expect_eq "daily.$i: inode and link count of a.bin b.bin c.bin" "3 6 4 6 5 6" \
		"$(stat -c '%i %h' "$M/daily.$i/a.bin" "$M/daily.$i/b.bin" "$M/daily.$i/c.bin" | tr '\n' ' ' | sed 's/ $//')"
done
expect_eq "ls -i agrees with stat" "3 a.bin" "$(ls -i "$M/daily.4" | head -1 | sed 's/^ *//')"
expect_eq "find -samefile finds the six paths" \
	"daily.0/b.bin daily.1/b.bin daily.2/b.bin daily.3/b.bin daily.4/b.bin daily.5/b.bin" \
	"$(cd "$M" && find . -samefile daily.3/b.bin | sed 's|^\./||' | sort | tr '\n' ' ' | sed 's/ $//')"
expect_eq "st_blocks is the store's" "$(stat -c %b "$S/daily.2/a.bin")" "$(stat -c %b "$M/daily.2/a.bin")"

expect_eq "every name reads the store's bytes" \
	"$(cat "$S"/daily.*/*.bin | sha256sum)" "$(cat "$M"/daily.*/*.bin | sha256sum)"
st=$(getfattr -n user.vbfs.stats --only-values "$M" 2>/dev/null)
expect_eq "18 names read, each block verified once: 4 + 3 + 2 blocks" 9 "$(jq .blocks_verified <<<"$st")"
expect_eq "bytes_verified: the distinct data" "$distinct" "$(jq .bytes_verified <<<"$st")"
# At least all 18 names (more if the kernel dropped a page and asked again).
check "bytes_served: all 18 names ($(jq .bytes_served <<<"$st") >= $((6 * distinct)))" \
	[ "$(jq .bytes_served <<<"$st")" -ge $((6 * distinct)) ]

inodes() { find "$1" -type f -printf '%i\n' | sort -u | wc -l; }
cp -a "$M" "$T/cp"
expect_eq "cp -a restores 3 inodes for 18 names" "3 18" "$(inodes "$T/cp") $(find "$T/cp" -type f | wc -l)"
rsync -aH "$M/" "$T/rsync/"
expect_eq "rsync -aH restores 3 inodes" 3 "$(inodes "$T/rsync")"
expect_eq "rsync -aH uses the store's disk" "$(du -sk "$S" | cut -f1)" "$(du -sk "$T/rsync" | cut -f1)"
mkdir "$T/tar" && tar -C "$M" -cf - . | tar -C "$T/tar" -xf -
expect_eq "tar restores 3 inodes" 3 "$(inodes "$T/tar")"
expect_eq "the restored tree is the store" "" "$(diff -r "$S" "$T/rsync" 2>&1)"
vbfs_umount "$M"
expect_eq "clean unmount: exit 0" 0 "$VBFS_STATUS"
expect_eq "no events" 0 "$(wc -c <"$M.log")"

# ---- damage of the shared inode: named by the path that was read --------------------
cp "$S/daily.0/b.bin" "$T/b.good"
flip_byte "$S/daily.0/b.bin" $((2 * MiB + 5))
vbfs_mount "$S" "$IDX" "$M" || { fail "mount 2"; finish; exit; }
expect_status "cat daily.3/b.bin: EIO" 1 cat "$M/daily.3/b.bin"
check "EIO named on stderr" grep -q "Input/output error" "$T/last.err"
expect_eq "blocks before the damage still read" \
	"$(head -c $((2 * MiB)) "$T/b.good" | sha256sum)" "$(head -c $((2 * MiB)) "$M/daily.5/b.bin" | sha256sum)"
vbfs_umount "$M"
expect_eq "unmount after damage: exit 1" 1 "$VBFS_STATUS"
expect_eq "the event names the path read, block 2 at 2 MiB" "corrupt daily.3/b.bin 2 2097152" \
	"$(jq -r 'select(.path=="daily.3/b.bin") | "\(.event) \(.path) \(.block) \(.offset)"' "$M.log" | head -1)"
expect_status "verify: exit 1" 1 "$VBFSCTL" verify "$S" "$IDX" --json
expect_eq "verify hashes the inode once and names its first path" "corrupt daily.0/b.bin 2 2097152 1" \
	"$(jq -r '[.events[] | "\(.event) \(.path) \(.block) \(.offset)"] | "\(.[0]) \(length)"' "$T/last.out")"
expect_eq "verify read 9 blocks for 18 names" 9 "$(jq -r .blocks "$T/last.out")"
cp "$T/b.good" "$T/b.tmp" && dd if="$T/b.tmp" of="$S/daily.0/b.bin" conv=notrunc status=none

# ---- a link count that changed since indexing -----------------------------------------
ln "$S/daily.0/c.bin" "$T/outside-link"
: >"$M.log"
vbfs_mount "$S" "$IDX" "$M" || { fail "mount 3"; finish; exit; }
expect_eq "a 7th link: the bytes still verify and serve" \
	"$(sha256sum <"$S/daily.1/c.bin")" "$(sha256sum <"$M/daily.1/c.bin")"
expect_eq "the mount still shows the indexed link count" "5 6" "$(stat -c '%i %h' "$M/daily.1/c.bin")"
vbfs_umount "$M"
expect_eq "changed link count: unmount exit 1" 1 "$VBFS_STATUS"
expect_eq "one changed event for the path read" \
	"changed daily.1/c.bin link count grew since it was indexed (a hard link added); bytes still verified" \
	"$(jq -r '"\(.event) \(.path) \(.detail)"' "$M.log")"
rm "$T/outside-link"
# A link broken (a copy put in its place): every path of the inode changed.
cp --remove-destination "$S/daily.0/a.bin" "$S/daily.4/a.bin"
expect_status "verify after a link was broken: exit 1" 1 "$VBFSCTL" verify "$S" "$IDX" --json
expect_eq "six changed events, no damage to bytes" "6 6" \
	"$(jq -r '"\([.events[] | select(.event=="changed")] | length) \(.events | length)"' "$T/last.out")"
expect_eq "the copy's own event says its link count fell" \
	"link count fell since it was indexed (a hard link removed or broken); bytes still verified" \
	"$(jq -r '.events[] | select(.path=="daily.4/a.bin") | .detail' "$T/last.out")"

# ---- the rebuild follows the store ------------------------------------------------------
expect_status "rebuild" 0 "$VBFSCTL" build "$S" "$IDX" --json
expect_eq "hashed: the copy (a new inode) and b.bin (its bytes put back); 14 links" "2 14" \
	"$(jq -r '"\(.files_hashed) \(.files_linked)"' "$T/last.out")"
expect_status "verify the rebuilt index" 0 "$VBFSCTL" verify "$S" "$IDX"
finish
