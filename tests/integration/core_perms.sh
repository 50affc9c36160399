#!/usr/bin/env bash
# core_perms.sh - who may read through the mount.
#
# Without allow_other only the mounting user gets in (FUSE's rule).  With
# allow_other, vbfs turns on default_permissions, so the kernel enforces
# the modes and owners the index recorded: an unprivileged user reads a
# 0644 file, gets EACCES on a 0600 one and on a 0700 directory, and can
# read a file owned by them.
. "$(dirname "$0")/lib.sh"
need setpriv util-linux

S=$T/store IDX=$T/index M=$T/mnt
NOBODY=65534
mkdir -p "$S/private_dir" "$S/open_dir"
printf 'public\n' >"$S/open_dir/public.txt"
printf 'secret\n' >"$S/secret.txt"
printf 'inner\n' >"$S/private_dir/inner.txt"
printf 'mine\n' >"$S/nobodys.txt"
chmod 0755 "$S" "$S/open_dir"; chmod 0644 "$S/open_dir/public.txt" "$S/private_dir/inner.txt"
chmod 0600 "$S/secret.txt" "$S/nobodys.txt"; chmod 0700 "$S/private_dir"
chown "$NOBODY:$NOBODY" "$S/nobodys.txt"
expect_status "build" 0 "$VBFSCTL" build "$S" "$IDX"
# The mountpoint's parents must be searchable by the other user.
chmod 0755 "$T"

as_nobody() { setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups -- "$@"; }
errno_as_nobody() {   # errno_as_nobody PATH: "ok" or the error text of cat
	local out
	out=$(as_nobody cat "$1" 2>&1 >/dev/null) && echo ok || echo "${out##*: }"
}

vbfs_mount "$S" "$IDX" "$M" || { fail "mount"; finish; exit 1; }
expect_eq "without allow_other: another user is kept out" "Permission denied" \
	"$(errno_as_nobody "$M/open_dir/public.txt")"
vbfs_umount "$M"
expect_eq "exit 0" 0 "$VBFS_STATUS"

vbfs_mount "$S" "$IDX" "$M" allow_other || { fail "mount allow_other"; finish; exit 1; }
expect_eq "allow_other: 0644 file readable by another user" ok "$(errno_as_nobody "$M/open_dir/public.txt")"
expect_eq "allow_other: 0600 root file refused" "Permission denied" "$(errno_as_nobody "$M/secret.txt")"
expect_eq "allow_other: 0700 root directory refused" "Permission denied" \
	"$(errno_as_nobody "$M/private_dir/inner.txt")"
expect_eq "allow_other: their own 0600 file readable" ok "$(errno_as_nobody "$M/nobodys.txt")"
expect_eq "root still reads everything" "secret" "$(cat "$M/secret.txt")"
vbfs_umount "$M"
expect_eq "exit 0" 0 "$VBFS_STATUS"
finish
