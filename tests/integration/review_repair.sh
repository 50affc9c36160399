#!/bin/bash
# review_repair.sh - the mistakes people make with `vbfsctl repair` and the
# heal sources: each is exit 2 with one line on stderr (or the exact
# verdict), and the store is never written except by `repair --apply`.
#
# Found in review: `repair --output STORE` (or a symlink to it) and
# `build --parity-dir STORE` passed the "not inside the store" check (only
# the parent directory was compared) and wrote into the store; a replica
# that is the store itself was accepted; `repair --apply` on a read-only
# store printed one failure line per damaged block and exited 1.
. "$(dirname "$0")/lib.sh"

S=$T/store R=$T/replica I=$T/idx
mkdir -p "$S/d"
make_file "$S/a.bin" 1
head -c 100000 /dev/urandom >"$S/d/b.bin"
"$VBFSCTL" build "$S" "$I" --block-size 4K --parity 4+2 >/dev/null 2>&1 || fail "build fixture"
cp -a "$S" "$R"
# one damaged block (offset 4096), mtime kept
printf 'XXXX' | dd of="$S/a.bin" bs=1 seek=5000 conv=notrunc 2>/dev/null
touch -r "$R/a.bin" "$S/a.bin"
ln -s "$S" "$T/storelink"

BEFORE=$(tree_sum "$S")


refused "no source" "vbfsctl repair: needs a source: --replica DIR or --parity DIR (try 'vbfsctl repair --help')" \
	"$VBFSCTL" repair "$S" "$I"
refused "replica is the store" "vbfsctl: repair: replica $S: is the store itself" \
	"$VBFSCTL" repair "$S" "$I" --replica "$S" --apply
refused "replica is the store (by a symlink)" "vbfsctl: repair: replica $T/storelink: is the store itself" \
	"$VBFSCTL" repair "$S" "$I" --replica "$T/storelink"
refused "verify --replica the store" "vbfsctl: verify: replica $S: is the store itself" \
	"$VBFSCTL" verify "$S" "$I" --replica "$S"
refused "replica missing" "vbfsctl: repair: replica $T/nope: No such file or directory" \
	"$VBFSCTL" repair "$S" "$I" --replica "$T/nope"
refused "parity missing" "vbfsctl: repair: parity $T/nope/parity.idx: No such file or directory" \
	"$VBFSCTL" repair "$S" "$I" --parity "$T/nope"
refused "two modes" "vbfsctl repair: --dry-run, --output and --apply: choose one (try 'vbfsctl repair --help')" \
	"$VBFSCTL" repair "$S" "$I" --replica "$R" --dry-run --apply
refused "option typo" "vbfsctl repair: unknown option '--outptu' (try 'vbfsctl repair --help')" \
	"$VBFSCTL" repair "$S" "$I" --replica "$R" --outptu "$T/x"
# --output: the store itself, a symlink to it, a directory inside it
refused "output is the store" "vbfsctl: repair: output $S: must not be inside the store" \
	"$VBFSCTL" repair "$S" "$I" --replica "$R" --output "$S"
refused "output is a symlink to the store" "vbfsctl: repair: output $T/storelink: must not be inside the store" \
	"$VBFSCTL" repair "$S" "$I" --replica "$R" --output "$T/storelink"
refused "output inside the store" "vbfsctl: repair: output $S/d/new: must not be inside the store" \
	"$VBFSCTL" repair "$S" "$I" --replica "$R" --output "$S/d/new"
refused "build --parity-dir the store" "vbfsctl: build: --parity-dir $S: must not be inside the store" \
	"$VBFSCTL" build "$S" "$T/idx2" --parity 4+2 --parity-dir "$S"
check "refused build left no index" test ! -e "$T/idx2"

# an index for another store: a configuration error before anything is
# judged (it would have "repaired" OTHER into a copy of the replica)
mkdir -p "$T/other"; echo other >"$T/other/x"
OTHER_BEFORE=$(cd "$T/other" && find . -printf '%p %s\n' | sort | sha256sum)
refused "index of another store, --apply" \
	"vbfsctl: repair: index $I is not for store $T/other: 0 of the 2 top-level entries it recorded are there (--allow-store-mismatch repairs it anyway)" \
	"$VBFSCTL" repair "$T/other" "$I" --replica "$R" --apply
expect_eq "index of another store: that store unchanged" "$OTHER_BEFORE" \
	"$(cd "$T/other" && find . -printf '%p %s\n' | sort | sha256sum)"
refused "index missing, named" "vbfsctl: index $T/nope: No such file or directory" \
	"$VBFSCTL" repair "$S" "$T/nope" --replica "$R"

# the mount: -o replica= the store, missing, empty, a typo
mkdir -p "$T/mnt"
refused "vbfs -o replica=STORE" "vbfs: replica $S: is the store itself" \
	"$VBFS_BIN" -f -o "index=$I,replica=$S" "$S" "$T/mnt"
refused "vbfs -o replica=missing" "vbfs: replica $T/nope: No such file or directory" \
	"$VBFS_BIN" -f -o "index=$I,replica=$T/nope" "$S" "$T/mnt"
refused "vbfs -o replica=" "vbfs: -o replica=: needs a directory" \
	"$VBFS_BIN" -f -o "index=$I,replica=" "$S" "$T/mnt"
refused "vbfs -o parity=" "vbfs: -o parity=: needs a directory" \
	"$VBFS_BIN" -f -o "index=$I,parity=" "$S" "$T/mnt"
refused "vbfs -o replcia= (typo)" "vbfs: unknown option(s): \`-o replcia=$R'" \
	"$VBFS_BIN" -f -o "index=$I,replcia=$R" "$S" "$T/mnt"
