#!/usr/bin/env bash
# heal_repair.sh - vbfsctl repair: the dry run writes nothing, --output
# writes whole repaired copies elsewhere, --apply puts back exactly the
# original bytes (mode and mtime as indexed), and nothing that did not
# verify is ever written.
#   a.bin  4 MiB: block 1 flipped in the store; block 3 flipped in the
#          store and in the replica (until the replica is mended)
#   b.bin  2 MiB: deleted from the store
#   c.bin  1.5 MiB: cut to 1 MiB in the store
. "$(dirname "$0")/lib.sh"
need jq

MiB=1048576
S=$T/store R=$T/replica F=$T/forged IDX=$T/index O=$T/out
sums() { (cd "$1" && find . -type f -exec sha256sum {} + | sort; find . -printf '%p %m %T@\n' | sort) | sha256sum; }
flip_bit() {   # flip_bit FILE OFFSET
	local byte
	byte=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $((byte ^ 8)))" | dd of="$1" bs=1 seek="$2" count=1 conv=notrunc status=none
}

make_file "$S/a.bin" 4
make_file "$S/d/b.bin" 2
chmod 640 "$S/d/b.bin"
make_file "$S/c.bin" 2
truncate -s $((MiB + MiB / 2)) "$S/c.bin"
touch -d '2024-01-02 03:04:05.123456789' "$S/a.bin" "$S/d/b.bin" "$S/c.bin"
expect_status "build the index" 0 "$VBFSCTL" build "$S" "$IDX"
cp -a "$S" "$T/orig"
cp -a "$S" "$R"
flip_bit "$S/a.bin" $((MiB + 100))
flip_bit "$S/a.bin" $((3 * MiB + 7))
flip_bit "$R/a.bin" $((3 * MiB + 9))
rm "$S/d/b.bin"
truncate -s "$MiB" "$S/c.bin"
# The forged replica: the damaged store, a.bin block 1 replaced by other
# bytes of the same size.
cp -a "$S" "$F"
make_file "$T/other" 1 other
dd if="$T/other" of="$F/a.bin" bs=$MiB seek=1 count=1 conv=notrunc status=none
cp "$S/a.bin" "$T/damaged-a.bin"

# ---- bad input: exit 2, the store untouched ---------------------------------------
before=$(sums "$S")
expect_status "repair without a source" 2 "$VBFSCTL" repair "$S" "$IDX" --apply
expect_status "repair with two modes" 2 "$VBFSCTL" repair "$S" "$IDX" --replica "$R" --dry-run --apply
expect_status "repair --output inside the store" 2 "$VBFSCTL" repair "$S" "$IDX" --replica "$R" --output "$S/out"
expect_status "repair of a store that does not exist" 2 "$VBFSCTL" repair "$T/nope" "$IDX" --replica "$R"
expect_status "repair --replica that does not exist" 2 "$VBFSCTL" repair "$S" "$IDX" --replica "$T/nope" --apply
expect_status "repair with an unknown option" 2 "$VBFSCTL" repair "$S" "$IDX" --replica "$R" --bogus
check "... one line on stderr" test "$(wc -l <"$T/last.err")" = 1
expect_eq "bad input left the store byte-identical" "$before" "$(sums "$S")"

# ---- dry run: lists, writes nothing ------------------------------------------------
expect_status "dry run: block 3 cannot be repaired" 1 "$VBFSCTL" repair "$S" "$IDX" --replica "$R" --dry-run --json
RR=$(realpath "$R")
expect_eq "dry run: what and from where" \
	"a.bin 1 true replica:$RR|a.bin 3 false null|c.bin 1 true replica:$RR|d/b.bin 0 true replica:$RR|d/b.bin 1 true replica:$RR" \
	"$(jq -r '.blocks[] | "\(.path) \(.block) \(.repairable) \(.source)"' "$T/last.out" | paste -sd'|')"
