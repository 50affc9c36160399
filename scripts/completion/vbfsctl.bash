# bash completion for vbfsctl                             -*- shell-script -*-
# Installed as /usr/share/bash-completion/completions/vbfsctl; to try it
# from a checkout: source scripts/completion/vbfsctl.bash

_vbfsctl()
{
	local cur prev words cword
	if declare -F _init_completion >/dev/null; then
		_init_completion || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi

	local commands="build verify merge repair sample rto report keygen export"
	if [[ $cword -eq 1 ]]; then
		COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
		return
	fi

	local cmd=${words[1]} opts
	case $cmd in
	build)  opts="--block-size --jobs --full --reuse --backup-id --file-digests --against --sign-key --parity --parity-dir --json --help" ;;
	verify) opts="--jobs --verify-key --expect-backup-id --max-age --allow-store-mismatch --json --shard --max-duration --resume --errors-only --report --sign-key --metrics --history --name --replica --parity --help" ;;
	merge)  opts="--report --json --metrics --history --name --sign-key --verify-key --help" ;;
	repair) opts="--replica --parity --dry-run --output --apply --verify-key --expect-backup-id --max-age --allow-store-mismatch --json --help" ;;
	sample) opts="--mount --store --index -n --seed --rto --replica --parity --keep --json --help" ;;
	rto)    opts="--target --store --index --restore --validate --history --metrics --name --replica --parity --keep --trend --json --help" ;;
	report) opts="--history --html --help" ;;
	keygen) opts="--help" ;;
	export) opts="--format --output --verify-key --expect-backup-id --max-age --help" ;;
	*)      return ;;
	esac

	# the argument of an option
	case $prev in
	--format)
		COMPREPLY=($(compgen -W "manifest sha256sum blocks" -- "$cur"))
		return ;;
	--block-size)
		COMPREPLY=($(compgen -W "4K 8K 16K 32K 64K 128K 256K 512K 1M 2M 4M 8M 16M 32M 64M" -- "$cur"))
		return ;;
	--jobs|-n|--seed|--backup-id|--name)
		return ;;
	--shard)
		COMPREPLY=($(compgen -W "auto" -- "$cur"))
		return ;;
	--target|--rto|--max-duration)
		COMPREPLY=($(compgen -W "90s 15m 30m 1h 4h" -- "$cur"))
		return ;;
	--restore|--validate)
		COMPREPLY=($(compgen -c -- "$cur"))
		return ;;
	--parity)
		[[ $cmd == build ]] && { COMPREPLY=($(compgen -W "32+2 16+2 8+2 32+4" -- "$cur")); return; }
		COMPREPLY=($(compgen -d -- "$cur"))
		compopt -o filenames 2>/dev/null
		return ;;
	--store|--index|--mount|--reuse|--replica|--parity-dir)
		COMPREPLY=($(compgen -d -- "$cur"))
		compopt -o filenames 2>/dev/null
		return ;;
	--against|--sign-key|--verify-key|--history|--metrics|--html|--output|--resume|--errors-only|--report)
		COMPREPLY=($(compgen -f -- "$cur"))
		compopt -o filenames 2>/dev/null
		return ;;
	esac

	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		return
	fi
	# positional arguments: STORE INDEX (build, verify), INDEX (export),
	# key files (keygen)
	case $cmd in
	build|verify|export)
		COMPREPLY=($(compgen -d -- "$cur"))
		compopt -o filenames 2>/dev/null ;;
	keygen)
		COMPREPLY=($(compgen -f -- "$cur"))
		compopt -o filenames 2>/dev/null ;;
	esac
} &&
	complete -F _vbfsctl vbfsctl
