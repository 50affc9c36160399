#!/usr/bin/env bash
# core_badinput.sh - bad input is exit 2 with one clear line; the mount's
# lifecycle: SIGTERM/SIGINT unmount with a summary and the right status,
# `mount -t fuse.vbfs` works, unindexed store entries stay hidden.
. "$(dirname "$0")/lib.sh"
need jq; need mount.fuse3 fuse3
quiet() { "$@" >/dev/null 2>&1; }

S=$T/store IDX=$T/index M=$T/mnt
make_file "$S/a.bin" 2
mkdir -p "$M" "$T/empty-dir" "$T/garbage"
head -c 65536 /dev/urandom >"$T/garbage/data.mdb"
: >"$T/a-file"
expect_status "build" 0 "$VBFSCTL" build "$S" "$IDX"

# bad WHAT CMD...: exit 2, exactly one line on stderr, "vbfs: ..." or
# "vbfsctl[ sub]: ...", nothing mounted, the daemon not left running.
bad() {
	local what=$1; shift
	timeout 20 "$@" >"$T/bad.out" 2>"$T/bad.err"
	local st=$? lines first
	lines=$(grep -c . "$T/bad.err")
	first=$(head -n1 "$T/bad.err")
	if [ "$st" = 2 ] && [ "$lines" = 1 ] && [[ $first =~ ^(vbfs|vbfsctl)( [a-z]+)?:\  ]]; then
		pass "$what: exit 2, one line: $first"
	else
		fail "$what: exit $st, $lines stderr lines, wanted exit 2 and one 'vbfs:'/'vbfsctl:' line: $(head -c 300 "$T/bad.err" | tr '\n' '|')"
	fi
	if mountpoint -q "$M"; then
		fail "$what: left a mount behind"
		fusermount3 -u "$M"
	fi
}
_MOUNTS+=("$M")   # in case a bad case mounts after all

# ---- vbfs --------------------------------------------------------------------------
bad "vbfs: missing store" "$VBFS_BIN" -o "index=$IDX" "$T/no-such-store" "$M"
bad "vbfs: store is a file" "$VBFS_BIN" -o "index=$IDX" "$T/a-file" "$M"
bad "vbfs: garbage index (random bytes as data.mdb)" "$VBFS_BIN" -o "index=$T/garbage" "$S" "$M"
bad "vbfs: index dir without data.mdb" "$VBFS_BIN" -o "index=$T/empty-dir" "$S" "$M"
bad "vbfs: nonexistent index" "$VBFS_BIN" -o "index=$T/no-such-index" "$S" "$M"
bad "vbfs: missing -o index" "$VBFS_BIN" "$S" "$M"
bad "vbfs: nonexistent mountpoint" "$VBFS_BIN" -o "index=$IDX" "$S" "$T/no-such-mnt"
bad "vbfs: mountpoint is a file" "$VBFS_BIN" -o "index=$IDX" "$S" "$T/a-file"
bad "vbfs: no arguments" "$VBFS_BIN"
bad "vbfs: one argument" "$VBFS_BIN" -o "index=$IDX" "$S"
bad "vbfs: unknown -o option" "$VBFS_BIN" -o "index=$IDX,no_such_option=1" "$S" "$M"
bad "vbfs: bad unindexed= value" "$VBFS_BIN" -o "index=$IDX,unindexed=maybe" "$S" "$M"
bad "vbfs: log in a missing directory" "$VBFS_BIN" -o "index=$IDX,log=$T/no-such-dir/x.log" "$S" "$M"
bad "vbfs: negative readahead" "$VBFS_BIN" -o "index=$IDX,readahead=-1" "$S" "$M"
bad "vbfs: missing store (foreground)" "$VBFS_BIN" -f -o "index=$IDX" "$T/no-such-store" "$M"
# vbfs_index_open() "never writes to the index directory": not even a
# lock.mdb into a directory that turned out not to be an index.
expect_eq "the garbage index dir was not written to" data.mdb "$(ls "$T/garbage" | xargs)"

