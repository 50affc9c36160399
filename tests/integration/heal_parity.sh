#!/usr/bin/env bash
# heal_parity.sh - Reed-Solomon parity (build --parity 4+2, 64 KiB blocks)
# rebuilds up to M=2 lost blocks per stripe, M+1 is EIO, and parity that is
# damaged or forged is never used blindly.
#
# Layout at 4+2 and 64 KiB blocks: the 64 full blocks of big.bin form one
# group of 16 stripes; stripe j holds blocks j, j+16, j+32, j+48.  The 30
# small files (1000..30000 bytes) share the short sequence, longest first:
# small30 and small22 are the first two members of its stripe 0.
#   big.bin blocks 10..41 zeroed: a 32-block burst, 2 per stripe -> healed
#   big.bin block 42 zeroed too: stripe 10 loses 10, 26, 42     -> EIO for those 3
#   small30 and small22 overwritten: 2 in one stripe            -> healed
. "$(dirname "$0")/lib.sh"
need jq; need getfattr attr

K64=65536
S=$T/store IDX=$T/index P=$T/parity M=$T/mnt
make_file "$S/big.bin" 4
for i in $(seq 1 30); do head -c $((i * 1000)) "$S/big.bin" | tail -c $((i * 1000 - i)) >"$S/small$i"; done
for i in $(seq 1 30); do printf '%05d' "$i" >>"$S/small$i"; done   # distinct contents, i*1000-i+5 bytes

# ---- bad input ------------------------------------------------------------------
expect_status "build --parity 0+2" 2 "$VBFSCTL" build "$S" "$IDX" --parity 0+2
expect_status "build --parity 4-2" 2 "$VBFSCTL" build "$S" "$IDX" --parity 4-2
expect_status "build --parity 200+100 (over 255)" 2 "$VBFSCTL" build "$S" "$IDX" --parity 200+100
expect_status "build --parity-dir without --parity" 2 "$VBFSCTL" build "$S" "$IDX" --parity-dir "$P"
expect_status "build --parity-dir inside the store" 2 "$VBFSCTL" build "$S" "$IDX" --parity 4+2 --parity-dir "$S/p"
check "... nothing was created" test ! -e "$IDX" -a ! -e "$S/p"
expect_status "build --parity 32+2 at 64M blocks (a rebuild would hold 35 blocks)" 2 \
	"$VBFSCTL" build "$S" "$T/bigblocks" --block-size 64M --parity 32+2
check "... says why" grep -q "choose a smaller K" "$T/last.err"

expect_status "build without parity" 0 "$VBFSCTL" build "$S" "$IDX" --block-size 64K
mkdir -p "$M" "$T/empty"
expect_status "mount -o parity= for an index that records none" 2 \
	"$VBFS_BIN" -f -o "index=$IDX,parity=$T/empty" "$S" "$M"
check "... says so" grep -q "records no parity" "$T/last.err"
expect_status "build --parity 4+2" 0 "$VBFSCTL" build "$S" "$IDX" --block-size 64K --parity 4+2 --parity-dir "$P" --json
expect_eq "parity: stripes (16 for big.bin, 8 for the small files)" "4 2 24" \
	"$(jq -r '.parity | "\(.k) \(.m) \(.stripes)"' "$T/last.out")"
cp -a "$S" "$T/orig"

# ---- damage ---------------------------------------------------------------------
dd if=/dev/zero of="$S/big.bin" bs=$K64 seek=10 count=32 conv=notrunc status=none
dd if=/dev/zero of="$S/big.bin" bs=$K64 seek=42 count=1 conv=notrunc status=none
printf 'damaged' | dd of="$S/small30" conv=notrunc status=none
printf 'damaged' | dd of="$S/small22" bs=1 seek=100 conv=notrunc status=none

# ---- the mount ------------------------------------------------------------------
vbfs_mount "$S" "$IDX" "$M" "parity=$P" || { fail "mount"; finish; exit 1; }
bad=""
for b in $(seq 63 -1 0); do
	if dd if="$M/big.bin" of="$T/blk" bs=$K64 skip=$b count=1 iflag=direct status=none 2>"$T/blk.err"; then
		cmp -s "$T/blk" <(dd if="$T/orig/big.bin" bs=$K64 skip=$b count=1 status=none) ||
			fail "big.bin block $b: served bytes that are not the original"
	else
		grep -q "Input/output error" "$T/blk.err" || fail "big.bin block $b: failed without EIO"
		bad="$b $bad"
	fi
done
expect_eq "big.bin: every block but 10, 26, 42 served, with the original bytes" "10 26 42" "$(echo $bad)"
check "small30 (healed) is the original" cmp -s "$M/small30" "$T/orig/small30"
check "small22 (healed) is the original" cmp -s "$M/small22" "$T/orig/small22"
STATS=$(getfattr --absolute-names -n user.vbfs.stats --only-values "$M")
expect_eq "stats: healed from parity / unrepairable" "32 32 3" \
	"$(jq -r '"\(.healed) \(.healed_by_source.parity) \(.unrepairable)"' <<<"$STATS")"
