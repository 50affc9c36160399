#!/bin/bash
# review_build_trust.sh - a build that signs never signs digests it did not
# make or check itself.
#
# Found in review: an incremental rebuild kept the digests of unchanged
# files from the index being rebuilt even when that index's root digest no
# longer held ("a damaged old root is what a rebuild mends"), and
# `build --reuse OLD --sign-key K` took OLD's digests whatever signed it.
# A writer of the index directory (no key) changed one digest; the next
# nightly `build --sign-key` signed it, and `verify --verify-key` then
# vouched for bytes that were never in the backup.  Now:
#   - in place, digests are kept only when the old root digest holds and,
#     when signing, the old index is signed by the same key: otherwise every
#     file is hashed again (exit 0, "0 reused");
#   - --reuse OLD with --sign-key: OLD must be signed by that key (exit 2,
#     one line, no index written).
. "$(dirname "$0")/lib.sh"
TAMPER=${VBFS_TAMPER:-$VBFS_BUILD/tests/test_tamper}
[ -x "$TAMPER" ] || skip "no test_tamper"

S=$T/s1
mkdir -p "$S"
head -c 20000 /dev/urandom >"$S/f"
cp -al "$S" "$T/s2"   # the next snapshot, hard-linked: same inodes
"$VBFSCTL" keygen "$T/k.sec" "$T/k.pub" >/dev/null 2>&1 || fail "keygen"
"$VBFSCTL" keygen "$T/k2.sec" "$T/k2.pub" >/dev/null 2>&1 || fail "keygen 2"

# fresh NAME [build options]: a new signed index of s1
fresh() { rm -rf "$T/$1"; "$VBFSCTL" build "$S" "$T/$1" --block-size 4K --sign-key "$T/k.sec" >/dev/null 2>&1 || fail "build $1"; }
reused() { sed -n 's/.* \([0-9]*\) reused .*/\1/p' "$T/last.err"; }

for how in "" --reseal; do
	fresh i
	expect_status "one digest changed${how:+ and the root resealed}" 0 "$TAMPER" "$T/i" digest $how
	expect_status "rebuild in place with --sign-key (digest changed${how:+, resealed})" 0 \
		"$VBFSCTL" build "$S" "$T/i" --block-size 4K --sign-key "$T/k.sec"
	expect_eq "  ... nothing reused from it" 0 "$(reused)"
	expect_status "  ... verify --verify-key: the store's own bytes" 0 \
		"$VBFSCTL" verify "$S" "$T/i" --verify-key "$T/k.pub"
done
# a changed digest without a reseal: an unsigned rebuild rehashes too
fresh i
"$TAMPER" "$T/i" digest || fail "tamper"
expect_status "unsigned rebuild in place, root broken" 0 "$VBFSCTL" build "$S" "$T/i" --block-size 4K
expect_eq "  ... nothing reused from it" 0 "$(reused)"
expect_status "  ... verify" 0 "$VBFSCTL" verify "$S" "$T/i"
# signed by another key: rehashed once, then reused again
fresh i
expect_status "rebuild with another key" 0 "$VBFSCTL" build "$S" "$T/i" --block-size 4K --sign-key "$T/k2.sec"
expect_eq "  ... nothing reused from an index of another key" 0 "$(reused)"
expect_status "rebuild with that key again" 0 "$VBFSCTL" build "$S" "$T/i" --block-size 4K --sign-key "$T/k2.sec"
expect_eq "  ... now reused" 1 "$(reused)"
# the good case keeps its speed
fresh i
expect_status "rebuild of an intact signed index" 0 "$VBFSCTL" build "$S" "$T/i" --block-size 4K --sign-key "$T/k.sec"
expect_eq "  ... reused" 1 "$(reused)"

# --reuse OLD --sign-key
fresh old
"$TAMPER" "$T/old" digest --reseal || fail "tamper old"
rm -rf "$T/new"
expect_status "--reuse a resealed forgery, --sign-key" 2 \
	"$VBFSCTL" build "$T/s2" "$T/new" --block-size 4K --reuse "$T/old" --sign-key "$T/k.sec"
one_line_with "--reuse forgery" "vbfsctl: build: --reuse $T/old: not signed by the key this index is signed with"
check "  ... no index written" test ! -e "$T/new"
rm -rf "$T/u"; "$VBFSCTL" build "$S" "$T/u" --block-size 4K >/dev/null 2>&1
expect_status "--reuse an unsigned index, --sign-key" 2 \
	"$VBFSCTL" build "$T/s2" "$T/new" --block-size 4K --reuse "$T/u" --sign-key "$T/k.sec"
one_line_with "--reuse unsigned" "not signed by the key this index is signed with"
fresh old
expect_status "--reuse an index signed by the same key" 0 \
	"$VBFSCTL" build "$T/s2" "$T/new" --block-size 4K --reuse "$T/old" --sign-key "$T/k.sec"
expect_eq "  ... reused" 1 "$(reused)"
expect_status "  ... verify --verify-key" 0 "$VBFSCTL" verify "$T/s2" "$T/new" --verify-key "$T/k.pub"
# --reuse a good OLD into a target whose own root is broken: only OLD lends
rm -rf "$T/new"; "$VBFSCTL" build "$T/s2" "$T/new" --block-size 4K >/dev/null 2>&1
"$TAMPER" "$T/new" digest || fail "tamper new"
expect_status "--reuse into a damaged target" 0 "$VBFSCTL" build "$T/s2" "$T/new" --block-size 4K --reuse "$T/old"
expect_status "  ... verify" 0 "$VBFSCTL" verify "$T/s2" "$T/new"
finish
