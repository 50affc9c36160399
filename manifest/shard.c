/*
 * shard.c - the byte-balanced split of an index into shards; see shard.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "shard.h"

uint64_t vbfs_shard_begin(uint64_t total, uint32_t k, uint32_t n)
{
	if (n == 0 || k >= n)
		return total;
	/* 64 x 32 bits: exact in 128 bits, so the split never drifts. */
	return (uint64_t)((unsigned __int128)total * k / n);
}

uint32_t vbfs_shard_owner(uint64_t pos, uint64_t total, uint32_t n)
{
	if (n == 0)
		return 0;
	if (pos >= total)
		return n - 1;
	/* The largest k with floor(k*total/n) <= pos, i.e. k*total < (pos+1)*n. */
	unsigned __int128 k = ((unsigned __int128)(pos + 1) * n - 1) / total;
	return k >= n ? n - 1 : (uint32_t)k;
}

/* The first block of a file laid at pos whose first byte is at or past at. */
static uint64_t first_block_from(uint64_t at, uint64_t pos, uint32_t block_size)
{
	if (at <= pos)
		return 0;
	return (at - pos + block_size - 1) / block_size;
}

void vbfs_shard_blocks(struct vbfs_shard s, uint64_t total, uint64_t pos,
		       uint64_t nblocks, uint32_t block_size,
		       uint64_t *first, uint64_t *end)
{
	if (s.n == 0) {
		*first = 0;
		*end = nblocks;
		return;
	}
	uint64_t a = first_block_from(vbfs_shard_begin(total, s.k, s.n), pos, block_size);
	uint64_t b = s.k + 1 == s.n ? nblocks
		     : first_block_from(vbfs_shard_begin(total, s.k + 1, s.n), pos, block_size);
	*first = a < nblocks ? a : nblocks;
	*end = b < nblocks ? b : nblocks;
	if (*end < *first)
		*end = *first;
}

/* A decimal number of at most 9 digits, nothing else. */
static bool parse_num(const char *s, size_t len, uint32_t *out)
{
	uint32_t v = 0;
	if (len == 0 || len > 9)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

vbfs_err vbfs_shard_parse(const char *text, struct vbfs_shard *s, bool *has_k,
			  char why[VBFS_WHY_LEN])
{
	const char *slash = text ? strchr(text, '/') : NULL;
	uint32_t k = 0, n;
	if (!slash || !parse_num(slash + 1, strlen(slash + 1), &n)) {
		vbfs_whyf(why, "%s: not K/N (shard K of N, e.g. 3/8, or /N with K from "
			  "the environment)", text ? text : "");
		return VBFS_ERR_USAGE;
	}
	*has_k = slash != text;
	if (*has_k && !parse_num(text, (size_t)(slash - text), &k)) {
		vbfs_whyf(why, "%s: K is not a number", text);
		return VBFS_ERR_USAGE;
	}
	if (n == 0 || n > VBFS_SHARDS_MAX) {
		vbfs_whyf(why, "%s: N must be 1..%u", text, VBFS_SHARDS_MAX);
		return VBFS_ERR_USAGE;
	}
	if (k >= n) {
		vbfs_whyf(why, "%s: K must be 0..%u (shards are numbered from 0)", text, n - 1);
		return VBFS_ERR_USAGE;
	}
	s->k = k;
	s->n = n;
	return VBFS_OK;
}
