#!/usr/bin/env bash
# core_damage.sh - each kind of damage gives EIO exactly at the damaged
# blocks, every other block reads back byte-identical, the mount logs the
# right events, exits 1, and `vbfsctl verify` reports the same set.
#
# The store is indexed clean, then a copy of it is damaged; the mount and
# the scrub both look at the copy through the clean index.
#   flip.bin    5.5 MiB, one bit flipped in block 2           -> corrupt 2
#   zero.bin    4 MiB, 4 KiB zeroed across the 2|3 boundary   -> corrupt 2, 3
#   trunc.bin   3.5 MiB cut to 1.5 MiB (inside block 1)       -> missing 1, 2, 3
#   gone.bin    2 MiB, deleted                                -> missing (file)
#   swap_a.bin, swap_b.bin  2 MiB each, contents swapped      -> corrupt 0, 1 each
#   intact.bin  3 MiB, untouched                              -> nothing
. "$(dirname "$0")/lib.sh"
need jq; need getfattr attr
quiet() { "$@" >/dev/null 2>&1; }   # for check: the status, not the output

MiB=1048576
S=$T/store D=$T/damaged IDX=$T/index M=$T/mnt

make_file "$S/flip.bin" 6
truncate -s $((5 * MiB + MiB / 2)) "$S/flip.bin"
make_file "$S/zero.bin" 4
make_file "$S/trunc.bin" 4
truncate -s $((3 * MiB + MiB / 2)) "$S/trunc.bin"
make_file "$S/gone.bin" 2
make_file "$S/sub dir/swap_a.bin" 2
make_file "$S/sub dir/swap_b.bin" 2
make_file "$S/intact.bin" 3
expect_status "build the index of the clean store" 0 "$VBFSCTL" build "$S" "$IDX"

# ---- damage a copy -----------------------------------------------------------
cp -a "$S" "$D"
flip_bit() {   # flip_bit FILE OFFSET BIT
	local byte
	byte=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $((byte ^ (1 << $3))))" |
		dd of="$1" bs=1 seek="$2" count=1 conv=notrunc status=none
}
flip_bit "$D/flip.bin" $((2 * MiB + 12345)) 3
dd if=/dev/zero of="$D/zero.bin" bs=1 seek=$((3 * MiB - 2048)) count=4096 conv=notrunc status=none
truncate -s $((MiB + MiB / 2)) "$D/trunc.bin"
rm "$D/gone.bin"
mv "$D/sub dir/swap_a.bin" "$T/swap.tmp"
mv "$D/sub dir/swap_b.bin" "$D/sub dir/swap_a.bin"
mv "$T/swap.tmp" "$D/sub dir/swap_b.bin"
check "damage changed what it should" bash -c "! cmp -s '$S/flip.bin' '$D/flip.bin' &&
	! cmp -s '$S/zero.bin' '$D/zero.bin' && test \$(stat -c %s '$D/trunc.bin') = $((MiB + MiB / 2))"

# file -> "block:verdict ..." expected through the mount, bad = EIO.
declare -A WANT=(
	[flip.bin]="0:ok 1:ok 2:bad 3:ok 4:ok 5:ok"
	[zero.bin]="0:ok 1:ok 2:bad 3:bad"
	[trunc.bin]="0:ok 1:bad 2:bad 3:bad"
	[gone.bin]="0:bad 1:bad"
	[sub dir/swap_a.bin]="0:bad 1:bad"
	[sub dir/swap_b.bin]="0:bad 1:bad"
	[intact.bin]="0:ok 1:ok 2:ok"
)
# The (event, path, block) set both the mount and the scrub must report;
# a whole-file event has block -1.
cat >"$T/want.events" <<'EOF'
corrupt flip.bin 2
corrupt sub dir/swap_a.bin 0
corrupt sub dir/swap_a.bin 1
corrupt sub dir/swap_b.bin 0
corrupt sub dir/swap_b.bin 1
corrupt zero.bin 2
corrupt zero.bin 3
missing gone.bin -1
missing trunc.bin 1
missing trunc.bin 2
missing trunc.bin 3
EOF