# ---- vbfsctl -----------------------------------------------------------------------
bad "build: missing store" "$VBFSCTL" build "$T/no-such-store" "$T/idx2"
check "a failed build creates no index dir" test ! -e "$T/idx2"
bad "build: block size not a power of two" "$VBFSCTL" build "$S" "$T/idx2" --block-size 3000
bad "build: block size below 4K" "$VBFSCTL" build "$S" "$T/idx2" --block-size 2K
bad "build: block size above 64M" "$VBFSCTL" build "$S" "$T/idx2" --block-size 128M
bad "build: block size garbage" "$VBFSCTL" build "$S" "$T/idx2" --block-size 1x
bad "build: unknown option" "$VBFSCTL" build "$S" "$T/idx2" --no-such-option
bad "build: index is a file" "$VBFSCTL" build "$S" "$T/a-file"
mkdir -p "$T/precious"; echo keep >"$T/precious/notes.txt"
bad "build: index dir is neither empty nor an index" "$VBFSCTL" build "$S" "$T/precious"
expect_eq "and it was left alone" "notes.txt" "$(ls "$T/precious")"
bad "build: garbage index" "$VBFSCTL" build "$S" "$T/garbage"
bad "build: missing INDEX argument" "$VBFSCTL" build "$S"
bad "verify: missing store" "$VBFSCTL" verify "$T/no-such-store" "$IDX"
bad "verify: missing index" "$VBFSCTL" verify "$S" "$T/no-such-index"
bad "verify: garbage index" "$VBFSCTL" verify "$S" "$T/garbage"
bad "verify: not an index" "$VBFSCTL" verify "$S" "$T/empty-dir"
bad "verify: bad --jobs" "$VBFSCTL" verify "$S" "$IDX" --jobs banana
bad "verify: no arguments" "$VBFSCTL" verify
bad "unknown command" "$VBFSCTL" frobnicate
# No command at all: the usage text on stderr (many lines), exit 2.
expect_status "vbfsctl with no command: usage, exit 2" 2 "$VBFSCTL"
check "the usage went to stderr" grep -q "^usage: vbfsctl" "$T/last.err"
check "a failed build created no index dir" test ! -e "$T/idx2"
for c in "" build verify; do
	expect_status "vbfsctl $c --help exits 0" 0 "$VBFSCTL" $c --help
done
expect_status "vbfs --help exits 0" 0 "$VBFS_BIN" --help
expect_status "vbfs --version exits 0" 0 "$VBFS_BIN" --version
check "vbfs --version prints the version" grep -q "0\.[0-9]" "$T/last.out" "$T/last.err"

# ---- the mount's lifecycle -----------------------------------------------------------
vbfs_mount "$S" "$IDX" "$M" || fail "mount"
kill -TERM "$VBFS_PID"
wait "$VBFS_PID"; st=$?
expect_eq "SIGTERM on a clean mount: exit 0" 0 "$st"
check "SIGTERM unmounted it" bash -c "! mountpoint -q '$M'"
check "SIGTERM: one-line summary" grep -q "^vbfs: unmounted" "$M.stderr"

mkdir -p "$T/dmg"
cp -a "$S/a.bin" "$T/dmg/a.bin"
flip_byte "$T/dmg/a.bin" 5
# A non-interactive shell starts background jobs with SIGINT ignored, and
# libfuse keeps an ignored signal ignored: restore the default for this one
# the way a terminal's Ctrl-C would find it.
rm -f "$M.log"
env --default-signal=INT "$VBFS_BIN" -f -o "index=$IDX,log=$M.log" "$T/dmg" "$M" 2>"$M.stderr" &
VBFS_PID=$!
_PIDS+=("$VBFS_PID")
for _ in $(seq 1 200); do mountpoint -q "$M" && break; sleep 0.05; done
check "damaged block 0 gives EIO" bash -c "! head -c 10 '$M/a.bin' >/dev/null 2>&1"
kill -INT "$VBFS_PID"
wait "$VBFS_PID"; st=$?
expect_eq "SIGINT after damage: exit 1" 1 "$st"
check "SIGINT unmounted it" bash -c "! mountpoint -q '$M'"

# Unindexed entries: hidden by default, shown and logged with unindexed=allow.
echo "added later" >"$S/later.txt"
rm -f "$M.log"
vbfs_mount "$S" "$IDX" "$M" || fail "mount"
expect_eq "unindexed file hidden by default" "a.bin" "$(ls "$M" | xargs)"
check "and cannot be opened" bash -c "! cat '$M/later.txt' 2>/dev/null"
vbfs_umount "$M"
expect_eq "hidden unindexed file is no damage" 0 "$VBFS_STATUS"
rm -f "$M.log"
vbfs_mount "$S" "$IDX" "$M" unindexed=allow || fail "mount unindexed=allow"
expect_eq "unindexed=allow shows it" "a.bin later.txt" "$(ls "$M" | xargs)"
expect_eq "and serves it" "added later" "$(cat "$M/later.txt")"
vbfs_umount "$M"
expect_eq "unindexed is not damage: exit 0" 0 "$VBFS_STATUS"
expect_eq "an unindexed event was logged" "unindexed later.txt" \
	"$(jq -r '"\(.event) \(.path)"' "$M.log" | sort -u | xargs)"
rm "$S/later.txt"

# The fstab path: mount -t fuse.vbfs runs mount.fuse3 -t vbfs, which runs
# `vbfs` from PATH (mount(8) itself resets PATH, so call the helper).
if command -v mount.fuse3 >/dev/null; then
	mkdir -p "$T/bin"
	ln -s "$VBFS_BIN" "$T/bin/vbfs"
	expect_status "mount.fuse3 -t vbfs (as from /etc/fstab)" 0 env PATH="$T/bin:$PATH" \
		mount.fuse3 "$S" "$M" -t vbfs -o "index=$IDX"
	check "mounted" mountpoint -q "$M"
	check "reads through the fstab-style mount" cmp -s "$S/a.bin" "$M/a.bin"
	expect_status "umount" 0 umount "$M"
	check "unmounted" bash -c "! mountpoint -q '$M'"
else
	echo "# mount.fuse3 not found: fstab-style mount not tested"
fi
finish
