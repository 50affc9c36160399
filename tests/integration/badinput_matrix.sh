#!/bin/bash
# badinput_matrix.sh - every command against hostile or broken input.
#
# For each (input, command): the exit status is the one expected (2 for
# operational errors, 1 for damage, 0 where the input is legal), a failure
# says so in exactly one line on stderr, nothing crashes (no signal, no
# sanitizer report), nothing hangs (timeout), the store is never written
# (a listing of every path, type, size, mode, mtime and content digest is
# compared before and after), and a failed build leaves no index behind.
#
# Prints the matrix as a Markdown table (input, command, exit, message);
# with VBFS_REPORT_DIR set, also writes it to $VBFS_REPORT_DIR/badinput_matrix.md.
. "$(dirname "$0")/lib.sh"
TAMPER=${VBFS_TAMPER:-$VBFS_BUILD/tests/test_tamper}
MATRIX=$T/matrix.md
echo "| input | command | exit | message (first line of stderr) |" >"$MATRIX"
echo "|---|---|---|---|" >>"$MATRIX"

# ---- fixtures ------------------------------------------------------------------
G=$T/good                        # a plain store with an index
mkdir -p "$G/d"
make_file "$G/a.bin" 2
printf 'x\n' >"$G/d/small.txt"
"$VBFSCTL" build "$G" "$T/gidx" --block-size 64K >/dev/null 2>&1 || fail "build fixture"

W=$T/weird                       # legal but hostile names and file types
mkdir -p "$W"
printf 'nl\n' >"$W/new"$'\n'"line"
printf 'bad\n' >"$W/bad"$'\xff\xfe'"utf8"
printf 'esc\n' >"$W/esc"$'\x1b'"[31mred"
printf 'ctl\n' >"$W/ctl"$'\x01\x7f'
N255=$(printf 'n%.0s' $(seq 1 255))
printf 'long\n' >"$W/$N255"
ln -s loop2 "$W/loop1"; ln -s loop1 "$W/loop2"; ln -s . "$W/self"
mkfifo "$W/fifo"
mknod "$W/nulldev" c 1 3
# a tree near PATH_MAX (4096): 15 levels of 250-byte names
C250=$(printf 'c%.0s' $(seq 1 250))
deep=$W; for i in $(seq 1 15); do deep=$deep/$C250; done
mkdir -p "$deep" && printf 'deep\n' >"$deep/f" || fail "deep tree"
echo "# deepest path in the store: $(( ${#deep} - ${#W} + 2 )) bytes"

NOTIDX=$T/notindex; mkdir -p "$NOTIDX"; echo hello >"$NOTIDX/readme"
EMPTY=$T/emptydir; mkdir -p "$EMPTY"
GARBAGE=$T/garbage; mkdir -p "$GARBAGE"; head -c 65536 /dev/urandom >"$GARBAGE/data.mdb"
TRUNC=$T/trunc; mkdir -p "$TRUNC"; head -c 4096 "$T/gidx/data.mdb" >"$TRUNC/data.mdb"
HALF=$T/half; mkdir -p "$HALF"; sz=$(stat -c %s "$T/gidx/data.mdb")
head -c $((sz / 2)) "$T/gidx/data.mdb" >"$HALF/data.mdb"
NEWER=$T/newer; cp -a "$T/gidx" "$NEWER"; "$TAMPER" "$NEWER" version=99 || fail "tamper version"
# LMDB's own headers crafted (craft_mdb.py): these once crashed every tool (SIGBUS)
for a in ksize dsize lower; do
	cp -a "$T/gidx" "$T/craft-$a"
	python3 "$(dirname "$0")/craft_mdb.py" "$T/craft-$a/data.mdb" "$a" || fail "craft $a"
done
BADBS=$T/badbs; cp -a "$T/gidx" "$BADBS"; "$TAMPER" "$BADBS" blocksize=3000 --reseal || fail "tamper bs"
FILE=$T/afile; echo x >"$FILE"
UNREAD=$T/unread; mkdir -p "$UNREAD/s"; echo secret >"$UNREAD/s/f"; chmod 700 "$UNREAD/s"
chmod 755 "$UNREAD"; chmod 711 "$T"
AS_NOBODY="setpriv --reuid=nobody --regid=nogroup --clear-groups"
GARBAGE_HIST=$T/garbage.jsonl; head -c 3000 /dev/urandom >"$GARBAGE_HIST"

