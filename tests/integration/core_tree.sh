#!/usr/bin/env bash
# core_tree.sh - awkward trees and the `changed` event.
#
# A directory bigger than one readdir reply, a 255-byte name, a deep path,
# names with a newline, a tab, a backslash and invalid UTF-8, hard links;
# then entries that changed type, a symlink retargeted, a grown file: what
# the mount serves, what it logs (one parseable JSON line per event, raw
# bytes never written), no hang on a FIFO, and that `vbfsctl verify` agrees.
. "$(dirname "$0")/lib.sh"
need jq
quiet() { "$@" >/dev/null 2>&1; }

MiB=1048576
S=$T/store IDX=$T/index M=$T/mnt

mkdir -p "$S/many"
for i in $(seq -w 0 2999); do : >"$S/many/entry-$i-$((10#$i % 7))"; done
long=$(printf 'L%.0s' $(seq 1 251)).bin          # 255 bytes
make_file "$S/$long" 1
deep=$S$(printf '/d%.0s' $(seq 1 40))
mkdir -p "$deep"
printf 'deep\n' >"$deep/leaf"
printf 'newline\n' >"$S/new"$'\n'"line"
printf 'tab\n' >"$S/tab"$'\t'"here"
printf 'backslash\n' >"$S/back\\slash"
make_file "$S/bad-utf8-"$'\xff\xfe'".bin" 2
make_file "$S/hard1" 1
ln "$S/hard1" "$S/hard2"
make_file "$S/becomes_dir" 1
make_file "$S/becomes_link" 1
make_file "$S/becomes_fifo" 1
make_file "$S/grows" 1
truncate -s $((MiB + 5000)) "$S/grows"
ln -s hard1 "$S/retargeted"
expect_status "build" 0 "$VBFSCTL" build "$S" "$IDX"

vbfs_mount "$S" "$IDX" "$M" || { fail "mount"; finish; exit 1; }
expect_eq "3000 entries listed (several readdir replies)" 3000 "$(ls "$M/many" | wc -l)"
# Raw readdir order (ls -f), "." and ".." aside: every name exactly once.
ls -f "$M/many" | grep -vxE '\.|\.\.' >"$T/raw"
expect_eq "raw readdir: no entry twice, none lost" "3000 3000" "$(wc -l <"$T/raw") $(sort -u "$T/raw" | wc -l)"
check "same names in the same order as the store" \
	cmp -s <(ls "$S/many") <(ls "$M/many")
