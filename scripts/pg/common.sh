# scripts/pg/common.sh - shared by pg-drill, pg-baseline and pg/validate.
# shellcheck shell=bash
# Sourced, not run.  Bash only.  Sets no traps and changes no directory.

PGV_PROG=${PGV_PROG:-pg-drill}

# Session settings that fix how values print as text, so that a checksum
# taken on the source at dump time and one taken on the restored copy in a
# differently configured cluster see the same characters (timestamptz
# depends on TimeZone, dates on DateStyle, floats on extra_float_digits).
PGV_TEXT_OPTIONS="-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=1 -c bytea_output=hex -c jit=off"

pgv_err() { echo "$PGV_PROG: $*" >&2; }
# pgv_die STATUS MESSAGE: one line on stderr, exit STATUS.
pgv_die() { local s=$1; shift; pgv_err "$*"; exit "$s"; }

# pgv_need_jq: install jq from Debian when missing (root only).
pgv_need_jq() {
	command -v jq >/dev/null 2>&1 && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		pgv_err "installing jq (apt-get)"
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq; } >/dev/null 2>&1
	fi
	command -v jq >/dev/null 2>&1 || pgv_die 2 "jq not found: install it (apt-get install jq)"
}

# pgv_need_postgres: install Debian's postgresql when no server binaries
# are found (root only).  No default cluster is created, so installing
# starts no server: the drill makes its own throwaway cluster.
pgv_need_postgres() {
	pgv_pg_bindir "${1:-}" >/dev/null && return 0
	[ -z "${1:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
	# createcluster.conf includes createcluster.d (postgresql-common >= 200).
	local conf=/etc/postgresql-common/createcluster.d/zz-vbfs-pg-drill.conf made=0
	mkdir -p "${conf%/*}" && echo "create_main_cluster = false" >"$conf" && made=1
	pgv_err "installing postgresql (apt-get)"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >/dev/null 2>&1
	[ "$made" = 1 ] && rm -f "$conf"
	pgv_pg_bindir >/dev/null
}

# pgv_pg_bindir [DIR]: print the PostgreSQL server binary directory: DIR if
# given, else pg_config's, else the newest /usr/lib/postgresql/*/bin
# (Debian keeps initdb and pg_ctl out of PATH).
pgv_pg_bindir() {
	local d
	if [ -n "${1:-}" ]; then
		d=$1
	elif command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir 2>/dev/null)/initdb" ]; then
		d=$(pg_config --bindir)
	else
		d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	fi
	[ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/pg_restore" ] && [ -x "$d/psql" ] || return 1
	echo "$d"
}

# pgv_shq WORD: quote WORD for /bin/sh (dash has no $'...').
pgv_shq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# pgv_sql_lit TEXT: TEXT as an SQL string literal.
pgv_sql_lit() { printf "'%s'" "${1//\'/\'\'}"; }