# snapshot of every store: path, type, size, mode, mtime, sha256
snapshot() {
	local s
	for s in "$G" "$W" "$UNREAD"; do
		(cd "$s" && find . -printf '%p\0%y %s %m %T@\0' | xargs -0 -n 2 printf '%q %s\n' | sort
		 find . -type f -print0 | sort -z | xargs -0 sha256sum -b)
	done
}
snapshot >"$T/before.snap"

# ---- the runner -------------------------------------------------------------------
esc_md() { sed -e 's/|/\\|/g' -e "s#$T#\$T#g" -e 's/[^[:print:]]/?/g' | cut -c1-150; }

# row INPUT CMDLABEL WANT CMD... : run under timeout, check, add to the matrix.
row() {
	local input=$1 label=$2 want=$3; shift 3
	timeout "${ROW_TIMEOUT:-60}" "$@" </dev/null >"$T/row.out" 2>"$T/row.err"
	local got=$? lines msg
	lines=$(wc -l <"$T/row.err")
	msg=$(head -1 "$T/row.err" | esc_md)
	# rto prints a phase report first: show its "FAILED: <reason>" line
	if [ -n "${ROW_STDOUT:-}" ] && grep -q 'FAILED:' "$T/row.err" "$T/row.out"; then
		msg=$(cat "$T/row.err" "$T/row.out" | grep -m1 'FAILED:' | esc_md)
	fi
	echo "| $input | $label | $got | ${msg:-(none)} |" >>"$MATRIX"
	if [ "$got" != "$want" ]; then
		fail "$input / $label: exit $got, wanted $want: $(head -c 300 "$T/row.err")"
		return
	fi
	if [ "$got" -ge 124 ] || grep -qE 'Sanitizer|runtime error|Segmentation|core dumped' "$T/row.err"; then
		fail "$input / $label: crashed or hung"; return
	fi
	if [ "$want" = 2 ] && [ "$lines" != 1 ] && [ -z "${ROW_MULTI:-}" ]; then
		fail "$input / $label: $lines lines on stderr, wanted 1: $(head -c 300 "$T/row.err")"; return
	fi
	pass "$input / $label: exit $got"
}

# row_says TEXT: the last row's one line says it (fixed string)
row_says() { check "  ... says: $1" grep -qF -- "$1" "$T/row.err"; }

# the mount, which must refuse before mounting
mnt_row() {
	local input=$1 store=$2 idx=$3 want=$4 mnt=${5:-$T/mnt} extra=${6:-}
	mkdir -p "$T/mnt"
	row "$input" vbfs "$want" "$VBFS_BIN" -f -o "index=$idx${extra:+,$extra}" "$store" "$mnt"
	if mountpoint -q "$T/mnt"; then fusermount3 -u "$T/mnt"; fail "$input: vbfs mounted"; fi
}
sample_row() { row "$1" "vbfsctl sample" "$4" "$VBFSCTL" sample --store "$2" --index "$3" -n 2; }
rto_row() { ROW_STDOUT=1 ROW_MULTI=1 row "$1" "vbfsctl rto" "$4" "$VBFSCTL" rto --target 1h --store "$2" --index "$3" --restore true; }

# no half-written index: a refused build leaves no directory behind
build_row() {
	local input=$1 store=$2 want=$3; shift 3
	rm -rf "$T/newidx"
	row "$input" "vbfsctl build $*" "$want" "$VBFSCTL" build "$store" "$T/newidx" "$@"
	if [ "$want" = 2 ] && [ -e "$T/newidx" ] && [ -n "$(ls -A "$T/newidx" 2>/dev/null)" ]; then
		fail "$input: a refused build left files in the index directory: $(ls "$T/newidx")"
	fi
}