expect_eq "dry run: counts" "dry-run 5 4 0 1" \
	"$(jq -r '"\(.mode) \(.damaged) \(.repairable) \(.repaired) \(.unrepaired)"' "$T/last.out")"
check "dry run: the summary line" grep -qx "5 damaged, 4 repairable, 0 repaired (dry run), 1 unrecoverable" "$T/last.err"
expect_status "no mode given is the dry run" 1 "$VBFSCTL" repair "$S" "$IDX" --replica "$R"
expect_eq "the dry runs left the store byte-identical" "$before" "$(sums "$S")"

# ---- a forged replica is never written into the store --------------------------
expect_status "--apply from the forged replica only" 1 "$VBFSCTL" repair "$S" "$IDX" --replica "$F" --apply --json
expect_eq "... block 1 was not repairable from it" "false" \
	"$(jq -r '.blocks[] | select(.path == "a.bin" and .block == 1) | .repairable' "$T/last.out")"
expect_eq "... nothing was" "5 0 0" "$(jq -r '"\(.damaged) \(.repairable) \(.repaired)"' "$T/last.out")"
expect_eq "... the store is byte-identical" "$before" "$(sums "$S")"

# ---- --output: whole repaired copies, elsewhere ------------------------------------
expect_status "--output: a.bin cannot be made whole" 1 "$VBFSCTL" repair "$S" "$IDX" --replica "$R" --output "$O"
check "--output: d/b.bin is the original" cmp -s "$O/d/b.bin" "$T/orig/d/b.bin"
check "--output: c.bin is the original" cmp -s "$O/c.bin" "$T/orig/c.bin"
check "--output: no partial a.bin" test ! -e "$O/a.bin" -a -z "$(find "$O" -name '.vbfs-repair.*')"
expect_eq "--output: mode and mtime as indexed" "640 1704164645.123456789" "$(stat -c '%a %.9Y' "$O/d/b.bin")"
expect_eq "--output left the store byte-identical" "$before" "$(sums "$S")"

# ---- --apply ---------------------------------------------------------------------
expect_status "--apply: 4 blocks repaired, 1 not" 1 "$VBFSCTL" repair "$S" "$IDX" --replica "$R" --apply --json
expect_eq "--apply: counts" "apply 5 4 4 1" \
	"$(jq -r '"\(.mode) \(.damaged) \(.repairable) \(.repaired) \(.unrepaired)"' "$T/last.out")"
check "d/b.bin restored exactly" cmp -s "$S/d/b.bin" "$T/orig/d/b.bin"
check "c.bin restored exactly" cmp -s "$S/c.bin" "$T/orig/c.bin"
check "a.bin blocks 0-2 restored exactly" cmp -s <(head -c $((3 * MiB)) "$S/a.bin") <(head -c $((3 * MiB)) "$T/orig/a.bin")
check "a.bin block 3 left as it was (no good source)" \
	cmp -s <(tail -c $MiB "$S/a.bin") <(tail -c $MiB "$T/damaged-a.bin")
expect_eq "mode and mtime kept as indexed" "640 1704164645.123456789 644 1704164645.123456789" \
	"$(stat -c '%a %.9Y' "$S/d/b.bin" "$S/c.bin" | paste -sd' ')"
cp "$T/orig/a.bin" "$R/a.bin"   # the replica is mended
expect_status "rerun --apply finishes" 0 "$VBFSCTL" repair "$S" "$IDX" --replica "$R" --apply
check "a.bin restored exactly" cmp -s "$S/a.bin" "$T/orig/a.bin"
expect_status "the store verifies clean" 0 "$VBFSCTL" verify "$S" "$IDX"
expect_status "nothing left to repair" 0 "$VBFSCTL" repair "$S" "$IDX" --replica "$R" --apply
check "... says so" grep -qx "0 damaged, 0 repairable, 0 repaired in the store, 0 not repaired" "$T/last.err"
expect_eq "the whole store is the original" "$(sums "$T/orig")" "$(sums "$S")"
finish