# ---- read every block through the mount ------------------------------------
vbfs_mount "$D" "$IDX" "$M" || { fail "mount"; finish; exit 1; }

# Each block alone, 1 MiB at a time, in a fresh process, last block first
# (so kernel readahead of a good block never runs ahead into a bad one
# before that one was asked for by itself).
read_blocks() {
	local f=$1 spec k verdict got out
	for spec in $(tr ' ' '\n' <<<"${WANT[$f]}" | sort -t: -k1,1nr); do
		k=${spec%%:*} verdict=${spec#*:}
		out=$T/blk.out
		dd if="$M/$f" of="$out" bs=1M skip="$k" count=1 iflag=fullblock status=none 2>"$T/blk.err"
		got=$?
		if [ "$verdict" = bad ]; then
			if [ "$got" != 0 ] && grep -q "Input/output error" "$T/blk.err"; then
				pass "$f block $k: EIO"
			else
				fail "$f block $k: wanted EIO, got exit $got, $(stat -c %s "$out") bytes: $(head -c 200 "$T/blk.err")"
			fi
		else
			dd if="$S/$f" of="$T/blk.want" bs=1M skip="$k" count=1 status=none
			if [ "$got" = 0 ] && cmp -s "$out" "$T/blk.want"; then
				pass "$f block $k: byte-identical"
			else
				fail "$f block $k: wanted the original bytes, got exit $got, $(stat -c %s "$out") bytes: $(head -c 200 "$T/blk.err")"
			fi
		fi
	done
}
for f in flip.bin zero.bin trunc.bin gone.bin "sub dir/swap_a.bin" "sub dir/swap_b.bin" intact.bin; do
	read_blocks "$f"
done

# Whole-file readers see the failure too, and never a short file.
expect_status "cat of a damaged file fails" 1 cat "$M/flip.bin"
check "cat says EIO" grep -q "Input/output error" "$T/last.err"
expect_status "sha256sum of a damaged file fails" 1 sha256sum "$M/zero.bin"
expect_status "cp of a damaged file fails" 1 cp "$M/trunc.bin" "$T/restored.bin"
expect_status "cat of the intact file works" 0 cat "$M/intact.bin"
check "intact file byte-identical" cmp -s "$T/last.out" "$S/intact.bin"
# A read that starts in a good block and runs into a bad one fails whole.
expect_status "read spanning good block 1 and bad block 2 fails" 1 \
	dd if="$M/flip.bin" of=/dev/null bs=2M skip=$MiB count=1 iflag=skip_bytes,fullblock
# The tree is still shown as indexed: the deleted file is listed, its size kept.
expect_eq "deleted file still listed with its size" 2097152 "$(stat -c %s "$M/gone.bin")"
expect_eq "truncated file keeps its indexed size" $((3 * MiB + MiB / 2)) "$(stat -c %s "$M/trunc.bin")"
# The mount is still up and serving after all that.
check "the daemon is still running" kill -0 "$VBFS_PID"
check "the mount still answers" quiet head -c 1 "$M/intact.bin"

stats=$(getfattr --absolute-names -n user.vbfs.stats --only-values "$M")
dmg=$(jq -r '.events.corrupt + .events.missing' <<<"$stats")
check "stats count the damage events (corrupt+missing = $dmg >= 11)" test "${dmg:-0}" -ge 11

vbfs_umount "$M"
expect_eq "vbfs exits 1 after damage" 1 "$VBFS_STATUS"
check "summary names the damage" grep -q "^vbfs: unmounted.*damage" "$M.stderr"

# ---- the event log -------------------------------------------------------------
check "every log line is a JSON object" quiet jq -e -s 'all(type == "object")' "$M.log"
jq -r '"\(.event) \(.path) \(.block // -1)"' "$M.log" | LC_ALL=C sort -u >"$T/mount.events"
check "mount log has exactly the expected (event, path, block) set" \
	cmp -s "$T/want.events" "$T/mount.events" || diff "$T/want.events" "$T/mount.events" >&2

# Offsets, lengths and digests of block events against the clean store.
block_sha() { dd if="$1" bs=1M skip="$2" count=1 status=none | sha256sum | cut -c1-64; }
jq -c 'select(.block != null)' "$M.log" | sort -u >"$T/block.events"
bad_fields=0
while IFS= read -r ev; do
	path=$(jq -r .path <<<"$ev") b=$(jq -r .block <<<"$ev") kind=$(jq -r .event <<<"$ev")
	size=$(stat -c %s "$S/$path")
	len=$((size - b * MiB)); [ "$len" -gt "$MiB" ] && len=$MiB
	want_exp=$(block_sha "$S/$path" "$b")
	got=$(jq -r '"\(.offset) \(.length) \(.expected)"' <<<"$ev")
	if [ "$got" != "$((b * MiB)) $len $want_exp" ]; then
		bad_fields=$((bad_fields + 1)); echo "bad fields: $ev" >&2
	fi
	if [ "$kind" = corrupt ] && [ "$(jq -r .actual <<<"$ev")" != "$(block_sha "$D/$path" "$b")" ]; then
		bad_fields=$((bad_fields + 1)); echo "bad actual digest: $ev" >&2
	fi
	jq -e '.time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$")' >/dev/null <<<"$ev" ||
		{ bad_fields=$((bad_fields + 1)); echo "bad time: $ev" >&2; }
done <"$T/block.events"
expect_eq "block events: offset = block*1MiB, length = indexed length, expected/actual digests" \
	0 "$bad_fields"
expect_eq "missing last block has the short indexed length" "$((MiB / 2))" \
	"$(jq -r 'select(.path == "trunc.bin" and .block == 3) | .length' "$M.log" | sort -u)"

# ---- the scrub agrees ------------------------------------------------------------
expect_status "vbfsctl verify on the damaged copy" 1 "$VBFSCTL" verify "$D" "$IDX" --json
cp "$T/last.out" "$T/verify.json"
check "verify --json ok is false" quiet jq -e '.ok == false' "$T/verify.json"
jq -r '.events[] | "\(.event) \(.path) \(.block // -1)"' "$T/verify.json" | LC_ALL=C sort -u >"$T/verify.events"
check "verify reports the same (event, path, block) set as the mount" \
	cmp -s "$T/want.events" "$T/verify.events" || diff "$T/want.events" "$T/verify.events" >&2
expect_eq "verify reports each finding once" "$(wc -l <"$T/verify.events")" \
	"$(jq '.events | length' "$T/verify.json")"
check "verify stderr: one line for flip.bin naming block 2 and offset 2097152" \
	bash -c "grep 'flip.bin' '$T/last.err' | grep 'block 2' | grep -q 2097152"
expect_eq "verify stderr: one line per finding, plus the summary" 12 "$(grep -c . "$T/last.err")"
check "verify: same offsets and digests as the mount" bash -c "
	diff <(jq -c '.events[] | select(.block != null) | {event, path, block, offset, length, expected, actual}' '$T/verify.json' | sort) \
	     <(jq -c 'select(.block != null) | {event, path, block, offset, length, expected, actual}' '$M.log' | sort -u)"
expect_status "vbfsctl verify on the clean store" 0 "$VBFSCTL" verify "$S" "$IDX"

# ---- the clean store through the same index: nothing found, exit 0 ----------------
vbfs_mount "$S" "$IDX" "$T/mnt2" || fail "mount clean store"
check "clean store reads through" bash -c "cat '$T/mnt2/flip.bin' '$T/mnt2/zero.bin' >/dev/null"
vbfs_umount "$T/mnt2"
expect_eq "clean mount exits 0" 0 "$VBFS_STATUS"
finish