check "no mount left" sh -c "! mountpoint -q '$T/mnt'"

# --apply on a read-only store: one line, exit 2, nothing written
mkdir -p "$T/ro"
if mount --bind "$S" "$T/ro" 2>/dev/null && _MOUNTS+=("$T/ro") && mount -o remount,ro,bind "$T/ro"; then
	refused "--apply on a read-only store" \
		"vbfsctl: repair: store $T/ro: Read-only file system (--apply writes the repaired blocks into it)" \
		"$VBFSCTL" repair "$T/ro" "$I" --replica "$R" --apply
	umount "$T/ro"
else
	echo "# no bind mount here: read-only store case skipped"
fi

# repair takes verify's index requirements (shared parser): an index of
# another backup id is refused before anything is judged or written.
refused "--apply with an index of another backup id" \
	"vbfsctl: repair: $I: index is for backup id 'store', expected 'nightly-9'" \
	"$VBFSCTL" repair "$S" "$I" --replica "$R" --apply --expect-backup-id nightly-9
expect_status "--expect-backup-id and --max-age that hold: the dry run" 0 \
	"$VBFSCTL" repair "$S" "$I" --replica "$R" --expect-backup-id store --max-age 1h

# --output never replaces a file it did not write (it did, by rename, before):
# a name taken in DIR is exit 2 before anything is written; so is a symlink
# on the way (DIR/d -> elsewhere), never followed out of DIR.
S2=$T/store2
cp -a "$S" "$S2"
flip_byte "$S2/d/b.bin" 70000          # a second damaged file, in d/
mkdir -p "$T/out1" "$T/elsewhere"
echo "the user's own file" >"$T/out1/a.bin"
echo keep >"$T/out1/unrelated"
OUT1=$(tree_sum "$T/out1")
refused "--output: a name already taken in DIR" \
	"vbfsctl: repair: output $T/out1/a.bin: exists (repair --output never replaces a file; remove it or choose a new directory; nothing written)" \
	"$VBFSCTL" repair "$S2" "$I" --replica "$R" --output "$T/out1"
expect_eq "... DIR exactly as it was" "$OUT1" "$(tree_sum "$T/out1")"
mkdir -p "$T/out2"
ln -s "$T/elsewhere" "$T/out2/d"
refused "--output: a symlink on the way" \
	"vbfsctl: repair: output $T/out2/d/b.bin: a symbolic link on the way (not followed, nothing written)" \
	"$VBFSCTL" repair "$S2" "$I" --replica "$R" --output "$T/out2"
check "... nothing written through it" test -z "$(ls -A "$T/elsewhere")"
check "... nor beside it" test ! -e "$T/out2/a.bin"
# An existing directory with other files is fine: they are kept, the
# copies are whole; a second run into it is refused (its names are taken).
mkdir -p "$T/out3/d"; echo keep >"$T/out3/d/other"
expect_status "--output into a directory with other files" 0 \
	"$VBFSCTL" repair "$S2" "$I" --replica "$R" --output "$T/out3"
check "... a.bin whole" cmp -s "$T/out3/a.bin" "$R/a.bin"
check "... d/b.bin whole" cmp -s "$T/out3/d/b.bin" "$R/d/b.bin"
expect_eq "... the other file kept" keep "$(cat "$T/out3/d/other")"
check "... no temporary left" test -z "$(find "$T/out3" -name '.vbfs-repair.*')"
OUT3=$(tree_sum "$T/out3")
refused "--output: a second run into the same DIR" \
	"vbfsctl: repair: output $T/out3/a.bin: exists (repair --output never replaces a file; remove it or choose a new directory; nothing written)" \
	"$VBFSCTL" repair "$S2" "$I" --replica "$R" --output "$T/out3"
expect_eq "... DIR exactly as it was" "$OUT3" "$(tree_sum "$T/out3")"

# a replica damaged at the same block: NOT repairable, exit 1, store unchanged
cp -a "$R" "$T/bad"
printf 'YYYY' | dd of="$T/bad/a.bin" bs=1 seek=5000 conv=notrunc 2>/dev/null
expect_status "damaged replica, --apply" 1 "$VBFSCTL" repair "$S" "$I" --replica "$T/bad" --apply
expect_eq "damaged replica: verdict" "a.bin: block 1 at offset 4096 (corrupt): NOT repairable" "$(head -1 "$T/last.err")"
expect_eq "damaged replica: store unchanged" "$BEFORE" "$(tree_sum "$S")"
# the dry run writes nothing either
expect_status "dry run from a good replica" 0 "$VBFSCTL" repair "$S" "$I" --replica "$T/bad" --replica "$R"
expect_eq "dry run: store unchanged" "$BEFORE" "$(tree_sum "$S")"

# --apply while a mount of the store is live: the mount never serves the
# damaged block (before or after), the store ends whole
vbfs_mount "$S" "$I" "$T/live" || fail "mount"
check "live mount: damaged block is EIO" sh -c "! cat '$T/live/a.bin' >/dev/null 2>&1"
expect_status "--apply under a live mount" 0 "$VBFSCTL" repair "$S" "$I" --replica "$R" --apply
check "store whole after --apply" cmp -s "$S/a.bin" "$R/a.bin"
if cat "$T/live/a.bin" >"$T/live.out" 2>/dev/null; then
	check "live mount after --apply: the indexed bytes" cmp -s "$T/live.out" "$R/a.bin"
else
	pass "live mount after --apply: still EIO (damage verdict kept until remount)"
fi
vbfs_umount "$T/live" 2>/dev/null || fusermount3 -u "$T/live"
expect_status "verify after --apply" 0 "$VBFSCTL" verify "$S" "$I"
finish
