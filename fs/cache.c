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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "vbfs_fs.h"

/*
 * The slots' buffers are one anonymous mapping in transparent huge pages
 * where the kernel allows (2 MiB pages): replying to a READ pins and copies
 * the block buffer page by page (gup_fast_fallback, fuse_copy_folio), and
 * hashing walks it; with 4 KiB pages the pinning alone was ~6% of the
 * daemon's CPU.  Untouched pages cost nothing: an idle mount stays small.
 *
 * But a huge page is zeroed whole when first touched, and on a virtual
 * machine first touches are dear (2 MiB: 20-50 ms measured here): a
 * restore of many small files (pgBackRest) put one 4 KiB file in each slot
 * in turn and so zeroed the whole 64 MiB arena, 0.3 s of the daemon's CPU
 * on the readers' path.  So each slot also has a small buffer, in 4 KiB
 * pages, for blocks of at most CACHE_SMALL bytes (a file's last block, or
 * a small file's only one): those touch a page or two, once per slot.
 */
#define CACHE_SMALL (64u << 10)
#define HUGE_PAGE (2u << 20)

static void *arena_new(size_t bytes, size_t *mapped, bool huge)
{
	if (!huge) {
		void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		madvise(p, bytes, MADV_NOHUGEPAGE);   /* a hint: fine if refused */
		*mapped = bytes;
		return p;
	}
	size_t len = bytes + HUGE_PAGE;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* Trim to a 2 MiB boundary so whole huge pages fit. */
	uintptr_t start = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
	if (start > (uintptr_t)p)
		munmap(p, start - (uintptr_t)p);
	if ((uintptr_t)p + len > start + bytes)
		munmap((char *)start + bytes, (uintptr_t)p + len - (start + bytes));
	madvise((void *)start, bytes, MADV_HUGEPAGE);   /* a hint: fine if refused */
	*mapped = bytes;
	return (void *)start;
}

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
	size_t stride = ((size_t)block_size + 4095) & ~(size_t)4095;
	if (!(c->arena = arena_new(stride * nslots, &c->arena_len, true)))
		return -1;
	if (block_size > CACHE_SMALL &&
	    !(c->small_arena = arena_new((size_t)CACHE_SMALL * nslots, &c->small_len, false)))
		return -1;
	for (unsigned i = 0; i < nslots; i++) {
		c->slots[i].whole = c->slots[i].buf = (char *)c->arena + stride * i;
		if (c->small_arena)
			c->slots[i].small = (char *)c->small_arena + (size_t)CACHE_SMALL * i;
	}
	return 0;
}

void cache_fit(struct cache_slot *s, uint32_t len)
{
	s->buf = s->small && len <= CACHE_SMALL ? s->small : s->whole;
}

void cache_destroy(struct vbfs_cache *c)
{
	if (c->arena)
		munmap(c->arena, c->arena_len);
	if (c->small_arena)
		munmap(c->small_arena, c->small_len);
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

/*
 * The least recently used slot nobody is using, or NULL.  Blocks already
 * served go first: the kernel holds their pages (keep_cache), while a
 * block verified ahead and dropped unread must be hashed again.  The
 * look-ahead of the next files is queued early, so by plain LRU it was the
 * oldest thing in the cache and went first, just before tar reached it.
 */
static struct cache_slot *victim(struct vbfs_cache *c)
{
	struct cache_slot *best = NULL;
	for (unsigned i = 0; i < c->nslots; i++) {
		struct cache_slot *s = &c->slots[i];
		if (s->refs || s->state == SLOT_FILLING)
			continue;
		if (s->state == SLOT_FREE)
			return s;
		if (!best || (best->unserved && !s->unserved)
		    || (best->unserved == s->unserved && s->last_use < best->last_use))
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
