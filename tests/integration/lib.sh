# tests/integration/lib.sh - shared helpers for integration tests.
# Source it; it sets up a private work dir and a trap that unmounts every
# mount this test made and kills only the daemons it started.
set -u
VBFS_BIN=${VBFS_BIN:-$VBFS_BUILD/fs/vbfs}
VBFSCTL=${VBFSCTL:-$VBFS_BUILD/tools/vbfsctl}
T=$(mktemp -d "${TMPDIR:-/tmp}/vbfs-it.XXXXXX")
_MOUNTS=()
_PIDS=()
_FAILS=0
_PASSES=0

cleanup() {
	local m p
	for m in "${_MOUNTS[@]}"; do
		mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; }
	done
	for p in "${_PIDS[@]}"; do
		kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# skip "reason": exit 77 (ctest SKIP_RETURN_CODE).
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root for FUSE mounts"
[ -e /dev/fuse ] || skip "no /dev/fuse"

pass() { _PASSES=$((_PASSES + 1)); echo "ok - $*"; }
fail() { _FAILS=$((_FAILS + 1)); echo "FAIL - $*" >&2; }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
# expect_eq WHAT EXPECTED ACTUAL
expect_eq() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi; }
# expect_status WHAT STATUS CMD...
expect_status() {
	local what=$1 want=$2; shift 2
	"$@" >"$T/last.out" 2>"$T/last.err"; local got=$?
	if [ "$got" = "$want" ]; then pass "$what (exit $got)"; else
		fail "$what: exit $got, wanted $want; stderr: $(head -c 400 "$T/last.err")"; fi
}
finish() {
	echo "# $_PASSES passed, $_FAILS failed"
	[ "$_FAILS" = 0 ]
}

# vbfs_mount STORE INDEX MNT [extra -o options]: runs vbfs -f in the
# background; waits until mounted.  Sets VBFS_PID.  Log in $MNT.log.
vbfs_mount() {
	local store=$1 index=$2 mnt=$3 extra=${4:-}
	mkdir -p "$mnt"
	"$VBFS_BIN" -f -o "index=$index,log=$mnt.log${extra:+,$extra}" "$store" "$mnt" 2>"$mnt.stderr" &
	VBFS_PID=$!
	_PIDS+=("$VBFS_PID")
	_MOUNTS+=("$mnt")
	local i
	for i in $(seq 1 200); do
		mountpoint -q "$mnt" && return 0
		kill -0 "$VBFS_PID" 2>/dev/null || { wait "$VBFS_PID"; echo "vbfs exited: $(cat "$mnt.stderr")" >&2; return 1; }
		sleep 0.05
	done
	echo "vbfs did not mount in 10 s" >&2
	return 1
}

# vbfs_umount MNT: unmount and wait for the daemon; sets VBFS_STATUS.
vbfs_umount() {
	fusermount3 -u "$1"
	wait "$VBFS_PID"; VBFS_STATUS=$?
}

# one_line_with WHAT MSG: the last expect_status's stderr is one line holding MSG.
one_line_with() {
	local what=$1 msg=$2 lines
	lines=$(wc -l <"$T/last.err")
	if [ "$lines" = 1 ] && grep -qF -- "$msg" "$T/last.err"; then pass "$what: one line: $msg"
	else fail "$what: wanted one line with '$msg', got $lines: $(head -c 400 "$T/last.err")"; fi
}

# mount_refused WHAT STORE INDEX MSG [extra -o options]: vbfs refuses before
# mounting: exit 2, one line holding MSG, nothing mounted.
mount_refused() {
	local what=$1 store=$2 idx=$3 msg=$4 extra=${5:-}
	mkdir -p "$T/mnt"
	timeout 60 "$VBFS_BIN" -f -o "index=$idx${extra:+,$extra}" "$store" "$T/mnt" >"$T/last.out" 2>"$T/last.err"
	local got=$?
	if mountpoint -q "$T/mnt"; then fusermount3 -u "$T/mnt"; fail "$what: vbfs mounted"; fi
	expect_eq "$what: vbfs exit" 2 "$got"
	one_line_with "$what: vbfs" "$msg"
}

