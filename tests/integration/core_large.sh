#!/usr/bin/env bash
# core_large.sh - offsets past 4 GiB, and symlinks swapped in for
# directories after indexing.
#
# A sparse 4 GiB + 3 MiB + 17 byte file (no disk; its holes recorded, not read)
# with real data above 4 GiB: the block numbers, offsets and lengths the
# mount serves and logs must not wrap at 32 bits.  Then a directory of the
# store is replaced by a symlink to a directory outside the store that
# holds a file with the same bytes: vbfs must not follow it (that read
# would even verify).
. "$(dirname "$0")/lib.sh"
need jq

MiB=1048576 GiB=1073741824
S=$T/store IDX=$T/index M=$T/mnt
size=$((4 * GiB + 3 * MiB + 17))

mkdir -p "$S/sub"
truncate -s "$size" "$S/huge"
make_file "$T/chunk" 3
dd if="$T/chunk" of="$S/huge" bs=1M seek=4096 conv=notrunc status=none
printf 'tail-17-bytes-xyz' | dd of="$S/huge" bs=1 seek=$((4 * GiB + 3 * MiB)) conv=notrunc status=none
expect_eq "sparse file size" "$size" "$(stat -c %s "$S/huge")"
mkdir -p "$T/outside/sub"
printf 'same bytes\n' >"$S/sub/file"
cp "$S/sub/file" "$T/outside/sub/file"
expect_status "build" 0 "$VBFSCTL" build "$S" "$IDX" --jobs 2

# Damage block 4097 (offset 4 GiB + 1 MiB) and swap sub/ for a symlink.
flip_byte "$S/huge" $((4 * GiB + MiB + 5))
mv "$S/sub" "$T/sub.orig"
ln -s "$T/outside/sub" "$S/sub"

vbfs_mount "$S" "$IDX" "$M" || { fail "mount"; finish; exit 1; }
expect_eq "size past 4 GiB" "$size" "$(stat -c %s "$M/huge")"
blk() { dd if="$1" bs=1M skip="$2" count=1 status=none 2>/dev/null | sha256sum | cut -c1-16; }
expect_eq "block 0 (a hole): verified zeros" "$(head -c $MiB /dev/zero | sha256sum | cut -c1-16)" "$(blk "$M/huge" 0)"
expect_eq "block 4096 (offset 4 GiB)" "$(blk "$T/chunk" 0)" "$(blk "$M/huge" 4096)"
check "block 4097 (damaged) is EIO" bash -c "! dd if='$M/huge' bs=1M skip=4097 count=1 of=/dev/null status=none 2>/dev/null"
expect_eq "block 4098" "$(blk "$T/chunk" 2)" "$(blk "$M/huge" 4098)"
expect_eq "the 17-byte last block" "tail-17-bytes-xyz" \
	"$(dd if="$M/huge" bs=1M skip=4099 count=1 status=none)"
expect_eq "block 4095 (last one below 4 GiB)" "$(blk "$S/huge" 4095)" "$(blk "$M/huge" 4095)"
check "sub/file behind a symlinked dir: EIO, not the outside copy" \
	bash -c "! cat '$M/sub/file' >/dev/null 2>&1"
check "sub is still a directory in the mount" test -d "$M/sub" -a ! -L "$M/sub"
vbfs_umount "$M"
expect_eq "exit 1" 1 "$VBFS_STATUS"

expect_eq "corrupt event: block, offset, length past 4 GiB" "4097 $((4 * GiB + MiB)) $MiB" \
	"$(jq -r 'select(.event == "corrupt") | "\(.block) \(.offset) \(.length)"' "$M.log" | sort -u)"
expect_eq "sub/file: a changed event (not followed, not served)" "changed" \
	"$(jq -r 'select(.path == "sub/file") | .event' "$M.log" | sort -u | xargs)"

expect_status "verify" 1 "$VBFSCTL" verify "$S" "$IDX" --json --jobs 2
expect_eq "verify: the same block, offset, length" "4097 $((4 * GiB + MiB)) $MiB" \
	"$(jq -r '.events[] | select(.event == "corrupt") | "\(.block) \(.offset) \(.length)"' "$T/last.out")"
expect_eq "verify: sub/file changed, not read through the symlink" "changed" \
	"$(jq -r '.events[] | select(.path == "sub/file") | .event' "$T/last.out" | sort -u | xargs)"
expect_eq "verify: bytes = what it read (sub/file was not)" "$size" \
	"$(jq -r .bytes "$T/last.out")"
finish
