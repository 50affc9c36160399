/*
 * cache.c - a small, bounded cache of verified blocks keyed (file, block).
 *
 * Why: the kernel asks for 128 KiB pieces (or 1 MiB with a raised
 * read_ahead_kb) while we verify whole blocks; without the cache every
 * piece would re-hash its whole block (8x the work at 1 MiB).  It also
 * holds blocks verified ahead of the reader by readahead.c.
 *
 * What it is not: a page cache (the kernel keeps verified pages itself,
 * keep_cache), nor unbounded: nslots * block_size bytes, fixed at mount.
 * A linear scan finds a slot: with tens of slots it costs nothing next to
 * one SHA-256 of a block.  Thread-safe: one mutex, one condition variable.
 */
#include <stdlib.h>
#include <string.h>
#include "vbfs_fs.h"

int cache_init(struct vbfs_cache *c, unsigned nslots, uint32_t block_size)
{
	memset(c, 0, sizeof *c);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->filled, NULL);
	c->block_size = block_size;
	c->slots = calloc(nslots, sizeof *c->slots);
	if (!c->slots)
		return -1;
	c->nslots = nslots;
	/* Buffers are allocated on first use: an idle mount stays small. */
	return 0;
}

void cache_destroy(struct vbfs_cache *c)
{
	for (unsigned i = 0; i < c->nslots; i++)
		free(c->slots[i].buf);
	free(c->slots);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->filled);
}

static struct cache_slot *find(struct vbfs_cache *c, uint64_t file_id, uint64_t block)
{
	for (unsigned i = 0; i < c->nslots; i++) {
		struct cache_slot *s = &c->slots[i];
		if (s->state != SLOT_FREE && s->file_id == file_id && s->block == block)
			return s;
	}
	return NULL;
}

/* The least recently used slot nobody is using, or NULL. */
static struct cache_slot *victim(struct vbfs_cache *c)
{
	struct cache_slot *best = NULL;
	for (unsigned i = 0; i < c->nslots; i++) {
		struct cache_slot *s = &c->slots[i];
		if (s->refs || s->state == SLOT_FILLING)
			continue;
		if (s->state == SLOT_FREE)
			return s;
		if (!best || s->last_use < best->last_use)
			best = s;
	}
	return best;
}

enum cache_result cache_get(struct vbfs_cache *c, uint64_t file_id, uint64_t block,
			    bool no_wait, struct cache_slot **slot)
{
	enum cache_result r;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct cache_slot *s = find(c, file_id, block);
		if (s && no_wait) {
			*slot = NULL;
			r = CACHE_HIT;
			break;
		}
		if (s && s->state == SLOT_FILLING) {
			pthread_cond_wait(&c->filled, &c->lock);
			continue;   /* the slot may have been recycled: look again */
		}
		if (s) {
			s->unserved = false;
			s->refs++;
			s->last_use = ++c->clock;
			*slot = s;
			r = CACHE_HIT;
			break;
		}
		s = victim(c);
		if (s && !s->buf && !(s->buf = vbfs_block_buf(c->block_size)))
			s = NULL;
		if (!s) {
			*slot = NULL;
			r = CACHE_FULL;
			break;
		}
		if (s->state == SLOT_READY && s->unserved)
			c->evicted_unserved++;
		s->unserved = no_wait;
		s->file_id = file_id;
		s->block = block;
		s->state = SLOT_FILLING;
		s->refs = 1;
		s->last_use = ++c->clock;
		*slot = s;
		r = CACHE_MISS;
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

void cache_publish(struct vbfs_cache *c, struct cache_slot *s)
{
	pthread_mutex_lock(&c->lock);
	s->state = s->chk.verdict == VBFS_BLOCK_OK || s->chk.verdict == VBFS_BLOCK_TRANSIENT
		   ? SLOT_READY : SLOT_FAILED;
	pthread_cond_broadcast(&c->filled);
	pthread_mutex_unlock(&c->lock);
}

void cache_release(struct vbfs_cache *c, struct cache_slot *s)
{
	pthread_mutex_lock(&c->lock);
	s->refs--;
	pthread_mutex_unlock(&c->lock);
}

uint64_t cache_evicted_unserved(struct vbfs_cache *c)
{
	pthread_mutex_lock(&c->lock);
	uint64_t n = c->evicted_unserved;
	pthread_mutex_unlock(&c->lock);
	return n;
}

bool cache_has(struct vbfs_cache *c, uint64_t file_id, uint64_t block)
{
	pthread_mutex_lock(&c->lock);
	bool has = find(c, file_id, block) != NULL;
	pthread_mutex_unlock(&c->lock);
	return has;
}
