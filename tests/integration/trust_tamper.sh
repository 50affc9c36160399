#!/bin/bash
# trust_tamper.sh - a damaged or forged index is refused, by the mount and by
# `vbfsctl verify`, with exit 2 and one clear line; signatures work end to
# end (keygen, build --sign-key, verify --verify-key, -o verify_key=); key
# and index files have safe modes.
#
# The index is changed with tests/unit/test_tamper (one LMDB value in each of
# the 'blocks', 'inodes', 'dirents' and 'meta' databases).
. "$(dirname "$0")/lib.sh"
TAMPER=${VBFS_TAMPER:-$VBFS_BUILD/tests/test_tamper}
[ -x "$TAMPER" ] || skip "no test_tamper binary at $TAMPER"

S=$T/store
mkdir -p "$S/sub"
make_file "$S/big.bin" 3
make_file "$S/sub/small.bin" 1
printf 'hello\n' >"$S/sub/hello.txt"
ln -s hello.txt "$S/sub/link"

# ---- keys -----------------------------------------------------------------
expect_status "keygen" 0 "$VBFSCTL" keygen "$T/k.sec" "$T/k.pub"
expect_eq "secret key mode" 600 "$(stat -c %a "$T/k.sec")"
check "public key is PEM" grep -q "BEGIN PUBLIC KEY" "$T/k.pub"
expect_status "keygen refuses to overwrite" 2 "$VBFSCTL" keygen "$T/k.sec" "$T/other.pub"
one_line_with "keygen overwrite" "already exists"
expect_status "second key pair" 0 "$VBFSCTL" keygen "$T/k2.sec" "$T/k2.pub"

# ---- a signed index -----------------------------------------------------------
expect_status "build --sign-key" 0 "$VBFSCTL" build "$S" "$T/idx" --block-size 4K --sign-key "$T/k.sec"
expect_eq "index dir mode" 700 "$(stat -c %a "$T/idx")"
for f in "$T"/idx/*; do
	expect_eq "index file $(basename "$f") mode" 600 "$(stat -c %a "$f")"
done
expect_status "verify (signed, no key)" 0 "$VBFSCTL" verify "$S" "$T/idx"
expect_status "verify --verify-key right key" 0 "$VBFSCTL" verify "$S" "$T/idx" --verify-key "$T/k.pub"
expect_status "verify --verify-key other key" 2 "$VBFSCTL" verify "$S" "$T/idx" --verify-key "$T/k2.pub"
one_line_with "other key" "signature does not verify"
expect_status "verify --verify-key with a secret key file" 2 "$VBFSCTL" verify "$S" "$T/idx" --verify-key "$T/k.sec"
one_line_with "secret key as public" "not a PEM Ed25519 public key"
expect_status "verify --verify-key missing file" 2 "$VBFSCTL" verify "$S" "$T/idx" --verify-key "$T/nope.pub"
one_line_with "missing key" "No such file"
mount_refused "mount, other key" "$S" "$T/idx" "signature does not verify" "verify_key=$T/k2.pub"

vbfs_mount "$S" "$T/idx" "$T/m" "verify_key=$T/k.pub" && pass "mount with the right key"
cmp -s "$S/big.bin" "$T/m/big.bin" && pass "signed mount serves the bytes" || fail "signed mount bytes"
vbfs_umount "$T/m"
expect_eq "signed mount exit" 0 "$VBFS_STATUS"

# ---- an unsigned index ----------------------------------------------------------
expect_status "build unsigned" 0 "$VBFSCTL" build "$S" "$T/plain" --block-size 4K
expect_status "verify key for an unsigned index" 2 "$VBFSCTL" verify "$S" "$T/plain" --verify-key "$T/k.pub"
one_line_with "unsigned + key" "not signed"
mount_refused "mount, unsigned + key" "$S" "$T/plain" "not signed" "verify_key=$T/k.pub"
# Rebuilding without --sign-key drops the old signature (it would be a lie).
cp -a "$T/idx" "$T/resigned"
expect_status "rebuild without key" 0 "$VBFSCTL" build "$S" "$T/resigned"
expect_status "rebuilt index no longer signed" 2 "$VBFSCTL" verify "$S" "$T/resigned" --verify-key "$T/k.pub"
one_line_with "rebuilt unsigned" "not signed"

# ---- tampering: each database ---------------------------------------------------
for action in digest size path dirent meta; do
	rm -rf "$T/bad"; cp -a "$T/idx" "$T/bad"
	expect_status "tamper $action" 0 "$TAMPER" "$T/bad" "$action"
	expect_status "verify refuses tampered $action" 2 "$VBFSCTL" verify "$S" "$T/bad"
	one_line_with "verify $action" "index damaged: root digest mismatch"
	expect_status "export refuses tampered $action" 2 "$VBFSCTL" export "$T/bad" --format blocks
	one_line_with "export $action" "index damaged: root digest mismatch"
	mount_refused "mount refuses tampered $action" "$S" "$T/bad" "index damaged: root digest mismatch"

	# A forger with write access recomputes the root: the signature catches it.
	rm -rf "$T/bad"; cp -a "$T/idx" "$T/bad"
	expect_status "forge $action (reseal root)" 0 "$TAMPER" "$T/bad" "$action" --reseal
	expect_status "verify --verify-key refuses forged $action" 2 "$VBFSCTL" verify "$S" "$T/bad" --verify-key "$T/k.pub"
	one_line_with "forged $action" "signature does not verify"
	mount_refused "mount refuses forged $action" "$S" "$T/bad" "signature does not verify" "verify_key=$T/k.pub"
done

# A flipped signature bit: the index still opens without a key (the
# signature is outside the root), and is refused with one.
rm -rf "$T/bad"; cp -a "$T/idx" "$T/bad"
expect_status "tamper signature" 0 "$TAMPER" "$T/bad" signature
expect_status "verify without key ignores the signature" 0 "$VBFSCTL" verify "$S" "$T/bad"
expect_status "verify --verify-key refuses a bad signature" 2 "$VBFSCTL" verify "$S" "$T/bad" --verify-key "$T/k.pub"

# A newer format: the version check comes first and says so.
rm -rf "$T/bad"; cp -a "$T/idx" "$T/bad"
expect_status "tamper version=99" 0 "$TAMPER" "$T/bad" version=99
expect_status "verify refuses format 99" 2 "$VBFSCTL" verify "$S" "$T/bad"
one_line_with "format 99" "index format 99 is newer"
mount_refused "mount refuses format 99" "$S" "$T/bad" "index format 99 is newer"

# Tampering must never have touched the pristine index.
expect_status "pristine index still verifies with key" 0 "$VBFSCTL" verify "$S" "$T/idx" --verify-key "$T/k.pub"
finish
