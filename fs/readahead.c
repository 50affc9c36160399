/*
 * readahead.c - verify the next blocks of a sequential reader on worker
 * threads, so the reader finds them already verified in the cache.
 *
 * This is how a single `cat` or `pg_restore` uses both cores: the FUSE
 * thread copies block b out while workers hash b+1, b+2...  A damaged block
 * met ahead is only remembered (a FAILED slot): the event is logged when,
 * and only if, a reader actually asks for it.
 */
#include <fcntl.h>
#include <stdlib.h>
#include "vbfs_fs.h"

#define QUEUE_LEN 256

struct prefetch_item { struct open_file *of; uint64_t block; };

struct prefetch {
	struct vbfs_fs *fs;
	pthread_mutex_t lock;
	pthread_cond_t more;
	struct prefetch_item q[QUEUE_LEN];   /* ring, protected by lock */
	unsigned head, count;
	bool stopping;
	unsigned nthreads;
	pthread_t threads[16];
};

static void *worker(void *arg)
{
	struct prefetch *p = arg;
	for (;;) {
		pthread_mutex_lock(&p->lock);
		while (!p->count && !p->stopping)
			pthread_cond_wait(&p->more, &p->lock);
		if (p->stopping && !p->count) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		struct prefetch_item it = p->q[p->head];
		p->head = (p->head + 1) % QUEUE_LEN;
		p->count--;
		/* Read under the lock: prefetch_stop() writes it. */
		bool stopping = p->stopping;
		pthread_mutex_unlock(&p->lock);
		if (!stopping)
			fs_block_get(p->fs, it.of, it.block, NULL, true);
		open_file_put(it.of);
	}
}

struct prefetch *prefetch_start(struct vbfs_fs *fs, unsigned threads)
{
	struct prefetch *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->fs = fs;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->more, NULL);
	if (threads > 16)
		threads = 16;
	for (unsigned i = 0; i < threads; i++)
		if (pthread_create(&p->threads[p->nthreads], NULL, worker, p) == 0)
			p->nthreads++;
	return p;
}

void prefetch_range(struct prefetch *p, struct open_file *of, uint64_t from, uint64_t to)
{
	uint64_t nblocks = vbfs_nblocks(of->e.size, p->fs->meta->block_size);
	if ((uint64_t)atomic_load(&of->ahead) > from)
		from = (uint64_t)atomic_load(&of->ahead);
	if (to > nblocks)
		to = nblocks;
	if (from >= to)
		return;
	pthread_mutex_lock(&p->lock);
	for (uint64_t b = from; b < to && p->count < QUEUE_LEN; b++) {
		atomic_fetch_add(&of->refs, 1);
		p->q[(p->head + p->count) % QUEUE_LEN] = (struct prefetch_item){ of, b };
		p->count++;
		atomic_store(&of->ahead, (int64_t)b + 1);
	}
	pthread_cond_broadcast(&p->more);
	pthread_mutex_unlock(&p->lock);
	/* Ask the store's disk for the whole range now: the workers read it
	 * block by block, and on a disk-bound store a deep queue is what keeps
	 * the disk busy while they hash (pages already cached: a no-op). */
	uint32_t bs = p->fs->meta->block_size;
	if (of->fd >= 0)
		posix_fadvise(of->fd, (off_t)(from * bs), (off_t)((to - from) * bs), POSIX_FADV_WILLNEED);
}

void prefetch_hint(struct prefetch *p, struct open_file *of, uint64_t block)
{
	prefetch_range(p, of, block + 1, block + 1 + p->fs->readahead_blocks);
}

void prefetch_stop(struct prefetch *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->more);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->more);
	free(p);
}
