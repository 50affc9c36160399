#!/usr/bin/env bash
# trust_tools_manpages.sh - the man pages, and the README's command synopsis,
# name every option of every command (as each --help lists them); vbfs(1)
# names every event kind (as the metrics list them).
# The regression: --mount-opts, --keep, export --verify-key, next_files and
# the transient and index events were missing.
. "$(dirname "$0")/lib.sh"

SRC=${VBFS_SRC:-$(dirname "$0")/../..}
man_has() { grep -qF -- "$(sed 's/-/\\-/g' <<<"$2")" "$SRC/doc/$1" || grep -qF -- "$2" "$SRC/doc/$1"; }
synopsis=$(sed -n '/^## Commands/,/^Every program/p' "$SRC/README.md")
readme_has() { grep -qF -- "$1" <<<"$synopsis"; }
missing=
for o in $("$VBFS_BIN" --help | sed -n 's/^  \([a-z_]*\)[=[:space:]].*/\1/p'); do
	man_has vbfs.1 "$o" || missing="$missing vbfs:$o"
	readme_has "$o" || missing="$missing README:vbfs:$o"
done
for c in $("$VBFSCTL" --help | sed -n 's/^  \([a-z]*\) .*/\1/p' | sort -u); do
	for o in $("$VBFSCTL" "$c" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		man_has vbfsctl.1 "$o" || missing="$missing $c:$o"
		readme_has "$o" || missing="$missing README:$c:$o"
	done
done
for e in $("$VBFSCTL" rto --target 1h --restore true --metrics "$T/e.prom" >/dev/null 2>&1; \
	   sed -n 's/^vbfs_events_total{.*event="\([a-z]*\)".*/\1/p' "$T/e.prom"); do
	man_has vbfs.1 ".B $e" || missing="$missing event:$e"
done
expect_eq "every option and event is in the man pages and the README synopsis" "" "$missing"
finish
