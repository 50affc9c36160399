#!/usr/bin/env bash
# core_clean.sh - a clean store reads back byte-identical through vbfs.
#
# Builds a tree with the awkward cases (empty file, exactly one block, one
# byte over, 5.5 blocks, spaces and unicode in names, symlinks inside and
# pointing out, odd modes, an owner that is not root, nanosecond mtimes),
# indexes it, mounts it and restores it three ways (cp -a, tar, sha256sum).
# Then: the metadata the mount shows, the xattr counters, that every write
# fails with EROFS, that the store is untouched, and a clean exit 0.
. "$(dirname "$0")/lib.sh"
need jq; need getfattr attr; need python3
quiet() { "$@" >/dev/null 2>&1; }   # for check: the status, not the output

MiB=1048576
S=$T/store IDX=$T/index M=$T/mnt

# ---- the tree -------------------------------------------------------------
mkdir -p "$S/sub/deeper" "$S/emptydir" "$S/dir with space"
: >"$S/empty"
make_file "$S/one_mib" 1
make_file "$S/five_and_a_half" 6
truncate -s $((5 * MiB + MiB / 2)) "$S/five_and_a_half"
{ make_file "$T/tmp1" 1; cat "$T/tmp1"; printf 'Z'; } >"$S/one_mib_plus_1"; rm "$T/tmp1"
printf 'hello\n' >"$S/small.txt"
make_file "$S/dir with space/file with space.bin" 2
make_file "$S/sub/deeper/ünïcødé ✓ ファイル.dat" 1
head -c 12345 /dev/urandom >"$S/sub/odd size"
printf '#!/bin/sh\necho hi\n' >"$S/sub/script.sh"
ln -s sub/deeper "$S/link_to_dir"
ln -s "ünïcødé ✓ ファイル.dat" "$S/sub/deeper/rel_link"
ln -s ../../outside/of/store "$S/sub/dangling"
ln -s /etc/hostname "$S/absolute_link"
mkfifo "$S/sub/fifo"
chmod 0755 "$S/sub/script.sh"
chmod 0600 "$S/small.txt"
chmod 0444 "$S/one_mib"
chmod 4750 "$S/sub/odd size"
chmod 0700 "$S/emptydir"
chmod 2775 "$S/dir with space"
chown 1234:5678 "$S/one_mib_plus_1"
chown -h 4321:8765 "$S/link_to_dir"
touch -h -d '2001-02-03 04:05:06.123456789' "$S/sub/dangling"
touch -d '2020-01-02 03:04:05.987654321' "$S/empty" "$S/small.txt"
touch -d '1999-12-31 23:59:59.000000001' "$S/five_and_a_half"
touch -d '2010-10-10 10:10:10.5' "$S/sub/deeper" "$S/emptydir"
touch -d '2038-01-19 03:14:08.999999999' "$S/one_mib"

expect_status "build the index" 0 "$VBFSCTL" build "$S" "$IDX"

# Everything a restore must reproduce, one line per entry, sorted:
# type, mode, owner, size (not for dirs: the mount may differ), mtime with
# ns (not for symlinks: tar and cp -a differ), link target, path.
meta_list() {
	(cd "$1" && find . -printf '%y %#m %U:%G %s %T@ %l %p\n' |
		awk '$1 == "d" { $4 = "-" } { print }' | LC_ALL=C sort)
}
# Content of every regular file.
sums() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); }

meta_list "$S" >"$T/store.meta"
sums "$S" >"$T/store.sums"
[ "$(wc -l <"$T/store.sums")" = 9 ] || fail "setup: expected 9 regular files"

vbfs_mount "$S" "$IDX" "$M" || { fail "mount"; finish; exit 1; }

# ---- the mount shows the tree as indexed ----------------------------------
meta_list "$M" >"$T/mnt.meta"
check "metadata through the mount equals the store (modes, owners, ns mtimes, links)" \
	cmp -s "$T/store.meta" "$T/mnt.meta" || diff "$T/store.meta" "$T/mnt.meta" | head -20 >&2
expect_eq "mtime with nanoseconds" "2020-01-02 03:04:05.987654321" \
	"$(TZ=UTC0 stat -c %y "$M/empty" | cut -c1-29)"
