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

# ---- the mount: one inode per store inode, numbered as in the store -----------------
vbfs_mount "$S" "$IDX" "$M" || { fail "mount"; finish; exit; }
# stat -c '%i %h' of every name, dirs included, in the store or the mount.
ino_list() { (cd "$1" && find . -printf '%P\n' | sort | while read -r p; do
	stat -c "${p:-.} %i %h" "./$p"; done); }
expect_eq "stat -c %i of every file, link and dir: the store's" "$(ino_list "$S")" "$(ino_list "$M")"
for i in 0 1 2 3 4 5; do
	expect_eq "daily.$i: the same inode as daily.0 for a.bin b.bin c.bin, 6 links" \
		"$(stat -c '%i %h' "$S/daily.0/a.bin" "$S/daily.0/b.bin" "$S/daily.0/c.bin")" \
		"$(stat -c '%i %h' "$M/daily.$i/a.bin" "$M/daily.$i/b.bin" "$M/daily.$i/c.bin")"
done
expect_eq "ls -i agrees with the store (readdir d_ino)" "$(ls -i "$S/daily.4")" "$(ls -i "$M/daily.4")"
expect_eq "ls -li agrees with the store (readdirplus)" "$(ls -lin "$S/daily.4" | cut -d' ' -f1-3)" \
	"$(ls -lin "$M/daily.4" | cut -d' ' -f1-3)"
expect_eq "find -printf %i agrees with the store" "$(cd "$S" && find . -printf '%i %p\n' | sort)" \
	"$(cd "$M" && find . -printf '%i %p\n' | sort)"
expect_eq "find -samefile finds the six paths" \
	"daily.0/b.bin daily.1/b.bin daily.2/b.bin daily.3/b.bin daily.4/b.bin daily.5/b.bin" \
	"$(cd "$M" && find . -samefile daily.3/b.bin | sed 's|^\./||' | sort | tr '\n' ' ' | sed 's/ $//')"
expect_eq "st_blocks is the store's" "$(stat -c %b "$S/daily.2/a.bin")" "$(stat -c %b "$M/daily.2/a.bin")"

# An index written before the store's inode numbers were vouched for (no
# meta store_inodes, as an older vbfs wrote it): the holder's index ids.
# Index ids in walk order: / 1, daily.0 2, daily.0/a.bin 3, b.bin 4, c.bin 5.
TAMPER=${VBFS_TAMPER:-$VBFS_BUILD/tests/test_tamper}
cp -a "$IDX" "$T/idx-old"
expect_status "an index without store_inodes" 0 "$TAMPER" "$T/idx-old" unmeta=store_inodes --reseal
vbfs_mount "$S" "$T/idx-old" "$T/mnt-old" || { fail "mount of the older index"; finish; exit; }
for i in 0 3 5; do
	expect_eq "older index, daily.$i: the holders' ids 3 4 5, 6 links" "3 6 4 6 5 6" \
		"$(stat -c '%i %h' "$T/mnt-old/daily.$i/a.bin" "$T/mnt-old/daily.$i/b.bin" "$T/mnt-old/daily.$i/c.bin" | tr '\n' ' ' | sed 's/ $//')"
done
cp -a "$T/mnt-old" "$T/cp-old"
expect_eq "older index: cp -a restores 3 inodes for 18 names" "3 18" \
	"$(find "$T/cp-old" -type f -printf '%i\n' | sort -u | wc -l) $(find "$T/cp-old" -type f | wc -l)"
rm -rf "$T/cp-old"
vbfs_umount "$T/mnt-old"
expect_eq "older index: clean unmount" 0 "$VBFS_STATUS"

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
c_ino=$(stat -c %i "$S/daily.0/c.bin")
ln "$S/daily.0/c.bin" "$T/outside-link"
: >"$M.log"
vbfs_mount "$S" "$IDX" "$M" || { fail "mount 3"; finish; exit; }
expect_eq "a 7th link: the bytes still verify and serve" \
	"$(sha256sum <"$S/daily.1/c.bin")" "$(sha256sum <"$M/daily.1/c.bin")"
expect_eq "the mount still shows the indexed link count" "$c_ino 6" "$(stat -c '%i %h' "$M/daily.1/c.bin")"
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
# ---- a store on two devices: index ids, never a mix -----------------------------------
# A tmpfs mounted inside the store: its inode numbers are another device's
# (tmpfs numbers from 1 up and can equal the outer file system's), so the
# mount shows index ids for the whole tree.
D=$T/two
mkdir -p "$D/sub"
mount -t tmpfs -o size=16m vbfs-snap-test "$D/sub" || skip "cannot mount a tmpfs"
_MOUNTS+=("$D/sub")
make_file "$D/a.bin" 1 A; ln "$D/a.bin" "$D/a.link"
make_file "$D/sub/x.bin" 1 X; ln "$D/sub/x.bin" "$D/sub/x.link"
expect_status "build of a store on two devices" 0 "$VBFSCTL" build "$D" "$T/idx-two"
vbfs_mount "$D" "$T/idx-two" "$T/mnt-two" || { fail "mount of the two-device store"; finish; exit; }
# Walk order: / 1, a.bin 2, a.link 3, sub 4, sub/x.bin 5, sub/x.link 6.
expect_eq "two devices: index ids, links share their holder's" ". 1 a.bin 2 a.link 2 sub 4 sub/x.bin 5 sub/x.link 5" \
	"$(ino_list "$T/mnt-two" | cut -d' ' -f1-2 | tr '\n' ' ' | sed 's/ $//')"
cp -a "$T/mnt-two" "$T/cp-two"
expect_eq "two devices: cp -a restores 2 inodes for 4 names" "2 4" \
	"$(find "$T/cp-two" -type f -printf '%i\n' | sort -u | wc -l) $(find "$T/cp-two" -type f | wc -l)"
vbfs_umount "$T/mnt-two"
expect_eq "two devices: clean unmount" 0 "$VBFS_STATUS"
umount "$D/sub"
finish