check "255-byte name" cmp -s "$S/$long" "$M/$long"
expect_eq "40-deep path" deep "$(cat "${deep/#$S/$M}/leaf")"
expect_eq "name with a newline" newline "$(cat "$M/new"$'\n'"line")"
expect_eq "name with a tab" tab "$(cat "$M/tab"$'\t'"here")"
expect_eq "name with a backslash" backslash "$(cat "$M/back\\slash")"
check "name that is not UTF-8" cmp -s "$S/bad-utf8-"$'\xff\xfe'".bin" "$M/bad-utf8-"$'\xff\xfe'".bin"
check "hard links: both names serve the bytes" bash -c "cmp -s '$S/hard1' '$M/hard1' && cmp -s '$S/hard1' '$M/hard2'"
vbfs_umount "$M"
expect_eq "clean: exit 0" 0 "$VBFS_STATUS"

# ---- damage names that need escaping, and change entries --------------------
flip_byte "$S/bad-utf8-"$'\xff\xfe'".bin" $((MiB + 1))
rm -f "$S/new"$'\n'"line"
rm "$S/becomes_dir"; mkdir "$S/becomes_dir"
rm "$S/becomes_link"; ln -s hard1 "$S/becomes_link"
rm "$S/becomes_fifo"; mkfifo "$S/becomes_fifo"
printf 'appended' >>"$S/grows"
ln -sfn hard2 "$S/retargeted"
rm -f "$M.log"
vbfs_mount "$S" "$IDX" "$M" || { fail "mount"; finish; exit 1; }
check "bad UTF-8 name: damaged block 1 is EIO" \
	bash -c "! dd if='$M/bad-utf8-'\$'\\xff\\xfe''.bin' bs=1M skip=1 count=1 of=/dev/null status=none 2>/dev/null"
check "bad UTF-8 name: block 0 still reads" \
	bash -c "dd if='$M/bad-utf8-'\$'\\xff\\xfe''.bin' bs=1M count=1 status=none 2>/dev/null | cmp -s - <(head -c $MiB '$S/bad-utf8-'\$'\\xff\\xfe''.bin')"
check "deleted name with a newline: EIO" bash -c "! cat '$M/new'\$'\\n''line' >/dev/null 2>&1"
check "file turned directory: still a file in the mount, EIO" \
	bash -c "test -f '$M/becomes_dir' && ! cat '$M/becomes_dir' >/dev/null 2>&1"
check "file turned symlink: still a file in the mount, EIO (never followed)" \
	bash -c "test -f '$M/becomes_link' && ! test -L '$M/becomes_link' && ! cat '$M/becomes_link' >/dev/null 2>&1"
# Opening a FIFO for reading blocks until a writer comes: the daemon must
# not (a hung FUSE thread), it must say EIO at once.
timeout 10 cat "$M/becomes_fifo" >/dev/null 2>"$T/fifo.err"; st=$?
expect_eq "file turned FIFO: EIO at once, no hang" "1 yes" \
	"$st $(grep -q 'Input/output error' "$T/fifo.err" && echo yes || echo no)"
expect_eq "grown file: indexed size shown" $((MiB + 5000)) "$(stat -c %s "$M/grows")"
check "grown file: indexed bytes served" cmp -s "$M/grows" <(head -c $((MiB + 5000)) "$S/grows")
expect_eq "retargeted symlink: the mount shows the indexed target" hard1 "$(readlink "$M/retargeted")"
vbfs_umount "$M"
expect_eq "changed entries are damage: exit 1" 1 "$VBFS_STATUS"

expect_eq "one JSON object per log line" "$(grep -c . "$M.log")" \
	"$(jq -c . "$M.log" 2>/dev/null | grep -c .)"
expect_eq "no raw control character or invalid byte in the log" 0 \
	"$(LC_ALL=C grep -c -P '[\x00-\x09\x0b-\x1f\xfe\xff]' "$M.log")"
expect_eq "newline name logged escaped" 'missing "new\nline"' \
	"$(jq -r 'select(.path | startswith("new")) | "\(.event) \(.path | @json)"' "$M.log" | sort -u)"
expect_eq "invalid UTF-8 name: path_hex holds the raw bytes" \
	"$(printf 'bad-utf8-\xff\xfe.bin' | od -An -tx1 | tr -d ' \n')" \
	"$(jq -r 'select(.path | startswith("bad-utf8")) | .path_hex' "$M.log" | sort -u)"
expect_eq "invalid UTF-8 name: corrupt block 1" "corrupt 1" \
	"$(jq -r 'select(.path | startswith("bad-utf8")) | "\(.event) \(.block)"' "$M.log" | sort -u)"
for p in becomes_dir becomes_link becomes_fifo grows; do
	expect_eq "$p: changed event" changed \
		"$(jq -r --arg p "$p" 'select(.path == $p) | .event' "$M.log" | sort -u | xargs)"
done

expect_status "verify reports the changes (and does not hang on the FIFO)" 1 \
	timeout 60 "$VBFSCTL" verify "$S" "$IDX" --json
jq -r '.events[] | "\(.event) \(.path | @json)"' "$T/last.out" | LC_ALL=C sort -u >"$T/verify.events"
for want in 'changed "becomes_dir"' 'changed "becomes_link"' 'changed "becomes_fifo"' 'changed "grows"' \
	    'missing "new\nline"' 'changed "retargeted"'; do
	check "verify: $want" grep -qxF -- "$want" "$T/verify.events"
done
cp "$T/last.out" "$T/verify.json"
expect_eq "verify: invalid UTF-8 name, corrupt block 1" "corrupt 1" \
	"$(jq -r '.events[] | select(.path | startswith("bad-utf8")) | "\(.event) \(.block)"' "$T/verify.json")"
finish
