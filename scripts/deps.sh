# scripts/deps.sh - sourced by scripts/demo, scripts/test, scripts/bench:
# install the Debian packages vbfs needs, only when something is missing.
#   vbfs_install_deps [extra packages...]
vbfs_install_deps() {
	local pkgs=(cmake make gcc pkg-config libfuse3-dev fuse3 liblmdb-dev libcjson-dev
		libssl-dev openssl attr libisal-dev "$@")
	local missing=() p
	for p in "${pkgs[@]}"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "vbfs: missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
		return 2
	fi
	echo "installing: ${missing[*]}" >&2
	# A fresh machine's package lists may be stale: update first.
	apt-get update -qq >&2 || { echo "vbfs: apt-get update failed" >&2; return 2; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
		|| { echo "vbfs: apt-get install failed: ${missing[*]}" >&2; return 2; }
}

# vbfs_build DIR [cmake args...]: configure and build the tree into DIR.
vbfs_build() {
	local dir=$1; shift
	local src; src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null \
		&& cmake --build "$dir" -j"$(nproc)" >/dev/null
}