vbfs_umount "$M"
expect_eq "unmount: exit 1, the store is damaged" 1 "$VBFS_STATUS"
expect_eq "log: healed events, all from parity" "32 parity" \
	"$(jq -r 'select(.event == "healed") | .source' "$M.log" | sort | uniq -c | awk '{print $1, $2}')"
EXP=$(dd if="$T/orig/big.bin" bs=$K64 skip=41 count=1 status=none | sha256sum | cut -d' ' -f1)
expect_eq "log: block 41's damage, then healed with its digest" "corrupt true parity|healed $EXP parity" \
	"$(jq -r 'select(.path == "big.bin" and .block == 41) |
		if .event == "healed" then "healed \(.expected) \(.source)" else "\(.event) \(.repairable) \(.source)" end' "$M.log" | paste -sd'|')"
expect_eq "log: block 42 not repairable, parity refused" "corrupt false|unreadable parity" \
	"$(jq -r 'select(.path == "big.bin" and .block == 42) |
		if .repairable != null then "\(.event) \(.repairable)" else "\(.event) \(.source)" end' "$M.log" | paste -sd'|')"

# ---- verify and repair agree ------------------------------------------------------
expect_status "verify --parity" 1 "$VBFSCTL" verify "$S" "$IDX" --parity "$P" --json
expect_eq "verify: damaged / repairable / unrecoverable" "35 32 3" \
	"$(jq -r '"\(.damaged_blocks) \(.repairable) \(.unrecoverable)"' "$T/last.out")"

# ---- damaged parity: an erasure, never used blindly ------------------------------
cp "$P/parity.dat" "$T/parity.dat.good"
flip_byte "$P/parity.dat" 100   # stripe 0, fragment 0
expect_status "verify with a damaged parity fragment" 1 "$VBFSCTL" verify "$S" "$IDX" --parity "$P" --json
expect_eq "stripe 0 (blocks 16, 32 lost + 1 bad parity fragment) is now beyond repair" "35 30 5" \
	"$(jq -r '"\(.damaged_blocks) \(.repairable) \(.unrecoverable)"' "$T/last.out")"
cp "$T/parity.dat.good" "$P/parity.dat"

# ---- forged parity: valid format, other data ----------------------------------------
cp -a "$P" "$T/parity.good"
"$VBFSCTL" build "$T/orig" "$T/other-index" --block-size 64K --parity 4+2 --parity-dir "$T/other" >/dev/null 2>&1
echo "not the same" >"$T/orig/small1"   # same layout, other bytes
"$VBFSCTL" build "$T/orig" "$T/other-index" --block-size 64K --parity 4+2 --parity-dir "$T/other" >/dev/null 2>&1
cp "$T/other/parity.idx" "$T/other/parity.dat" "$P/"
expect_status "mount with forged parity" 2 "$VBFS_BIN" -f -o "index=$IDX,parity=$P" "$S" "$M"
check "... refused as not matching the index" grep -q "does not match the index" "$T/last.err"
expect_status "verify with forged parity" 2 "$VBFSCTL" verify "$S" "$IDX" --parity "$P"
expect_status "repair with forged parity" 2 "$VBFSCTL" repair "$S" "$IDX" --parity "$P" --apply
rm -rf "$P" && cp -a "$T/parity.good" "$P"

# ---- repair from parity --------------------------------------------------------------
before=$(sha256sum "$S/big.bin" | cut -d' ' -f1)
expect_status "repair --parity --dry-run" 1 "$VBFSCTL" repair "$S" "$IDX" --parity "$P" --dry-run
expect_eq "dry run wrote nothing" "$before" "$(sha256sum "$S/big.bin" | cut -d' ' -f1)"
expect_status "repair --parity --apply: 3 blocks beyond the parity" 1 \
	"$VBFSCTL" repair "$S" "$IDX" --parity "$P" --apply --json
expect_eq "repair: counts" "35 32 32 3" \
	"$(jq -r '"\(.damaged) \(.repairable) \(.repaired) \(.unrepaired)"' "$T/last.out")"
check "small30 and small22 restored exactly" bash -c "cmp -s '$S/small30' '$T/orig/small30' && cmp -s '$S/small22' '$T/orig/small22'"
for b in $(seq 0 63); do
	case " 10 26 42 " in *" $b "*) continue ;; esac
	cmp -s <(dd if="$S/big.bin" bs=$K64 skip=$b count=1 status=none) \
		<(dd if="$T/orig/big.bin" bs=$K64 skip=$b count=1 status=none) || fail "big.bin block $b not restored"
done
pass "big.bin: every block but 10, 26, 42 restored exactly"
# With 42 back (from a copy), stripe 10 is within the budget again.
dd if="$T/orig/big.bin" of="$S/big.bin" bs=$K64 skip=42 seek=42 count=1 conv=notrunc status=none
expect_status "rerun: the last two rebuilt" 0 "$VBFSCTL" repair "$S" "$IDX" --parity "$P" --apply
check "big.bin is the original" cmp -s "$S/big.bin" "$T/orig/big.bin"
expect_status "the store verifies clean" 0 "$VBFSCTL" verify "$S" "$IDX"
finish