expect_eq "mtime past 2038" "$(stat -c %Y.%y "$S/one_mib")" "$(stat -c %Y.%y "$M/one_mib")"
expect_eq "symlink target" "../../outside/of/store" "$(readlink "$M/sub/dangling")"
expect_eq "absolute symlink target (shown, not followed by vbfs)" "/etc/hostname" \
	"$(readlink "$M/absolute_link")"
expect_eq "symlink owner" "4321:8765" "$(stat -c %u:%g "$M/link_to_dir")"
expect_eq "file owner" "1234:5678" "$(stat -c %u:%g "$M/one_mib_plus_1")"
expect_eq "setuid mode" "4750" "$(stat -c %a "$M/sub/odd size")"
expect_eq "setgid dir mode" "2775" "$(stat -c %a "$M/dir with space")"
expect_eq "fifo type" "fifo" "$(stat -c %F "$M/sub/fifo")"
expect_eq "sizes" "0 1048576 1048577 5767168" \
	"$(stat -c %s "$M/empty" "$M/one_mib" "$M/one_mib_plus_1" "$M/five_and_a_half" | xargs)"
expect_eq "readdir order and names" "$(ls -A "$S" | LC_ALL=C sort)" "$(ls -A "$M" | LC_ALL=C sort)"
check "unicode name opens" cmp -s "$S/sub/deeper/ünïcødé ✓ ファイル.dat" \
	"$M/sub/deeper/ünïcødé ✓ ファイル.dat"
check "relative symlink inside the mount resolves" cmp -s "$S/one_mib" "$M/link_to_dir/../../one_mib"

# ---- three restores ---------------------------------------------------------
sums "$M" >"$T/mnt.sums"
check "sha256sum through the mount equals the store" cmp -s "$T/store.sums" "$T/mnt.sums"

mkdir "$T/cp"
expect_status "cp -a from the mount" 0 cp -a "$M/." "$T/cp/"
meta_list "$T/cp" | grep -v ' \./sub/fifo$' >"$T/cp.meta"
grep -v ' \./sub/fifo$' "$T/store.meta" >"$T/store.nofifo.meta"
# cp -a keeps the fifo as a fifo; compare it apart (its mtime is kept too).
check "cp -a copy: same types, modes, owners, ns mtimes, links" \
	cmp -s "$T/store.nofifo.meta" "$T/cp.meta" || diff "$T/store.nofifo.meta" "$T/cp.meta" | head >&2
check "cp -a copy: fifo is a fifo" test -p "$T/cp/sub/fifo"
sums "$T/cp" >"$T/cp.sums"
check "cp -a copy: contents byte-identical" cmp -s "$T/store.sums" "$T/cp.sums"

mkdir "$T/tar"
(cd "$M" && tar --format=posix -cf - .) | (cd "$T/tar" && tar -xpf - --numeric-owner --warning=no-timestamp)
expect_eq "tar pipeline exit statuses" "0 0" "${PIPESTATUS[*]}"
meta_list "$T/tar" >"$T/tar.meta"
check "tar copy: same types, modes, owners, ns mtimes, links" \
	cmp -s "$T/store.meta" "$T/tar.meta" || diff "$T/store.meta" "$T/tar.meta" | head >&2
sums "$T/tar" >"$T/tar.sums"
check "tar copy: contents byte-identical" cmp -s "$T/store.sums" "$T/tar.sums"

# Reads at odd offsets and sizes cross block boundaries.
got=$(dd if="$M/five_and_a_half" bs=4096 skip=255 count=3 status=none | sha256sum)
want=$(dd if="$S/five_and_a_half" bs=4096 skip=255 count=3 status=none | sha256sum)
expect_eq "read across a block boundary" "$want" "$got"
got=$(tail -c 1 "$M/one_mib_plus_1" | od -An -c | tr -d ' ')
expect_eq "the last byte of a 1 MiB + 1 file" "Z" "$got"
expect_eq "read past the end is empty" "0" \
	"$(dd if="$M/one_mib" bs=1M skip=1 count=1 status=none | wc -c)"

