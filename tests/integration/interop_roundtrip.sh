#!/bin/bash
# interop_roundtrip.sh - manifests in and out, checked by the tools that own
# the formats: the seed article's own Python classes (extracted from the
# article at run time), coreutils `sha256sum -c`, and vbfs itself
# (`build --against` on an export, damage found, the mount refusing it).
. "$(dirname "$0")/lib.sh"

SHARED=${VBFS_SHARED:-$VBFS_SRC/../shared}
ARTICLE=$SHARED/seed/backup-verification-testing.md
[ -f "$ARTICLE" ] || skip "seed article not found at $ARTICLE"
PY=$(command -v python3) || skip "python3 not installed"
command -v sha256sum >/dev/null || skip "sha256sum not installed"

# The article's python blocks that define a class, as importable modules.
extract() { # CLASS OUT
	awk -v cls="class $1" '
		/^```python/ { inb = 1; buf = ""; next }
		/^```/ && inb { if (index(buf, cls)) printf "%s", buf; inb = 0; next }
		inb { buf = buf $0 "\n" }' "$ARTICLE" >"$2"
	grep -q "class $1" "$2"
}
check "extract BackupChecksumManager from the article" extract BackupChecksumManager "$T/seedmanifest.py"
check "extract BlockLevelVerifier from the article" extract BlockLevelVerifier "$T/seedblocks.py"
export PYTHONPATH=$T PYTHONDONTWRITEBYTECODE=1

S=$T/store; I=$T/index; M=$T/manifests; ID=daily-2026-11-26
mkdir -p "$S/db" "$S/etc/deep/er" "$M"
make_file "$S/db/app.dump" 3
head -c 1048576 /dev/zero >"$S/db/exactly-one-block"
: >"$S/empty"
printf 'hello\n' >"$S/etc/deep/er/hello.txt"
touch -d '2020-01-02 03:04:05.999999999' "$S/etc/deep/er/hello.txt"    # rounds up to :06
touch -d '2020-01-02 03:04:05.0000005' "$S/empty"
printf 'café\n' >"$S/etc/café ☕.txt"
printf 'odd\n' >"$S/etc/back\\slash"
printf 'nl\n' >"$S/etc/new"$'\n'"line"
printf 'raw\n' >"$S/etc/latin1-"$'\xe9'
ln -s db/app.dump "$S/link"
NFILES=8

# --- out: export, and the owners of the formats accept it --------------------
expect_status "build --file-digests" 0 "$VBFSCTL" build "$S" "$I" --file-digests --backup-id "$ID"
expect_status "export manifest" 0 "$VBFSCTL" export "$I" --format manifest --output "$M/$ID.json"
expect_eq "no temp file left by --output" "$ID.json" "$(ls "$M")"
expect_status "export sha256sum" 0 "$VBFSCTL" export "$I" --format sha256sum --output "$T/sums"
expect_status "export blocks" 0 "$VBFSCTL" export "$I" --format blocks --output "$T/blocks.json"
"$VBFSCTL" export "$I" --format sha256sum >"$T/sums.stdout"
check "export to stdout equals --output" cmp -s "$T/sums" "$T/sums.stdout"
expect_eq "sha256sum list has every regular file" "$NFILES" "$(grep -c '  ' "$T/sums")"

expect_status "sha256sum -c passes on the exported list" 0 \
	bash -c "cd '$S' && sha256sum --strict -c '$T/sums'"

cat >"$T/seed_verify.py" <<'EOF'
import hashlib, json, sys
from seedmanifest import BackupChecksumManager
store, mdir, bid, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
man = json.load(open(f"{mdir}/{bid}.json"))
# the manifest's own checksum, recomputed the way generate_manifest made it
want = hashlib.sha256(json.dumps(man["files"], sort_keys=True).encode()).hexdigest()
assert man["manifest_checksum"] == want, (man["manifest_checksum"], want)
assert man["backup_id"] == bid and man["algorithm"] == "sha256"
assert set(man) == {"backup_id", "created_at", "algorithm", "files", "manifest_checksum"}
import datetime, os
for f in man["files"]:
    assert set(f) == {"path", "checksum", "size", "modified"}, f
    if len(sys.argv) > 5:   # before any damage: the values generate_manifest would write
        st = os.stat(os.path.join(store, f["path"]))
        assert f["size"] == st.st_size, f
        assert f["modified"] == datetime.datetime.fromtimestamp(st.st_mtime).isoformat(), f
