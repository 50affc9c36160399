#!/bin/bash
# package.sh - the .deb installs like a tool operators adopt: build it with
# scripts/package, install it with apt-get, mount through
# `mount -t fuse.vbfs` and through an /etc/fstab line (noauto), then remove
# everything again: the mounts, the fstab line and the package (purged), on
# every path out of this script.
. "$(dirname "$0")/lib.sh"

command -v dpkg >/dev/null && command -v apt-get >/dev/null || skip "not a Debian system"
command -v cpack >/dev/null || skip "cpack not installed"
if dpkg-query -W -f='${Status}' vbfs 2>/dev/null | grep -q "install ok installed"; then
	skip "a vbfs package is already installed here: not touching it"
fi
for f in /usr/bin/vbfs /usr/bin/vbfsctl; do
	[ -e "$f" ] && skip "$f exists outside the package manager: not overwriting it"
done

S=$T/store I=$T/index M1=$T/mnt-t M2=$T/mnt-fstab
INSTALLED=0
FSTAB_ADDED=0

# The daemon mount(8) started is not our child: wait for it to leave after
# the unmount (observing only; it exits by itself).
wait_daemon_gone() {
	local i
	for i in $(seq 1 100); do
		pgrep -f "vbfs $S $1" >/dev/null || return 0
		sleep 0.05
	done
	return 1
}

