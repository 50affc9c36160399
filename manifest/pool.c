/*
 * pool.c - see pool.h.
 */
#include <stdlib.h>
#include "pool.h"
#include "vbfs.h"

static void *worker(void *arg)
{
	struct pool *p = arg;
	void *buf = vbfs_block_buf(p->bufsize);
	size_t t;
	if (!buf)
		return NULL;   /* others drain the list; pool_start checked one */
	while ((t = atomic_fetch_add(&p->next, 1)) < p->ntasks) {
		if (p->stop && *p->stop)
			break;
		p->fn(p->ctx, t, buf);
	}
	free(buf);
	return NULL;
}

int pool_start(struct pool *p, unsigned jobs, size_t ntasks, size_t bufsize,
	       pool_task_fn fn, void *ctx, volatile int *stop)
{
	p->fn = fn;
	p->ctx = ctx;
	p->ntasks = ntasks;
	p->bufsize = bufsize;
	p->stop = stop;
	atomic_init(&p->next, 0);
	p->nthreads = 0;
	if (jobs == 0)
		jobs = vbfs_ncpu();
	if (jobs > 64)
		jobs = 64;
	if (jobs > ntasks)
		jobs = ntasks ? (unsigned)ntasks : 1;
	for (unsigned i = 0; i < jobs; i++) {
		if (pthread_create(&p->threads[i], NULL, worker, p))
			break;
		p->nthreads++;
	}
	return p->nthreads ? 0 : -1;
}

void pool_join(struct pool *p)
{
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	p->nthreads = 0;
}
