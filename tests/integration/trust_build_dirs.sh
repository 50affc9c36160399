#!/bin/bash
# trust_build_dirs.sh - a directory the build cannot read is "content
# unknown" in the index, never an empty directory (issue 15, item 4):
#   - build (without CAP_DAC_READ_SEARCH, on a mode-000 directory) exits 1
#     and names it;
#   - through the mount, listing it and looking a name up in it are EIO with
#     one `unreadable` event; `cp -a` of the tree fails; the daemon exits 1;
#   - `vbfsctl verify` exits 1 naming it; the rest of the tree verifies;
#   - a directory with an entry that cannot be stat'ed (readable, not
#     searchable: mode 0400) is content unknown too;
#   - once readable again, a rebuild indexes its files and all is OK.
. "$(dirname "$0")/lib.sh"
need jq; need capsh libcap2-bin
S=$T/store
mkdir -p "$S/locked/deeper" "$S/listonly" "$S/open"
make_file "$S/open/a.bin" 1 a
make_file "$S/locked/secret.bin" 1 s
make_file "$S/locked/deeper/x.bin" 1 x
echo one >"$S/listonly/one"
chmod 000 "$S/locked"
chmod 0400 "$S/listonly"
NOCAP="capsh --drop=cap_dac_override,cap_dac_read_search --"

# ---- build ---------------------------------------------------------------------------
expect_status "build without read access: damage found" 1 \
	$NOCAP -c "'$VBFSCTL' build '$S' '$T/idx' --json"
grep -q '^locked: FAIL unreadable: cannot open directory: Permission denied; its content is unknown' "$T/last.err" &&
	pass "build names the unreadable directory" || fail "build stderr: $(cat "$T/last.err")"
grep -q '^listonly: FAIL unreadable: cannot stat an entry: Permission denied' "$T/last.err" &&
	pass "build names the directory whose entries cannot be stat'ed" || fail "build stderr: $(cat "$T/last.err")"
expect_eq "build --json: two unreadable events" 2 \
	"$(jq '[.events[] | select(.event == "unreadable")] | length' "$T/last.out")"

# ---- verify --------------------------------------------------------------------------
expect_status "verify: exit 1" 1 "$VBFSCTL" verify "$S" "$T/idx" --json
expect_eq "verify names both, and only them" "listonly:unreadable locked:unreadable" \
	"$(jq -r '[.events[] | "\(.path):\(.event)"] | sort | join(" ")' "$T/last.out")"
grep -q 'locked: FAIL unreadable: directory was unreadable when the index was built: its content is unknown' "$T/last.err" &&
	pass "verify says why" || fail "verify stderr: $(cat "$T/last.err")"

# ---- the mount -------------------------------------------------------------------------
vbfs_mount "$S" "$T/idx" "$T/m" || { fail mount; finish; exit; }
check "the directory is listed in its parent" test -d "$T/m/locked"
ERR=$(ls "$T/m/locked" 2>&1); RC=$?
expect_eq "ls of it fails" 2 "$RC"
case $ERR in *"Input/output error"*) pass "listing it is EIO";; *) fail "ls: $ERR";; esac
ERR=$(cat "$T/m/locked/secret.bin" 2>&1 >/dev/null)
case $ERR in *"Input/output error"*) pass "a name in it is EIO, not 'No such file'";; *) fail "lookup: $ERR";; esac
ERR=$(ls "$T/m/listonly" 2>&1)
case $ERR in *"Input/output error"*) pass "the list-only directory is EIO too";; *) fail "ls listonly: $ERR";; esac
check "the readable part reads" cmp -s "$S/open/a.bin" "$T/m/open/a.bin"
mkdir "$T/copy"
expect_status "cp -a of the tree fails" 1 cp -a "$T/m/." "$T/copy/"
vbfs_umount "$T/m"
expect_eq "daemon exit status: damage" 1 "$VBFS_STATUS"
expect_eq "one unreadable event per directory" "listonly locked" \
	"$(jq -r 'select(.event == "unreadable") | .path' "$T/m.log" | sort | tr '\n' ' ' | sed 's/ $//')"

# ---- readable again: a rebuild indexes it ---------------------------------------------
chmod 755 "$S/locked" "$S/listonly"
expect_status "rebuild once readable" 0 "$VBFSCTL" build "$S" "$T/idx"
expect_status "verify: all OK" 0 "$VBFSCTL" verify "$S" "$T/idx"
vbfs_mount "$S" "$T/idx" "$T/m2" || { fail mount2; finish; exit; }
check "its file reads" cmp -s "$S/locked/deeper/x.bin" "$T/m2/locked/deeper/x.bin"
vbfs_umount "$T/m2"
expect_eq "daemon exit status: clean" 0 "$VBFS_STATUS"
finish
