#!/usr/bin/env bash
# heal_replica.sh - a replica turns the store's damage into verified bytes.
#
# The store is indexed clean, copied to two replicas, then damaged:
#   a.bin  4 MiB: block 1 flipped in the store only        -> healed from R
#                 block 3 flipped in the store AND in R     -> EIO
#   b.bin  2 MiB: deleted from the store                    -> healed, both blocks
#   c.bin  1.5 MiB: cut to 1 MiB (block 1 missing)          -> healed
# A hostile replica H comes first: its a.bin is a symlink to the original
# (outside H) and its b.bin has other bytes.  Neither is ever served; each
# refusal is logged with source replica:H (its c.bin is cut short, too).
. "$(dirname "$0")/lib.sh"
need jq; need getfattr attr

MiB=1048576
S=$T/store R=$T/replica H=$T/hostile IDX=$T/index M=$T/mnt

make_file "$S/a.bin" 4
make_file "$S/b.bin" 2
make_file "$S/c.bin" 2
truncate -s $((MiB + MiB / 2)) "$S/c.bin"
expect_status "build the index" 0 "$VBFSCTL" build "$S" "$IDX"
cp -a "$S" "$T/orig"
cp -a "$S" "$R"
mkdir -p "$H"
ln -s "$T/orig/a.bin" "$H/a.bin"
make_file "$H/b.bin" 2 other-bytes
head -c 4096 "$S/c.bin" >"$H/c.bin"   # short: block 1 missing in H too

flip_bit() {   # flip_bit FILE OFFSET
	local byte
	byte=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $((byte ^ 8)))" | dd of="$1" bs=1 seek="$2" count=1 conv=notrunc status=none
}
flip_bit "$S/a.bin" $((MiB + 100))
flip_bit "$S/a.bin" $((3 * MiB + 7))
flip_bit "$R/a.bin" $((3 * MiB + 9))
rm "$S/b.bin"
truncate -s "$MiB" "$S/c.bin"
sha_store_before=$(find "$S" -type f -exec sha256sum {} + | sort | sha256sum)

# ---- bad input: exit 2, one line, nothing mounted ------------------------------
mkdir -p "$M"
expect_status "mount with a replica that does not exist" 2 \
	"$VBFS_BIN" -f -o "index=$IDX,replica=$T/nope" "$S" "$M"
check "... says which replica" grep -q "replica $T/nope" "$T/last.err"
expect_status "mount with an empty replica list" 2 "$VBFS_BIN" -f -o "index=$IDX,replica=" "$S" "$M"
expect_status "verify --replica that is a file" 2 "$VBFSCTL" verify "$S" "$IDX" --replica "$S/a.bin"
expect_status "verify --replica without a value" 2 "$VBFSCTL" verify "$S" "$IDX" --replica
expect_status "verify --parity twice" 2 "$VBFSCTL" verify "$S" "$IDX" --parity "$T" --parity "$T"

# ---- the mount -------------------------------------------------------------
vbfs_mount "$S" "$IDX" "$M" "replica=$H:$R" || { fail "mount"; finish; exit 1; }
RH=$(realpath "$H") RR=$(realpath "$R")

# a.bin: blocks 0-2 read back exact (block 1 healed); block 3 is EIO.
check "a.bin blocks 0-2 are the original bytes" \
	bash -c "dd if='$M/a.bin' bs=$MiB count=3 status=none | cmp -s - <(head -c $((3 * MiB)) '$T/orig/a.bin')"
expect_status "a.bin block 3 (damaged in store and replica) is EIO" 1 \
	dd if="$M/a.bin" of=/dev/null bs=$MiB skip=3 count=1 iflag=direct status=none
