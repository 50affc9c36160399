#!/usr/bin/env bash
# snap_odd.sh - files read other ways than read(2): mmap (Python), SQLite
# with immutable=1, an executable run from the mount.  Each gets verified
# bytes; a damaged page is never mapped (SIGBUS, not wrong bytes), a damaged
# executable does not run, and the events name path, block and offset.
. "$(dirname "$0")/lib.sh"
need jq; need python3

MiB=1048576
S=$T/store IDX=$T/index M=$T/mnt
mkdir -p "$S/bin" "$S/db"
cp /bin/echo "$S/bin/echo"
cp /bin/echo "$S/bin/echo.bad"
make_file "$S/map.bin" 3 map
python3 - "$S/db/app.sqlite" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("create table t (id integer primary key, v text)")
db.executemany("insert into t (v) values (?)", (("row %d" % i,) for i in range(20000)))
db.commit()
db.execute("pragma journal_mode=delete")
db.close()
EOF
expect_status "build at 64 KiB blocks" 0 "$VBFSCTL" build "$S" "$IDX" --block-size 64K
# Damage after indexing: map.bin block 20 (offset 1.25 MiB), echo.bad block 0.
cp "$S/map.bin" "$T/map.good"
flip_byte "$S/map.bin" $((20 * 65536 + 9))
flip_byte "$S/bin/echo.bad" 100

vbfs_mount "$S" "$IDX" "$M" || { fail "mount"; finish; exit; }
expect_eq "an executable runs from the mount" "hello from vbfs" "$("$M/bin/echo" hello from vbfs)"
expect_status "a damaged executable does not run" 126 "$M/bin/echo.bad" hi
mmap_read() {
	python3 - "$1" "$2" "$3" <<'EOF'
import hashlib, mmap, sys
with open(sys.argv[1], "rb") as f:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    print(hashlib.sha256(m[int(sys.argv[2]):int(sys.argv[3])]).hexdigest())
EOF
}
expect_eq "mmap of the blocks before the damage" \
	"$(head -c $((20 * 65536)) "$T/map.good" | sha256sum | cut -d' ' -f1)" \
	"$(mmap_read "$M/map.bin" 0 $((20 * 65536)))"
expect_status "mmap of the damaged block: SIGBUS, never the bytes" 135 \
	python3 -c 'import mmap,sys; f=open(sys.argv[1],"rb"); m=mmap.mmap(f.fileno(),0,access=mmap.ACCESS_READ); print(m[20*65536+9])' "$M/map.bin"
expect_eq "SQLite immutable=1 through the mount" "ok 20000 row 19999" \
	"$(python3 -c '
import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?immutable=1", uri=True)
print(db.execute("pragma integrity_check").fetchone()[0],
      db.execute("select count(*) from t").fetchone()[0],
      db.execute("select v from t order by id desc limit 1").fetchone()[0])' "$M/db/app.sqlite")"
vbfs_umount "$M"
expect_eq "damage: unmount exit 1" 1 "$VBFS_STATUS"
expect_eq "events: the executable's block 0 and map.bin's block 20" \
	"corrupt bin/echo.bad 0 0
corrupt map.bin 20 1310720" \
	"$(jq -r '"\(.event) \(.path) \(.block) \(.offset)"' "$M.log" | sort)"
finish