# ---- store inputs -----------------------------------------------------------------------
for s in missing file; do
	case $s in missing) st=$T/no-such-store;; file) st=$FILE;; esac
	build_row "store: $s" "$st" 2
	row "store: $s" "vbfsctl verify" 2 "$VBFSCTL" verify "$st" "$T/gidx"
	mnt_row "store: $s" "$st" "$T/gidx" 2
	sample_row "store: $s" "$st" "$T/gidx" 2
	rto_row "store: $s" "$st" "$T/gidx" 2
done
# unreadable to the user running the command (root reads everything: nobody)
rm -rf "$T/nbidx"; mkdir -m 777 "$T/nbidx"
row "store: unreadable (as nobody)" "vbfsctl build" 2 $AS_NOBODY "$VBFSCTL" build "$UNREAD/s" "$T/nbidx/i"
check "unreadable store: no index left" bash -c "[ ! -e '$T/nbidx/i' ] || [ -z \"\$(ls -A '$T/nbidx/i')\" ]"
cp -a "$T/gidx" "$T/nbidx/g"; chown -R nobody "$T/nbidx/g"
row "store: unreadable (as nobody)" "vbfsctl verify" 2 $AS_NOBODY "$VBFSCTL" verify "$UNREAD/s" "$T/nbidx/g"
row "index: unreadable (as nobody)" "vbfsctl verify" 2 $AS_NOBODY "$VBFSCTL" verify "$G" "$T/gidx"
row_says "$T/gidx/data.mdb: Permission denied"