r = BackupChecksumManager(store, mdir).verify_backup(bid)
print(json.dumps(r, sort_keys=True))
sys.exit(0 if r["success"] and r["verified_files"] == n else 1)
EOF
expect_status "the seed's verify_backup accepts the exported manifest (sizes, mtimes as it writes them)" 0 \
	"$PY" "$T/seed_verify.py" "$S" "$M" "$ID" "$NFILES" meta

cat >"$T/seed_blocks.py" <<'EOF'
import json, sys
from pathlib import Path
from seedblocks import BlockLevelVerifier, BlockChecksum
store, doc = Path(sys.argv[1]), json.load(open(sys.argv[2]))
v = BlockLevelVerifier(block_size=doc["block_size"])
bad = 0
for path, blocks in doc["files"].items():
    p = store / path
    # the same list the article's generate_block_checksums writes
    mine = [{"block": c.block_number, "offset": c.offset, "size": c.size,
             "checksum": c.checksum} for c in v.generate_block_checksums(p)]
    if mine != blocks:
        print("differs:", path); bad += 1
    exp = [BlockChecksum(b["block"], b["offset"], b["size"], b["checksum"]) for b in blocks]
    r = v.verify_file_parallel(p, exp)
    if not r["success"]:
        print(json.dumps(r)); bad += 1
print(len(doc["files"]), "files")
sys.exit(1 if bad else 0)
EOF
expect_status "the seed's BlockLevelVerifier accepts the exported block lists" 0 \
	"$PY" "$T/seed_blocks.py" "$S" "$T/blocks.json"

# --- in: the seed's own generate_manifest, and our export, anchor a build -----
cat >"$T/seed_generate.py" <<'EOF'
import sys
from seedmanifest import BackupChecksumManager
BackupChecksumManager(sys.argv[1], sys.argv[2]).generate_manifest(sys.argv[3])
EOF
mkdir -p "$T/gen"
check "the seed's generate_manifest runs" "$PY" "$T/seed_generate.py" "$S" "$T/gen" "$ID"
expect_status "build --against the seed's own manifest" 0 \
	"$VBFSCTL" build "$S" "$T/i-gen" --against "$T/gen/$ID.json" --json
check "--against reports every file listed" grep -q '"listed":[[:space:]]*'"$NFILES" "$T/last.out"
expect_status "build --against the exported manifest" 0 "$VBFSCTL" build "$S" "$T/i-m" --against "$M/$ID.json"
expect_status "build --against the exported sha256sum list" 0 "$VBFSCTL" build "$S" "$T/i-s" --against "$T/sums"

# --- a manifest that was edited is refused -------------------------------------
sed 's/"size": 6,/"size": 7,/' "$M/$ID.json" >"$T/edited.json"
check "edit took" bash -c "! cmp -s '$M/$ID.json' '$T/edited.json'"
expect_status "edited manifest refused" 2 "$VBFSCTL" build "$S" "$T/i-e" --against "$T/edited.json"
check "refusal names manifest_checksum" grep -q "manifest_checksum does not match" "$T/last.err"
expect_status "refusal wrote no index" 1 test -e "$T/i-e/data.mdb"

# --- damage after the backup: every tool agrees --------------------------------
ORIG=$(sha256sum <"$S/db/app.dump" | cut -c1-64)
flip_byte "$S/db/app.dump" 1572864
NOW=$(sha256sum <"$S/db/app.dump" | cut -c1-64)
expect_status "sha256sum -c fails on the damaged store" 1 bash -c "cd '$S' && sha256sum -c --quiet '$T/sums'"
check "sha256sum names the file" grep -q '^db/app.dump: FAILED' "$T/last.out"
expect_status "the seed's verify_backup fails on the damaged store" 1 \
	"$PY" "$T/seed_verify.py" "$S" "$M" "$ID" "$NFILES"
check "seed reports db/app.dump failed" grep -q '"failed_files": \[{"actual": "'"$NOW"'", "expected": "'"$ORIG"'", "path": "db/app.dump"}\]' "$T/last.out"

