/*
 * files.c - the store files the mount reads, by inode.
 *
 * Why: the tree never changes under a mount, so the kernel opens and closes
 * files by itself (no_open): a small file costs one READ round trip instead
 * of OPEN + READ + RELEASE.  A READ then names only the inode, and this
 * table holds the open store file for it, judged on first use.  The
 * look-ahead of the next files puts its files here too, so each store file
 * is opened once.
 *
 * What a held descriptor must not do is hide a store that changed after it
 * was opened: ops.c looks at the store path again on every READ (one
 * fstatat, store_id_of) and judges the file anew when it is no longer the
 * file that was judged.  Bounded: FILES_MAX entries, least recently used
 * out; an entry that is dropped while a read or a queued prefetch holds it
 * lives until they let go (open_file refs).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "vbfs_fs.h"

#define FILES_MAX 128

struct file_table {
	pthread_mutex_t lock;
	struct open_file *of[FILES_MAX];   /* one reference each */
	uint64_t last_use[FILES_MAX];
	uint64_t clock;
};

struct file_table *files_new(void)
{
	struct file_table *t = calloc(1, sizeof *t);
	if (t)
		pthread_mutex_init(&t->lock, NULL);
	return t;
}

void files_free(struct file_table *t)
{
	if (!t)
		return;
	for (unsigned i = 0; i < FILES_MAX; i++)
		if (t->of[i])
			open_file_put(t->of[i]);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

struct open_file *files_get(struct file_table *t, uint64_t ino)
{
	struct open_file *of = NULL;
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < FILES_MAX; i++)
		if (t->of[i] && t->of[i]->e.id == ino) {
			of = t->of[i];
			atomic_fetch_add(&of->refs, 1);
			t->last_use[i] = ++t->clock;
			break;
		}
	pthread_mutex_unlock(&t->lock);
	return of;
}

void files_put(struct file_table *t, struct open_file *of)
{
	struct open_file *old;
	unsigned at = FILES_MAX, free_at = FILES_MAX, oldest = 0;
	atomic_fetch_add(&of->refs, 1);
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < FILES_MAX; i++) {
		if (t->of[i] && t->of[i]->e.id == of->e.id) {
			at = i;   /* judged anew: the newer judgement replaces it */
			break;
		}
		if (!t->of[i]) {
			if (free_at == FILES_MAX)
				free_at = i;
		} else if (t->last_use[i] < t->last_use[oldest])
			oldest = i;
	}
	if (at == FILES_MAX)
		at = free_at != FILES_MAX ? free_at : oldest;
	old = t->of[at];
	t->of[at] = of;
	t->last_use[at] = ++t->clock;
	pthread_mutex_unlock(&t->lock);
	if (old)
		open_file_put(old);
}

void store_id_of(int store_fd, const char *path, struct store_id *id)
{
	struct stat st;
	memset(id, 0, sizeof *id);
	if (fstatat(store_fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		id->err = 1;
		return;
	}
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = st.st_size;
	id->type = st.st_mode & S_IFMT;
}

bool store_id_same(const struct store_id *a, const struct store_id *b)
{
	return a->err == b->err && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->type == b->type;
}