# ---- counters and xattrs ----------------------------------------------------
stats=$(getfattr -n user.vbfs.stats --only-values "$M" 2>"$T/gf.err")
jq_true() { jq -e "$1" >/dev/null 2>&1 <<<"$2"; }
check "stats xattr is JSON" jq_true . "$stats"
total=$(awk '{ s += $1 } END { print s }' < <(cd "$S" && find . -type f -printf '%s\n'))
blocks=$(jq -r '.blocks_verified' <<<"$stats")
bytes=$(jq -r '.bytes_verified' <<<"$stats")
# 9 files: 0+1+2+6+1+2+1+1+1 = 15 blocks.  Three full restores later each
# was still verified exactly once (the kernel keeps verified pages, the
# daemon's block cache the rest).
expect_eq "blocks_verified: each of the 15 blocks once" 15 "$blocks"
expect_eq "bytes_verified: every file byte once" "$total" "$bytes"
expect_eq "stats: no damage events" "0" "$(jq -r '[.events[]] | add' <<<"$stats")"
check "stats: events has corrupt and missing counters" \
	jq_true '.events | has("corrupt") and has("missing")' "$stats"
expect_eq "index xattr" "$(realpath "$IDX")" "$(getfattr --absolute-names -n user.vbfs.index --only-values "$M")"
expect_eq "listxattr of a file is empty" "" "$(getfattr -d -m - "$M/one_mib" 2>&1)"
expect_eq "listxattr of the root is empty" "" "$(getfattr -d -m - "$M" 2>&1)"
expect_eq "listxattr of a dir is empty" "" "$(getfattr -d -m - "$M/sub" 2>&1)"
check "an unknown xattr is absent" bash -c "! getfattr -n user.nope '$M/one_mib' 2>/dev/null"
# The index records no ACLs or labels: outside the user namespace every
# name is EOPNOTSUPP (ENOTSUP, the same errno on Linux), so ls -l stops
# asking (ENODATA made it ask for each entry: two round trips per entry of
# ls -lR); inside it an unknown name is ENODATA.
xattr_errno() {
	python3 -c 'import errno, os, sys
try:
    os.getxattr(sys.argv[1], sys.argv[2], follow_symlinks=False); print("found")
except OSError as e:
    print(errno.errorcode[e.errno])' "$1" "$2"
}
expect_eq "user.nope: ENODATA" ENODATA "$(xattr_errno "$M/one_mib" user.nope)"
for name in security.selinux system.posix_acl_access system.posix_acl_default trusted.x; do
	expect_eq "$name of a dir: EOPNOTSUPP" ENOTSUP "$(xattr_errno "$M/sub" "$name")"
done
expect_eq "security.selinux of a file: EOPNOTSUPP" ENOTSUP "$(xattr_errno "$M/one_mib" security.selinux)"
expect_eq "system.posix_acl_access of a file: EOPNOTSUPP" ENOTSUP \
	"$(xattr_errno "$M/one_mib" system.posix_acl_access)"
# cp -a --preserve=all did not copy any of them.
expect_eq "restored copy has no xattrs" "" "$(getfattr -R -d -m - "$T/cp" 2>/dev/null)"

