/*
 * shard.h - the deterministic split of an index's blocks into N shards,
 * balanced by bytes (`vbfsctl verify --shard K/N`).
 *
 * The index's regular files, in id order, laid end to end, form one byte
 * sequence of `total` bytes (a file the index marks damaged or unreadable
 * counts 0: the scrub reads none of it).  Shard k owns the byte range
 * [begin(k), begin(k+1)) with begin(k) = floor(k * total / n) and
 * begin(n) = total.  A block belongs to the shard whose range holds its
 * first byte: a large file is split at block boundaries, and a shard's
 * bytes differ from total/n by less than one block at each end.  A finding
 * about a whole entry (a missing file, a changed symlink) belongs to the
 * shard that owns the entry's position (the bytes laid before it), so
 * exactly one shard reports it.  Only the index decides the split: the
 * same index gives the same shards on every host, every run.
 *
 * Pure arithmetic: no I/O, no allocation, thread-safe.
 */
#ifndef VBFS_SHARD_H
#define VBFS_SHARD_H

#include <stdbool.h>
#include <stdint.h>
#include "vbfs.h"

#define VBFS_SHARDS_MAX 100000u

/* k of n; n == 0 means "not sharded": the whole index. */
struct vbfs_shard {
	uint32_t k, n;
};

/* First byte position of shard k (k == n: total). */
uint64_t vbfs_shard_begin(uint64_t total, uint32_t k, uint32_t n);

/* The shard that owns byte position pos (pos == total, or total == 0:
 * the last shard). */
uint32_t vbfs_shard_owner(uint64_t pos, uint64_t total, uint32_t n);

/*
 * The blocks [*first, *end) of a file laid at `pos` with `nblocks` blocks
 * of `block_size` bytes that shard s owns (first == end: none).  With
 * s.n == 0, every block.
 */
void vbfs_shard_blocks(struct vbfs_shard s, uint64_t total, uint64_t pos,
		       uint64_t nblocks, uint32_t block_size,
		       uint64_t *first, uint64_t *end);

/*
 * Parse "K/N" (K given) or "/N" (K to come from the environment).
 * 0 <= K < N <= VBFS_SHARDS_MAX, decimal digits only.  VBFS_ERR_USAGE
 * with a one-line `why` otherwise.
 */
vbfs_err vbfs_shard_parse(const char *text, struct vbfs_shard *s, bool *has_k,
			  char why[VBFS_WHY_LEN]);

#endif
