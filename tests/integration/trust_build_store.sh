#!/bin/bash
# trust_build_store.sh - an index used with the wrong store is a
# configuration error, not damage (issue 15, item 8):
#   - verify, mount, sample and rto with store A and store B's index exit 2
#     with one line "index … is not for store …", before any file is judged;
#   - the rule: fewer than half of the index's top-level entries are in the
#     store (by name, any type); half or more is the store, and what is gone
#     is damage (exit 1);
#   - the explicit overrides (verify --allow-store-mismatch, mount
#     -o allow_store_mismatch, --mount-opts allow_store_mismatch) check a
#     store that really lost most of its files: damage, exit 1.
. "$(dirname "$0")/lib.sh"
need jq
A=$T/a; B=$T/b
mkdir -p "$A/etc" "$A/home" "$B/srv"
for n in 1 2 3; do make_file "$A/home/f$n" 1 "a$n"; make_file "$B/srv/g$n" 1 "b$n"; done
echo a >"$A/etc/conf"; echo a >"$A/top.txt"; echo b >"$B/b.txt"
expect_status "build A" 0 "$VBFSCTL" build "$A" "$T/ia"
expect_status "build B" 0 "$VBFSCTL" build "$B" "$T/ib"
export PATH=$(dirname "$VBFS_BIN"):$PATH   # the drills mount with the vbfs beside them

MSG="index $T/ib is not for store $A: 0 of the 2 top-level entries it recorded are there"
expect_status "verify A with B's index: exit 2" 2 "$VBFSCTL" verify "$A" "$T/ib" --json
expect_eq "verify: one line, the mismatch" \
	"vbfsctl: verify: $MSG (--allow-store-mismatch checks it anyway)" "$(cat "$T/last.err")"
mkdir "$T/mnt"; _MOUNTS+=("$T/mnt")
expect_status "mount A with B's index: exit 2" 2 timeout 20 "$VBFS_BIN" -f -o index="$T/ib" "$A" "$T/mnt"
expect_eq "mount: one line" "vbfs: index $T/ib is not for store $A: 0 of the 2 top-level entries it recorded are there (-o allow_store_mismatch mounts it anyway)" \
	"$(cat "$T/last.err")"
expect_status "sample: exit 2" 2 "$VBFSCTL" sample --store "$A" --index "$T/ib" -n 2 --seed 1
grep -q "is not for store" "$T/last.err" && pass "sample says why" || fail "sample: $(cat "$T/last.err")"
expect_status "rto: exit 2" 2 "$VBFSCTL" rto --store "$A" --index "$T/ib" --target 1m \
	--restore 'cp -a "$VBFS_MOUNT/." "$VBFS_TARGET"'
grep -q "is not for store" "$T/last.err" "$T/last.out" && pass "rto says why" || fail "rto: $(cat "$T/last.err")"

# ---- the overrides: a store that really lost its files ------------------------------
expect_status "verify --allow-store-mismatch: damage" 1 "$VBFSCTL" verify "$A" "$T/ib" --allow-store-mismatch --json
expect_eq "every entry of B (4 files, 1 directory) is missing" 5 "$(jq '[.events[] | select(.event == "missing")] | length' "$T/last.out")"
vbfs_mount "$A" "$T/ib" "$T/m" allow_store_mismatch || { fail "mount with the override"; finish; exit; }
check "the override mounts" test -d "$T/m/srv"
vbfs_umount "$T/m"
expect_status "sample --mount-opts allow_store_mismatch: damage" 1 \
	"$VBFSCTL" sample --store "$A" --index "$T/ib" -n 2 --seed 1 --mount-opts allow_store_mismatch

# ---- the threshold: half there is this store -----------------------------------------
# A's top level: etc, home, top.txt.  One gone: 2 of 3 there, damage.
mv "$A/etc" "$T/etc.away"
expect_status "2 of 3 top-level entries there: damage, not a stranger" 1 "$VBFSCTL" verify "$A" "$T/ia"
# Two gone: 1 of 3 there: refused, unless overridden.
mv "$A/home" "$T/home.away"
expect_status "1 of 3 there: not this store's index" 2 "$VBFSCTL" verify "$A" "$T/ia"
expect_status "1 of 3 there, overridden: damage" 1 "$VBFSCTL" verify "$A" "$T/ia" --allow-store-mismatch
mv "$T/etc.away" "$A/etc"; mv "$T/home.away" "$A/home"
# A top-level entry of another type is there (changed), not a stranger.
rm "$A/top.txt"; mkdir "$A/top.txt"
expect_status "a changed type counts as there" 1 "$VBFSCTL" verify "$A" "$T/ia"
rmdir "$A/top.txt"; echo a >"$A/top.txt"
expect_status "A with its own index: OK" 0 "$VBFSCTL" verify "$A" "$T/ia"
# ---- the limit: another store laid out alike (doc/trust.md) ---------------------------
# C has A's names and sizes, other bytes: the store check cannot tell it from
# a copy of A that lost its bytes, so it is judged, block by block, and every
# block that differs is damage: exit 1 and EIO, never an OK, never A's bytes.
C=$T/c
cp -a "$A" "$C"
for n in 1 2 3; do make_file "$C/home/f$n" 1 "c$n"; done
echo c >"$C/etc/conf"
expect_status "a store laid out alike, with A's index: damage, not OK" 1 "$VBFSCTL" verify "$C" "$T/ia" --json
expect_eq "... each differing block corrupt (3 x 1 MiB + etc/conf)" 4 \
	"$(jq '[.events[] | select(.event == "corrupt")] | length' "$T/last.out")"
vbfs_mount "$C" "$T/ia" "$T/mc" || fail "mount C with A's index"
check "... the mount serves none of C's bytes as A's" sh -c "! cat '$T/mc/home/f1' >/dev/null 2>&1"
expect_eq "... and A's unchanged file (the same bytes) reads" a "$(cat "$T/mc/top.txt")"
vbfs_umount "$T/mc"
# A copy of A (new inodes, ctimes, directory name, even new mtimes) is A:
# no alarm, whatever was copied with.
cp -r "$A" "$T/copy-r"
expect_status "a cp -r copy of A (new mtimes) with A's index: OK" 0 "$VBFSCTL" verify "$T/copy-r" "$T/ia"
# The index of an empty store fits any store.
mkdir "$T/empty"
expect_status "build an empty store" 0 "$VBFSCTL" build "$T/empty" "$T/ie"
expect_status "an empty store's index on A: nothing to judge" 0 "$VBFSCTL" verify "$A" "$T/ie"
finish
