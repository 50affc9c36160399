/*
 * pool.h - a fixed set of worker threads draining a numbered task list.
 * Used by build.c and scrub.c to hash on every core.  Tasks are claimed
 * in order with one atomic counter, so a sequential store is read roughly
 * front to back.  Internal to libvbfs.
 */
#ifndef VBFS_POOL_H
#define VBFS_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

/* Called on a worker thread; `buf` is that worker's page-aligned buffer. */
typedef void (*pool_task_fn)(void *ctx, size_t task, void *buf);

struct pool {
	pool_task_fn fn;
	void *ctx;
	size_t ntasks, bufsize;
	atomic_size_t next;
	volatile int *stop;         /* checked between tasks */
	unsigned nthreads;
	pthread_t threads[64];
};

/* Start `jobs` workers (capped at 64 and at ntasks).  0 on success. */
int  pool_start(struct pool *p, unsigned jobs, size_t ntasks, size_t bufsize,
		pool_task_fn fn, void *ctx, volatile int *stop);
void pool_join(struct pool *p);

#endif