# make_file PATH MiB [seed]: deterministic pseudo-random content.
make_file() {
	mkdir -p "$(dirname "$1")"
	openssl enc -aes-128-ctr -pass "pass:${3:-$1}" -nosalt -pbkdf2 -in /dev/zero 2>/dev/null \
		| head -c "$(( $2 * 1048576 ))" >"$1"
}

# tree_sum DIR: one digest of a tree's names, types, sizes, modes, mtimes
# and contents: equal before and after means the tree was not touched.
tree_sum() { (cd "$1" && find . -printf '%p %y %s %m %T@\n' | sort
	     find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum; }

# refused WHAT MESSAGE CMD...: CMD exits 2 with exactly MESSAGE as its one
# stderr line, and the store $S still sums to $BEFORE (set by the caller
# with BEFORE=$(tree_sum "$S")).
refused() {
	local what=$1 msg=$2; shift 2
	timeout 30 "$@" >"$T/o" 2>"$T/e"; local rc=$?
	expect_eq "$what: exit" 2 "$rc"
	expect_eq "$what: one line" 1 "$(wc -l <"$T/e")"
	expect_eq "$what: message" "$msg" "$(head -1 "$T/e")"
	expect_eq "$what: store unchanged" "$BEFORE" "$(tree_sum "$S")"
}

# flip_byte FILE OFFSET: change the byte at OFFSET (xor 0x55), so the
# damage is real whatever the byte was: writing a fixed 'X' over random data
# left it unchanged once in 256 runs, and the test then failed (or passed)
# for the wrong reason.
flip_byte() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	[ -n "$b" ] || { echo "flip_byte: $1 has no byte at $2" >&2; return 1; }
	printf "$(printf '\\%03o' $((b ^ 0x55)))" | dd of="$1" bs=1 seek="$2" count=1 conv=notrunc status=none
}

# need CMD [PACKAGE]: make sure CMD is there, installing the Debian PACKAGE
# (default: CMD) with apt-get when it is missing; skip the test (exit 77)
# when that is impossible.
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	if command -v apt-get >/dev/null 2>&1; then
		echo "# $1 missing: installing ${2:-$1}" >&2
		{ apt-get update -qq &&
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${2:-$1}"; } >&2
	fi
	command -v "$1" >/dev/null 2>&1 || skip "needs $1 (Debian package ${2:-$1})"
}

# need_postgres [PACKAGE...]: PostgreSQL's server binaries (PGBIN) and the
# unprivileged drill user (U=vbfsdrill), for the drill tests.  When the
# server or a PACKAGE's program is missing, installs postgresql and the
# PACKAGEs from Debian without a default cluster (this box should not start
# running a server); skips the test when that is impossible.  Then the
# drill user can pass through $T, and temporary directories go to $T/tmp
# (so a test can see the drills removed theirs).
need_postgres() {
	local p missing=0
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing=1
	for p in "$@"; do command -v "$p" >/dev/null 2>&1 || missing=1; done
	if [ "$missing" = 1 ]; then
		command -v apt-get >/dev/null || skip "PostgreSQL${1:+ or $*} not installed and no apt-get"
		mkdir -p /etc/postgresql-common/createcluster.d
		echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/vbfs-test.conf
		echo "# installing postgresql $* (apt-get)"
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql "$@"; } >"$T/apt.log" 2>&1
		p=$?
		rm -f /etc/postgresql-common/createcluster.d/vbfs-test.conf
		[ $p = 0 ] || skip "cannot install postgresql $*: $(tail -n1 "$T/apt.log")"
	fi
	PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
	U=vbfsdrill
	id -u "$U" >/dev/null 2>&1 || useradd --system --user-group --no-create-home \
		--home-dir /nonexistent --shell /usr/sbin/nologin "$U" || skip "cannot create user $U"
	chmod 0711 "$T"
	mkdir -p "$T/tmp" && chmod 1777 "$T/tmp"
	export TMPDIR=$T/tmp
}