# ---- read-only: every write is EROFS ---------------------------------------
# One python run tries each call and prints "what errno-name" per line.
PY=python3; [ -x /usr/bin/python3 ] && PY=/usr/bin/python3
"$PY" - "$M" >"$T/erofs.out" <<'EOF'
import errno, os, sys
m = sys.argv[1]
f = m + "/small.txt"
calls = [
    ("open-O_WRONLY", lambda: os.open(f, os.O_WRONLY)),
    ("open-O_RDWR", lambda: os.open(f, os.O_RDWR)),
    ("open-O_TRUNC", lambda: os.open(f, os.O_WRONLY | os.O_TRUNC)),
    ("open-O_APPEND", lambda: os.open(f, os.O_WRONLY | os.O_APPEND)),
    ("create", lambda: os.open(m + "/new", os.O_WRONLY | os.O_CREAT, 0o644)),
    ("mkdir", lambda: os.mkdir(m + "/newdir")),
    ("unlink", lambda: os.unlink(f)),
    ("rmdir", lambda: os.rmdir(m + "/emptydir")),
    ("rename", lambda: os.rename(f, m + "/x")),
    ("symlink", lambda: os.symlink("x", m + "/newlink")),
    ("link", lambda: os.link(f, m + "/hl")),
    ("chmod", lambda: os.chmod(f, 0o777)),
    ("chown", lambda: os.chown(f, 1, 1)),
    ("utime", lambda: os.utime(f, (1, 1))),
    ("truncate", lambda: os.truncate(f, 0)),
    ("setxattr", lambda: os.setxattr(f, "user.x", b"1")),
    ("removexattr", lambda: os.removexattr(f, "user.vbfs.stats")),
    ("mkfifo", lambda: os.mkfifo(m + "/newfifo")),
    ("read-only-open", lambda: os.close(os.open(f, os.O_RDONLY))),
]
for name, call in calls:
    try:
        call()
        print(name, "ok")
    except OSError as e:
        print(name, errno.errorcode.get(e.errno, e.errno))
EOF
while read -r what got; do
	want=EROFS
	case $what in read-only-open) want=ok ;; esac
	expect_eq "$what through the mount" "$want" "$got"
done <"$T/erofs.out"
expect_eq "all write calls tried" 19 "$(wc -l <"$T/erofs.out")"
expect_status "touch fails" 1 touch "$M/small.txt"
check "touch says read-only" grep -q "Read-only file system" "$T/last.err"
expect_status "mkdir fails" 1 mkdir "$M/d2"
expect_status "rm fails" 1 rm -f "$M/small.txt"
check "echo > file fails" bash -c "! (echo x >'$M/small.txt') 2>/dev/null"

# ---- the store was never written -------------------------------------------
meta_list "$S" >"$T/store.after"
sums "$S" >"$T/store.sums.after"
check "store metadata unchanged" cmp -s "$T/store.meta" "$T/store.after"
check "store contents unchanged" cmp -s "$T/store.sums" "$T/store.sums.after"

vbfs_umount "$M"
expect_eq "clean mount exits 0 on unmount" 0 "$VBFS_STATUS"
expect_eq "no events logged" 0 "$(wc -c <"$M.log" 2>/dev/null || echo 0)"
check "unmount summary on stderr" grep -q "^vbfs: unmounted" "$M.stderr"
expect_eq "summary is one line" 1 "$(grep -c . "$M.stderr")"

# Verify each block once: O_DIRECT 128 KiB reads reach the daemon one by
# one (44 of them for 5.5 MiB).  It hashes each 1 MiB block once and serves
# at least the other 38 pieces from its cache (more when read-ahead
# verification got there first).
# next_files=0: no look-ahead into the directory's other files, so the
# counters are this file's alone.
vbfs_mount "$S" "$IDX" "$T/mnt2" next_files=0 || fail "second mount"
expect_status "O_DIRECT read in 128 KiB pieces" 0 \
	dd if="$T/mnt2/five_and_a_half" of="$T/direct.out" bs=128K iflag=direct status=none
check "O_DIRECT read byte-identical" cmp -s "$T/direct.out" "$S/five_and_a_half"
expect_eq "44 reads, 6 blocks hashed, 5.5 MiB verified, >= 38 cache hits" "44 6 5767168 true" \
	"$(getfattr --absolute-names -n user.vbfs.stats --only-values "$T/mnt2" |
		jq -r '"\(.reads) \(.blocks_verified) \(.bytes_verified) \(.cache_hits >= 38)"')"
vbfs_umount "$T/mnt2"
expect_eq "second mount exits 0" 0 "$VBFS_STATUS"

# A clean scrub agrees.
expect_status "vbfsctl verify on the clean store" 0 "$VBFSCTL" verify "$S" "$IDX" --json
expect_eq "verify --json: ok, no events" "true 0" "$(jq -r '"\(.ok) \(.events | length)"' "$T/last.out")"
expect_eq "verify --json: files" 9 "$(jq -r .files "$T/last.out")"
expect_eq "verify --json: bytes" "$total" "$(jq -r .bytes "$T/last.out")"
finish