expect_status "build --against finds the damage" 1 \
	"$VBFSCTL" build "$S" "$T/i-d" --against "$M/$ID.json" --json
"$PY" - "$T/last.out" "$ORIG" "$NOW" >"$T/ev.txt" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
ev = [e for e in d["events"] if e["event"] == "corrupt"]
assert len(ev) == 1, ev
e = ev[0]
assert e["path"] == "db/app.dump" and e["expected"] == sys.argv[2] and e["actual"] == sys.argv[3], e
assert d["ok"] is False and d["against"]["mismatched"] == 1, d
print("ok")
EOF
expect_eq "corrupt event carries the whole-file digests" ok "$(cat "$T/ev.txt")"
check "stderr names the damaged file" grep -q "db/app.dump" "$T/last.err"

expect_status "export of the anchored index leaves the damaged file out" 1 \
	"$VBFSCTL" export "$T/i-d" --format sha256sum --output "$T/sums-d"
check "export says which file it left out" grep -q "left out 'db/app.dump'" "$T/last.err"
expect_eq "the other files are exported" "$((NFILES - 1))" "$(grep -c '  ' "$T/sums-d")"

# The mount does not certify what the manifest disowned.
if vbfs_mount "$S" "$T/i-d" "$T/mnt"; then
	expect_status "reading the damaged file through the mount fails" 1 cat "$T/mnt/db/app.dump"
	check "with EIO" grep -q "Input/output error" "$T/last.err"
	expect_eq "other files read back exactly" "hello" "$(cat "$T/mnt/etc/deep/er/hello.txt")"
	vbfs_umount "$T/mnt"
	expect_eq "the mount exits 1 after damage" 1 "$VBFS_STATUS"
	check "the mount logged the damaged file" grep -q '"path":"db/app.dump"' "$T/mnt.log"
else
	fail "mount the anchored index"
fi

# A listed file that vanished is damage too.
rm "$S/etc/deep/er/hello.txt"
expect_status "build --against reports a missing file" 1 "$VBFSCTL" build "$S" "$T/i-x" --against "$T/sums" --json
check "as a missing event" grep -q '"event":[[:space:]]*"missing"' "$T/last.out"

# --- usage and operational errors -----------------------------------------------
expect_status "export of an index without file digests" 2 bash -c \
	"'$VBFSCTL' build '$S' '$T/i-nod' >/dev/null 2>&1; '$VBFSCTL' export '$T/i-nod' --format manifest"
expect_eq "says how to fix it" "vbfsctl: export: index has no whole-file digests: rebuild with --file-digests" \
	"$(cat "$T/last.err")"
expect_status "blocks export needs no file digests" 0 "$VBFSCTL" export "$T/i-nod" --format blocks --output "$T/b2"
# A signed index: export checks the signature when given a key.
"$VBFSCTL" keygen "$T/k1.sec" "$T/k1.pub" 2>/dev/null && "$VBFSCTL" keygen "$T/k2.sec" "$T/k2.pub" 2>/dev/null
expect_status "build --sign-key" 0 "$VBFSCTL" build "$S" "$T/i-sig" --file-digests --sign-key "$T/k1.sec"
expect_status "export --verify-key with the right key" 0 "$VBFSCTL" export "$T/i-sig" --format sha256sum --verify-key "$T/k1.pub"
expect_status "export --verify-key with a wrong key" 2 "$VBFSCTL" export "$T/i-sig" --format sha256sum --verify-key "$T/k2.pub"
expect_eq "a refused export writes nothing on stdout" "" "$(cat "$T/last.out")"
expect_status "export: bad format" 2 "$VBFSCTL" export "$I" --format xml
expect_status "export: no such index" 2 "$VBFSCTL" export "$T/nope" --format blocks
expect_status "export: unwritable output" 2 "$VBFSCTL" export "$I" --format blocks --output "$T/nodir/x"
expect_status "against: not a manifest" 2 bash -c "echo hello >'$T/junk'; '$VBFSCTL' build '$S' '$T/i-j' --against '$T/junk'"
expect_status "against: no such file" 2 "$VBFSCTL" build "$S" "$T/i-j" --against "$T/none"

finish
