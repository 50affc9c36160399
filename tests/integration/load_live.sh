#!/bin/bash
# load_live.sh - the store changes under a live mount, while files are open
# and 8 readers hammer other files: truncated, overwritten in place,
# replaced (rename over), grown, deleted, turned into a directory.
# Each change is detected per block (or once per file) exactly as expected,
# every byte served is the original, and the daemon neither crashes nor hangs.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
BS=65536
S=$T/store
mkdir -p "$S/live" "$S/load"
for f in trunc inplace replaced grown deleted type; do
	make_file "$S/live/$f.bin" 3 "live-$f"
	truncate -s $((40 * BS + 1000)) "$S/live/$f.bin"     # 41 blocks, the last short
done
for i in 1 2 3 4; do make_file "$S/load/l$i.bin" 4 "load-$i"; done
cp -a "$S" "$T/pristine"
expect_status "build" 0 "$VBFSCTL" build "$S" "$T/idx" --block-size 64K
cc -O2 -pthread -o "$T/randread" "$HERE/randread.c" || fail "compile randread"
(cd "$T/pristine" && ls load/*) >"$T/list.txt"
: >"$T/none.tsv"

vbfs_mount "$S" "$T/idx" "$T/m" || { fail mount; finish; exit; }
PID=$VBFS_PID
timeout 60 "$T/randread" "$T/m" "$T/pristine" "$T/list.txt" "$T/none.tsv" $BS 8 8 1 >"$T/rr.json" 2>"$T/rr.err" &
RR=$!

timeout 60 python3 - "$S" "$T/m" "$T/pristine" $BS <<'EOF' >"$T/live.out" 2>&1
import errno, os, sys
store, mnt, orig, bs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
bad = 0
def block(path, b):
    with open(os.path.join(orig, path), "rb") as f:
        f.seek(b * bs); return f.read(bs)
def expect_ok(fd, path, b, what):
    global bad
    try:
        got = os.pread(fd, bs, b * bs)
    except OSError as e:
        print("FAIL %s: block %d: %s" % (what, b, e)); bad += 1; return
    if got != block(path, b):
        print("FAIL %s: block %d: WRONG BYTES" % (what, b)); bad += 1
    else:
        print("ok %s: block %d served the original" % (what, b))
def expect_eio(fd, b, what):
    global bad
    try:
        os.pread(fd, bs, b * bs)
        print("FAIL %s: block %d read, wanted EIO" % (what, b)); bad += 1
    except OSError as e:
        if e.errno == errno.EIO: print("ok %s: block %d EIO" % (what, b))
        else: print("FAIL %s: block %d errno %d" % (what, b, e.errno)); bad += 1
M = lambda p: os.path.join(mnt, p)
# O_DIRECT: no kernel readahead, so a block is verified when this script
# asks for it (vbfs's own read-ahead verifies a few blocks past block 0-2,
# which is why the blocks changed below are far from those read before).
D = os.O_RDONLY | os.O_DIRECT
St = lambda p: os.path.join(store, p)

# truncated mid-block while open
p = "live/trunc.bin"; fd = os.open(M(p), D)
for b in range(3): expect_ok(fd, p, b, "truncate before")
os.truncate(St(p), 30 * bs + 5000)
for b in range(30, 41): expect_eio(fd, b, "truncated")
for b in range(20, 30): expect_ok(fd, p, b, "truncated, intact part")
os.close(fd)

# overwritten in place while open
p = "live/inplace.bin"; fd = os.open(M(p), D)
expect_ok(fd, p, 0, "in-place before")
w = os.open(St(p), os.O_WRONLY); os.pwrite(w, b"\xff", 30 * bs + 77); os.close(w)
expect_eio(fd, 30, "in-place flipped")
expect_ok(fd, p, 31, "in-place neighbour")
os.close(fd)

# replaced (rename over) while open.  The kernel opens files itself
# (no_open): the daemon sees READs, not opens, and each READ reads the store
# file the path names now.  Another store inode is another file to the
# block cache (fs/ops.c: cache_id), so every block read after the change is
# read from the new file and fails, old open file or new.
p = "live/replaced.bin"; fd1 = os.open(M(p), D)
expect_ok(fd1, p, 0, "replace before")
with open(St(p) + ".new", "wb") as f: f.write(os.urandom(40 * bs + 1000))
os.rename(St(p) + ".new", St(p))
expect_eio(fd1, 1, "replaced, old open file")
fd2 = os.open(M(p), D)
expect_eio(fd2, 30, "replaced, new open")
expect_eio(fd2, 0, "replaced, block verified before")
os.close(fd1); os.close(fd2)

# grown while open: indexed bytes still serve; `changed` once a new open reads
p = "live/grown.bin"; fd = os.open(M(p), D)
expect_ok(fd, p, 0, "grow before")
with open(St(p), "ab") as f: f.write(b"more" * 5000)
expect_ok(fd, p, 1, "grown, open file")
os.close(fd)
fd = os.open(M(p), D)
expect_ok(fd, p, 30, "grown, new open")
expect_ok(fd, p, 40, "grown, last indexed block")
if os.fstat(fd).st_size != 40 * bs + 1000: print("FAIL grown: size changed in the mount"); bad += 1
os.close(fd)

# deleted while open: every read after the deletion is `missing` (the
# daemon reads the store as it is now, open file or not)
p = "live/deleted.bin"; fd1 = os.open(M(p), D)
expect_ok(fd1, p, 0, "delete before")
os.unlink(St(p))
expect_eio(fd1, 1, "deleted, old open file")
fd2 = os.open(M(p), D)
expect_eio(fd2, 30, "deleted, new open")
os.close(fd1); os.close(fd2)

# turned into a directory
p = "live/type.bin"
os.unlink(St(p)); os.mkdir(St(p))
fd = os.open(M(p), D)
expect_eio(fd, 0, "now a directory")
os.close(fd)
sys.exit(1 if bad else 0)
EOF
RC=$?
grep -c '^ok' "$T/live.out" | sed 's/^/# live steps ok: /'
grep FAIL "$T/live.out" >&2
expect_eq "live changes: every step as expected" 0 "$RC"
wait "$RR"
expect_eq "concurrent readers during the changes" 0 "$?"
echo "# readers: $(cat "$T/rr.json")"
check "daemon alive" kill -0 "$PID"
vbfs_umount "$T/m"
expect_eq "vbfs exit" 1 "$VBFS_STATUS"
python3 - "$T/m.log" <<'EOF' && pass "mount log: exactly the expected events" || fail "mount log differs"
import json, sys
want = {("live/trunc.bin", b, "missing") for b in range(30, 41)}
maybe = set()
want |= {("live/replaced.bin", b, "corrupt") for b in (0, 1, 30)}
want |= {("live/inplace.bin", 30, "corrupt"), ("live/replaced.bin", 30, "corrupt"),
         ("live/grown.bin", -1, "changed"), ("live/deleted.bin", -1, "missing"),
         ("live/type.bin", -1, "changed")}
got = [(e["path"], e.get("block", -1), e["event"]) for e in map(json.loads, open(sys.argv[1]))]
extra = [g for g in got if g not in want and g not in maybe]
missed = want - set(got)
dups = len(got) - len(set(got))
for x in extra: print("unexpected:", x, file=sys.stderr)
for x in sorted(missed, key=str): print("missed:", x, file=sys.stderr)
if dups: print("duplicates:", dups, file=sys.stderr)
sys.exit(1 if extra or missed or dups else 0)
EOF
finish