pkg_cleanup() {
	local m
	for m in "$M1" "$M2"; do
		mountpoint -q "$m" 2>/dev/null && { umount "$m" 2>/dev/null || umount -l "$m"; wait_daemon_gone "$m"; }
	done
	if [ "$FSTAB_ADDED" = 1 ]; then
		# rewrite in place (keeps the inode: /etc/fstab may be bind-mounted)
		grep -vF "$T/" /etc/fstab >"$T/fstab.new" && cat "$T/fstab.new" >/etc/fstab
	fi
	if [ "$INSTALLED" = 1 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 purge -y -qq vbfs >/dev/null 2>&1 ||
			dpkg --purge vbfs >/dev/null 2>&1
	fi
}
trap 'pkg_cleanup; cleanup' EXIT

# --- build and install ----------------------------------------------------------
PKG_DIR=${VBFS_BUILD:-$T}/package-deb
DEB=$("$VBFS_SRC/scripts/package" "$PKG_DIR" 2>"$T/package.log" | tail -1)
if [ ! -f "$DEB" ]; then
	tail -20 "$T/package.log" >&2
	fail "scripts/package built a .deb"
	finish; exit 1
fi
pass "scripts/package built $(basename "$DEB")"
check "the .deb depends on fuse3, liblmdb0, libcjson1, libssl3" bash -c \
	"dpkg-deb -f '$DEB' Depends | grep -q 'fuse3' && dpkg-deb -f '$DEB' Depends | grep -q 'liblmdb0' &&
	 dpkg-deb -f '$DEB' Depends | grep -q 'libcjson1' && dpkg-deb -f '$DEB' Depends | grep -q 'libssl3'"

INSTALLED=1
expect_status "apt-get install the .deb" 0 env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq "$DEB"
for f in /usr/bin/vbfs /usr/bin/vbfsctl /usr/share/man/man1/vbfs.1.gz /usr/share/man/man1/vbfsctl.1.gz \
	 /usr/share/bash-completion/completions/vbfsctl; do
	check "installed $f" test -e "$f"
done
for f in "$VBFS_SRC"/scripts/deploy/*.service "$VBFS_SRC"/scripts/deploy/*.timer; do
	[ -e "$f" ] && check "installed unit $(basename "$f")" test -e "/usr/lib/systemd/system/$(basename "$f")"
done
for f in "$VBFS_SRC"/scripts/deploy/*.example; do
	[ -e "$f" ] && check "installed example $(basename "$f")" test -e "/usr/share/doc/vbfs/examples/$(basename "$f")"
done
check "vbfsctl --version from PATH" bash -c "vbfsctl --version | grep -q '^vbfsctl 0.1.0'"
check "man page readable" bash -c "zcat /usr/share/man/man1/vbfsctl.1.gz | grep -q '^.TH VBFSCTL 1'"
check "bash completion registers" bash -c \
	"source /usr/share/bash-completion/completions/vbfsctl && complete -p vbfsctl | grep -q _vbfsctl"
expect_eq "bash completion completes export formats" "manifest sha256sum blocks" "$(bash -c '
	source /usr/share/bash-completion/completions/vbfsctl
	COMP_WORDS=(vbfsctl export /x --format ""); COMP_CWORD=4; _vbfsctl; echo "${COMPREPLY[*]}"')"
expect_eq "bash completion completes subcommands" "repair report rto" "$(bash -c '
	source /usr/share/bash-completion/completions/vbfsctl
	COMP_WORDS=(vbfsctl r); COMP_CWORD=1; _vbfsctl; echo "${COMPREPLY[*]}"' | tr ' ' '\n' | sort | xargs)"

# --- a store and its index, by the installed tools -------------------------------
make_file "$S/db/app.dump" 3
mkdir -p "$S/etc"
printf 'hello\n' >"$S/etc/hello.txt"
expect_status "installed vbfsctl builds an index" 0 /usr/bin/vbfsctl build "$S" "$I"

# --- mount -t fuse.vbfs ------------------------------------------------------------
mkdir -p "$M1" "$M2"
expect_status "mount -t fuse.vbfs STORE MNT -o index=DIR" 0 \
	timeout 20 mount -t fuse.vbfs "$S" "$M1" -o "index=$I,log=$T/m1.log"
if mountpoint -q "$M1"; then
	expect_eq "findmnt: type fuse.vbfs" "fuse.vbfs" "$(findmnt -n -o FSTYPE "$M1")"
	check "a file reads back exactly" cmp "$S/db/app.dump" "$M1/db/app.dump"
	expect_status "writes are refused" 1 bash -c "echo x >'$M1/etc/hello.txt'"
	expect_status "umount" 0 umount "$M1"
	check "the daemon left after umount" wait_daemon_gone "$M1"
else
	fail "mount -t fuse.vbfs mounted"
fi

# --- /etc/fstab, noauto -------------------------------------------------------------
[ -w /etc/fstab ] || { fail "/etc/fstab is writable"; finish; exit 1; }
FSTAB_ADDED=1
printf '%s %s fuse.vbfs noauto,index=%s,log=%s 0 0\n' "$S" "$M2" "$I" "$T/m2.log" >>/etc/fstab
expect_status "mount MNT (from /etc/fstab)" 0 timeout 20 mount "$M2"
if mountpoint -q "$M2"; then
	expect_eq "fstab mount reads back" "hello" "$(cat "$M2/etc/hello.txt")"
	check "fstab mount verifies the big file" cmp "$S/db/app.dump" "$M2/db/app.dump"
	expect_status "umount MNT" 0 umount "$M2"
	check "the daemon left after umount" wait_daemon_gone "$M2"
else
	fail "mount MNT from fstab mounted"
fi
grep -vF "$T/" /etc/fstab >"$T/fstab.new" && cat "$T/fstab.new" >/etc/fstab
FSTAB_ADDED=0
expect_status "the fstab line is gone" 1 grep -qF "$T/" /etc/fstab

# --- remove ---------------------------------------------------------------------------
expect_status "apt-get purge vbfs" 0 env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 purge -y -qq vbfs
INSTALLED=0
check "vbfs binaries removed" bash -c "! test -e /usr/bin/vbfs && ! test -e /usr/bin/vbfsctl"
check "units removed" bash -c "! ls /usr/lib/systemd/system/vbfs-* >/dev/null 2>&1"
expect_status "dpkg no longer knows vbfs" 1 bash -c \
	"dpkg-query -W -f='\${Status}' vbfs 2>/dev/null | grep -q 'install ok installed'"

finish