# ---- index inputs ---------------------------------------------------------------------------
idx_cases=(
	"index: missing|$T/no-such-index"
	"index: a regular file|$FILE"
	"index: empty directory|$EMPTY"
	"index: a non-index directory|$NOTIDX"
	"index: garbage data.mdb|$GARBAGE"
	"index: data.mdb truncated to 4 KiB|$TRUNC"
	"index: data.mdb truncated to half|$HALF"
	"index: format version 99|$NEWER"
	"index: block size 3000 (resealed)|$BADBS"
	"index: an LMDB node's key size set to 0x7fff|$T/craft-ksize"
	"index: an LMDB node's data size set to 0x7fffffff|$T/craft-dsize"
	"index: an LMDB page's lower bound below its header|$T/craft-lower"
)
for c in "${idx_cases[@]}"; do
	input=${c%%|*}; idx=${c#*|}
	row "$input" "vbfsctl verify" 2 "$VBFSCTL" verify "$G" "$idx"
	row "$input" "vbfsctl export" 2 "$VBFSCTL" export "$idx" --format sha256sum
	mnt_row "$input" "$G" "$idx" 2
	sample_row "$input" "$G" "$idx" 2
	rto_row "$input" "$G" "$idx" 2
done
# build into something that is not an index: refuse, never overwrite
row "index: a non-index directory" "vbfsctl build" 2 "$VBFSCTL" build "$G" "$NOTIDX"
check "non-index directory untouched" bash -c "[ \"\$(ls '$NOTIDX')\" = readme ]"
row "index: garbage data.mdb" "vbfsctl build" 2 "$VBFSCTL" build "$G" "$GARBAGE"
row "index: a regular file" "vbfsctl build" 2 "$VBFSCTL" build "$G" "$FILE"
for a in ksize dsize lower; do   # the build reads the old index first: probed, refused
	row "index: crafted LMDB headers ($a)" "vbfsctl build" 2 "$VBFSCTL" build "$G" "$T/craft-$a"
done

# ---- block sizes ---------------------------------------------------------------------------------
for bs in 1K 2K 3000 128M 0 abc -4K 64K5; do
	build_row "block size $bs" "$G" 2 --block-size "$bs"
done
build_row "block size 4K (smallest)" "$G" 0 --block-size 4K
build_row "block size 64M (largest)" "$G" 0 --block-size 64M

# ---- hostile names and file types (legal: must work) ------------------------------------------------
build_row "store: newlines, invalid UTF-8, control chars, 255-byte names, PATH_MAX-deep tree, symlink loops, FIFO, device node" "$W" 0 --block-size 4K
cp -a "$T/newidx" "$T/widx"
row "same weird store" "vbfsctl verify" 0 "$VBFSCTL" verify "$W" "$T/widx"
row "same weird store" "vbfsctl export --format blocks" 0 "$VBFSCTL" export "$T/widx" --format blocks
check "export lists every file" [ "$(grep -c . "$T/row.out")" -ge 6 ]
row "same weird store" "vbfsctl sample" 0 "$VBFSCTL" sample --store "$W" --index "$T/widx" -n 8 --seed 1
vbfs_mount "$W" "$T/widx" "$T/wm" || fail "mount weird store"
if mountpoint -q "$T/wm"; then
	python3 - "$W" "$T/wm" <<'EOF' && pass "every entry identical: types, modes, sizes, targets, bytes" || fail "weird store differs through the mount"
import os, stat, sys
a, b = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
bad = 0
for d, dn, fn in os.walk(a):
    for n in dn + fn:
        p = os.path.join(d, n); q = os.path.join(b, os.path.relpath(p, a))
        s, t = os.lstat(p), os.lstat(q)
        if s.st_mode != t.st_mode or (stat.S_ISREG(s.st_mode) and s.st_size != t.st_size):
            print("differs:", q, file=sys.stderr); bad += 1
        elif stat.S_ISLNK(s.st_mode) and os.readlink(p) != os.readlink(q):
            print("target differs:", q, file=sys.stderr); bad += 1
        elif stat.S_ISREG(s.st_mode) and open(p, "rb").read() != open(q, "rb").read():
            print("bytes differ:", q, file=sys.stderr); bad += 1
sys.exit(1 if bad else 0)
EOF
	expect_eq "FIFO shown as a FIFO" fifo "$(stat -c %F "$T/wm/fifo")"
	expect_eq "device node shown as a device" "character special file" "$(stat -c %F "$T/wm/nulldev")"
	expect_eq "device numbers recorded" "1,3" "$(stat -c %t,%T "$T/wm/nulldev")"
	expect_eq "symlink loop target recorded" loop2 "$(readlink "$T/wm/loop1")"
	check "symlink loop: ELOOP, no hang" bash -c "! timeout 10 cat '$T/wm/loop1' 2>&1 | grep -qv 'Too many levels'"
	check "255-byte name readable" cmp -s "$W/$N255" "$T/wm/$N255"
	check "deep file readable" cmp -s "$deep/f" "$T/wm/${deep#$W/}/f"
	vbfs_umount "$T/wm"
	expect_eq "weird store mount exit" 0 "$VBFS_STATUS"
fi
echo "| same weird store | vbfs, every entry compared | ${VBFS_STATUS:-?} | (none) |" >>"$MATRIX"

# damage a weird-named file: events must escape the name
DW=$T/weird-damaged; cp -a "$W" "$DW"
printf 'NL\n' >"$DW/new"$'\n'"line"; printf 'BAD\n' >"$DW/bad"$'\xff\xfe'"utf8"
row "weird store, two weird-named files damaged" "vbfsctl verify --json" 1 "$VBFSCTL" verify "$DW" "$T/widx" --json
python3 - "$T/row.out" <<'EOF' && pass "verify --json escapes newlines and gives path_hex for invalid UTF-8" || fail "event escaping"
import json, sys
doc = json.load(open(sys.argv[1]))
paths = {e["path"]: e for e in doc["events"]}
assert "new\nline" in paths, paths.keys()
bad = [e for e in doc["events"] if "path_hex" in e]
assert bad and bytes.fromhex(bad[0]["path_hex"]) == b"bad\xff\xfeutf8", bad
EOF
check "the JSON text has no raw control character" bash -c "! grep -qP '[\x00-\x08\x0b-\x1f]' '$T/row.out'"
check "stderr lines escape the newline (2 findings + summary = 3 lines)" bash -c "[ \$(wc -l <'$T/row.err') = 3 ]"
vbfs_mount "$DW" "$T/widx" "$T/wm2" && {
	cat "$T/wm2/new"$'\n'"line" "$T/wm2/bad"$'\xff\xfe'"utf8" >/dev/null 2>&1
	vbfs_umount "$T/wm2"
	check "mount log: 2 events, one JSON object per line" bash -c "[ \$(wc -l <'$T/wm2.log') = 2 ] && python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' '$T/wm2.log'"
}

# ---- paths deeper than PATH_MAX -----------------------------------------------------------------------
X=$T/toodeep; mkdir -p "$X"
(cd "$X" && for i in $(seq 1 18); do mkdir "$C250" && cd "$C250"; done && echo deep >f) || fail "too-deep tree"
# Recorded as unreadable (ENAMETOOLONG): damage, exit 1, named on stderr.
ROW_MULTI=1 build_row "store: a path longer than PATH_MAX (4,5xx bytes)" "$X" 1
ROW_MULTI=1 row "same" "vbfsctl verify" 1 "$VBFSCTL" verify "$X" "$T/newidx"

# ---- mountpoints ----------------------------------------------------------------------------------------
mnt_row "mountpoint: missing" "$G" "$T/gidx" 2 "$T/no-such-mnt"
mnt_row "mountpoint: a regular file" "$G" "$T/gidx" 2 "$FILE"
vbfs_mount "$G" "$T/gidx" "$T/busy" || fail "mount for busy test"
# (a stacked second mount was bugs-hardening.md #4; short timeout in case it regresses)
ROW_TIMEOUT=5 mnt_row "mountpoint: busy (a vbfs is mounted there)" "$G" "$T/gidx" 2 "$T/busy"
while [ "$(grep -c " $T/busy " /proc/mounts)" -gt 1 ]; do fusermount3 -u "$T/busy" || break; done
check "the first mount still works" cmp -s "$G/a.bin" "$T/busy/a.bin"
vbfs_umount "$T/busy"
mnt_row "-o unindexed=maybe" "$G" "$T/gidx" 2 "$T/mnt" "unindexed=maybe"
row "no -o index" vbfs 2 "$VBFS_BIN" -f "$G" "$T/mnt"
mkdir -p "$T/full-mnt"; echo keep >"$T/full-mnt/precious"
mnt_row "mountpoint: not empty" "$G" "$T/gidx" 2 "$T/full-mnt"
row_says "mountpoint $T/full-mnt: not empty (its files would be hidden; -o nonempty mounts anyway)"
mnt_row "mountpoint: the store itself" "$G" "$T/gidx" 2 "$G"
row_says "mountpoint $G: is the store or inside it"
mnt_row "mountpoint: a directory inside the store" "$G" "$T/gidx" 2 "$G/d"
row_says "mountpoint $G/d: is the store or inside it"
check "the non-empty mountpoint kept its file" test "$(cat "$T/full-mnt/precious")" = keep
if vbfs_mount "$G" "$T/gidx" "$T/full-mnt" nonempty; then
	pass "-o nonempty mounts over a non-empty directory"
	check "  ... and serves the store there" cmp -s "$G/a.bin" "$T/full-mnt/a.bin"
	vbfs_umount "$T/full-mnt"
else
	fail "-o nonempty mounts over a non-empty directory"
fi
mnt_row "-o index=nonexist" "$G" "$T/no-such-index" 2
row_says "vbfs: index $T/no-such-index: No such file or directory"
row "index: missing, named" "vbfsctl verify" 2 "$VBFSCTL" verify "$G" "$T/no-such-index"
row_says "vbfsctl: index $T/no-such-index: No such file or directory"
ROW_MULTI=1 row "no arguments" vbfs 2 "$VBFS_BIN"

# ---- other commands' own inputs ------------------------------------------------------------------------------
row "history: missing" "vbfsctl report" 2 "$VBFSCTL" report --history "$T/no-such.jsonl" --html "$T/r.html"
# every line is skipped with a warning; an empty history is not an error
row "history: random bytes" "vbfsctl report" 0 "$VBFSCTL" report --history "$GARBAGE_HIST" --html "$T/r.html"
row "history: random bytes" "vbfsctl rto --trend" 0 "$VBFSCTL" rto --trend --history "$GARBAGE_HIST"
row "key path in a missing directory" "vbfsctl keygen" 2 "$VBFSCTL" keygen "$T/no/dir/k" "$T/no/dir/p"
row "verify key: random bytes" "vbfsctl verify --verify-key" 2 "$VBFSCTL" verify "$G" "$T/gidx" --verify-key "$GARBAGE_HIST"
row "sign key: random bytes" "vbfsctl build --sign-key" 2 "$VBFSCTL" build "$G" "$T/sidx" --sign-key "$GARBAGE_HIST"
check "refused signed build left no index" bash -c "[ ! -e '$T/sidx' ] || [ -z \"\$(ls -A '$T/sidx')\" ]"
row "export: unknown format" "vbfsctl export" 2 "$VBFSCTL" export "$T/gidx" --format xml
row "unknown subcommand" "vbfsctl frobnicate" 2 "$VBFSCTL" frobnicate
: >"$T/empty.jsonl"
row "report --html into a missing directory" "vbfsctl report" 2 "$VBFSCTL" report --history "$T/empty.jsonl" --html "$T/no/dir/r.html"
row_says "vbfsctl: report: $T/no/dir/r.html: No such file or directory"
check "  ... and no temp-file name" bash -c "! grep -q '\.tmp' '$T/row.err'"
row "verify STORE INDEX extra" "vbfsctl verify" 2 "$VBFSCTL" verify "$G" "$T/gidx" extra
row_says "unexpected argument 'extra'"
row "sample -n -3" "vbfsctl sample" 2 "$VBFSCTL" sample --store "$G" --index "$T/gidx" -n -3
row_says "-n -3: must be >= 1"
row "rto --target 0" "vbfsctl rto" 2 "$VBFSCTL" rto --target 0 --restore true
row_says "--target: must be more than 0 seconds"
row "rto --target 1m1h (units out of order)" "vbfsctl rto" 2 "$VBFSCTL" rto --target 1m1h --restore true
row_says "--target 1m1h: not a duration like 3600, 90s, 45m or 1h30m"
row "sample --rto 0" "vbfsctl sample" 2 "$VBFSCTL" sample --store "$G" --index "$T/gidx" --rto 0
row "sample --mount on a plain directory" "vbfsctl sample" 2 "$VBFSCTL" sample --mount "$NOTIDX" --index "$T/gidx"
row_says "sample: $NOTIDX: not a vbfs mount"
ln -s "$T/elsewhere.jsonl" "$T/hist-link.jsonl"
ROW_MULTI=1 row "rto --history: a symlink" "vbfsctl rto" 2 "$VBFSCTL" rto --target 1h --restore true --history "$T/hist-link.jsonl"
row_says "$T/hist-link.jsonl: a symbolic link (not followed)"
check "  ... nothing written through it" test ! -e "$T/elsewhere.jsonl"
ln -s "$T/elsewhere.prom" "$T/prom-link.prom"
ROW_MULTI=1 row "rto --metrics: a symlink" "vbfsctl rto" 2 "$VBFSCTL" rto --target 1h --restore true --metrics "$T/prom-link.prom"
row_says "$T/prom-link.prom: a symbolic link (not followed)"
check "  ... the link is left as it was" test "$(readlink "$T/prom-link.prom")" = "$T/elsewhere.prom"
ln -s "$T/elsewhere.log" "$T/log-link.jsonl"
mnt_row "-o log=a symlink" "$G" "$T/gidx" 2 "$T/mnt" "log=$T/log-link.jsonl"
row_says "vbfs: log $T/log-link.jsonl: a symbolic link (not followed)"
check "  ... nothing written through it" test ! -e "$T/elsewhere.log"
"$VBFSCTL" keygen "$T/sk" "$T/pk" >/dev/null 2>&1 && chmod 640 "$T/sk"
row "sign key readable by its group" "vbfsctl build --sign-key" 2 "$VBFSCTL" build "$G" "$T/sidx2" --sign-key "$T/sk"
row_says "secret key is accessible to group or others (mode 0640): chmod 600 it"
ROW_MULTI=1 row "no arguments (usage)" vbfsctl 2 "$VBFSCTL"
# An index for another store: a configuration error (exit 2), not damage.
row "index of another store" "vbfsctl verify" 2 "$VBFSCTL" verify "$W" "$T/gidx"
row_says "vbfsctl: verify: index $T/gidx is not for store $W: 0 of the 2 top-level entries it recorded are there (--allow-store-mismatch checks it anyway)"
mnt_row "index of another store" "$W" "$T/gidx" 2
row_says "vbfs: index $T/gidx is not for store $W: 0 of the 2 top-level entries it recorded are there (-o allow_store_mismatch mounts it anyway)"
row "index of another store, --allow-store-mismatch" "vbfsctl verify" 1 "$VBFSCTL" verify "$W" "$T/gidx" --allow-store-mismatch

# ---- repair, merge, shards, parity, reuse: the second round's commands ----------------------------------------------
# (found in review: repair --output STORE and build --parity-dir STORE wrote into the store)
cp -a "$G" "$T/grep"   # a replica of the good store
row "repair: no source" "vbfsctl repair" 2 "$VBFSCTL" repair "$G" "$T/gidx"
row "repair: the replica is the store" "vbfsctl repair --apply" 2 "$VBFSCTL" repair "$G" "$T/gidx" --replica "$G" --apply
row_says "vbfsctl: repair: replica $G: is the store itself"
row "repair: --output is the store" "vbfsctl repair" 2 "$VBFSCTL" repair "$G" "$T/gidx" --replica "$T/grep" --output "$G"
row_says "vbfsctl: repair: output $G: must not be inside the store"
row "repair: index of another store" "vbfsctl repair --apply" 2 "$VBFSCTL" repair "$W" "$T/gidx" --replica "$T/grep" --apply
row "repair: a replica that does not exist" "vbfsctl repair" 2 "$VBFSCTL" repair "$G" "$T/gidx" --replica "$T/no-such-replica"
build_row "--parity-dir is the store" "$G" 2 --parity 4+2 --parity-dir "$G"
build_row "--parity 0+0" "$G" 2 --parity 0+0
build_row "--parity 300+300" "$G" 2 --parity 300+300
build_row "--reuse a missing index" "$G" 2 --reuse "$T/no-such-index"
row "verify --shard 3/2" "vbfsctl verify" 2 "$VBFSCTL" verify "$G" "$T/gidx" --shard 3/2
row "verify --report in a missing directory" "vbfsctl verify" 2 "$VBFSCTL" verify "$G" "$T/gidx" --report "$T/no/dir/r.json"
row "verify --report inside the store" "vbfsctl verify" 2 "$VBFSCTL" verify "$G" "$T/gidx" --report "$G/d/r.json"
"$VBFSCTL" verify "$G" "$T/gidx" --shard 0/2 --report "$T/shard0.json" >/dev/null 2>&1
head -c 200 "$T/shard0.json" >"$T/shard0-cut.json"
row "merge: the same shard twice" "vbfsctl merge" 2 "$VBFSCTL" merge "$T/shard0.json" "$T/shard0.json"
row "merge: a truncated report" "vbfsctl merge" 2 "$VBFSCTL" merge "$T/shard0-cut.json"
mnt_row "-o replica= a missing directory" "$G" "$T/gidx" 2 "$T/mnt" "replica=$T/no-such-replica"
mnt_row "-o replica= the store" "$G" "$T/gidx" 2 "$T/mnt" "replica=$G"

# ---- nothing was written to any store ------------------------------------------------------------------------------
snapshot >"$T/after.snap"
if cmp -s "$T/before.snap" "$T/after.snap"; then pass "no store changed (paths, sizes, modes, mtimes, contents)"
else fail "a store changed: $(diff "$T/before.snap" "$T/after.snap" | head -5)"; fi

echo
cat "$MATRIX"
if [ -n "${VBFS_REPORT_DIR:-}" ]; then mkdir -p "$VBFS_REPORT_DIR"; cp "$MATRIX" "$VBFS_REPORT_DIR/badinput_matrix.md"; fi
finish