check "... and the error is EIO" grep -q "Input/output error" "$T/last.err"
check "b.bin (gone from the store) reads back exact" cmp -s "$M/b.bin" "$T/orig/b.bin"
check "c.bin (truncated in the store) reads back exact" cmp -s "$M/c.bin" "$T/orig/c.bin"
STATS=$(getfattr -n user.vbfs.stats --only-values "$M")
expect_eq "stats: healed blocks" 4 "$(jq .healed <<<"$STATS")"
expect_eq "stats: healed from replica R" 4 "$(jq --arg s "replica:$RR" '.healed_by_source[$s]' <<<"$STATS")"
expect_eq "stats: unrepairable blocks" 1 "$(jq .unrepairable <<<"$STATS")"
expect_eq "stats: only the store's damage counts (a replica's bad copy does not)" "2 4" \
	"$(jq -r '"\(.events.corrupt) \(.events.missing)"' <<<"$STATS")"
vbfs_umount "$M"
expect_eq "unmount exit status: the store is damaged" 1 "$VBFS_STATUS"

LOG=$M.log
ev() { jq -c "select(.path == \"$1\" and .block == $2)" "$LOG"; }
EXP1=$(head -c $((2 * MiB)) "$T/orig/a.bin" | tail -c $MiB | sha256sum | cut -d' ' -f1)
expect_eq "a.bin block 1: the store's damage, repairable from R, then healed" \
	"corrupt true replica:$RR|unreadable null replica:$RH|healed null replica:$RR" \
	"$(ev a.bin 1 | jq -r '"\(.event) \(.repairable) \(.source)"' | paste -sd'|')"
expect_eq "healed event: offset, length, expected digest" "$MiB $MiB $EXP1" \
	"$(ev a.bin 1 | jq -r 'select(.event == "healed") | "\(.offset) \(.length) \(.expected)"')"
expect_eq "a.bin block 3: damage not repairable; both replicas refused" \
	"corrupt false null|unreadable null replica:$RH|corrupt null replica:$RR" \
	"$(ev a.bin 3 | jq -r '"\(.event) \(.repairable) \(.source)"' | paste -sd'|')"
expect_eq "b.bin: the file's missing event, then per block: healed, H's copy refused" \
	"missing -1|missing 0 true|corrupt 0 replica:$RH|healed 0 replica:$RR" \
	"$(jq -r 'select(.path == "b.bin" and (.block // -1) <= 0) |
		"\(.event) \(.block // -1)\(if .repairable != null then " \(.repairable)" else "" end)\(if .source and .repairable == null then " \(.source)" else "" end)"' "$LOG" | paste -sd'|')"
expect_eq "no bytes from H were ever healed" 0 "$(jq -c "select(.event == \"healed\" and .source == \"replica:$RH\")" "$LOG" | wc -l)"

# ---- the scrub says the same ----------------------------------------------------
expect_status "verify --replica: damage is still damage" 1 \
	"$VBFSCTL" verify "$S" "$IDX" --replica "$H" --replica "$R" --json
expect_eq "verify: blocks damaged / repairable / unrecoverable" "5 4 1 4" \
	"$(jq -r '"\(.damaged_blocks) \(.repairable) \(.unrecoverable) \(.healed)"' "$T/last.out")"
check "verify: the ZFS-like summary line" grep -qx "5 blocks damaged, 4 repairable, 1 unrecoverable" "$T/last.err"
check "verify: the store's 6 damage events, not the replicas' refused copies" grep -q ": 6 damage events$" "$T/last.err"
check "verify: a refused copy is a note naming its replica" \
	grep -qF "a.bin: note corrupt block 3 at offset $((3 * MiB))" "$T/last.err"
expect_eq "verify: per block event, repairable and source as the mount" \
	"$(jq -c 'select(.block != null and .block >= 0) | {event, path, block, repairable, source}' "$LOG" | sort)" \
	"$(jq -c '.events[] | select(.block != null and .block >= 0) | {event, path, block, repairable, source}' "$T/last.out" | sort)"
expect_status "verify without sources: unchanged" 1 "$VBFSCTL" verify "$S" "$IDX" --json
expect_eq "... no healing keys" "null null" "$(jq -r '"\(.healed) \(.events[0].repairable)"' "$T/last.out")"

expect_eq "the store was never written" "$sha_store_before" \
	"$(find "$S" -type f -exec sha256sum {} + | sort | sha256sum)"
finish
