/*
 * unindexed.c - `-o unindexed=allow`: store entries the index does not know
 * are shown and served UNVERIFIED, each with an `unindexed` event.
 *
 * Such entries have no index id, so they get inode numbers from a separate
 * range (UNINDEXED_BIT set) and a small table mapping those numbers to store
 * paths.  The table only grows (until unmount); it holds only what a reader
 * has looked up.  With the default `unindexed=hide` none of this runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "unindexed.h"

struct node { uint64_t ino; char *path; };

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct node *table;      /* protected by table_lock */
static size_t table_n, table_cap;

bool unindexed_ino(uint64_t ino) { return (ino & UNINDEXED_BIT) != 0; }

char *unindexed_path(uint64_t ino)
{
	char *p = NULL;
	pthread_mutex_lock(&table_lock);
	uint64_t i = ino & ~UNINDEXED_BIT;
	if (i < table_n)
		p = strdup(table[i].path);
	pthread_mutex_unlock(&table_lock);
	return p;
}

/* The inode number for `path`, registering it on first sight. */
static uint64_t register_path(const char *path)
{
	uint64_t ino = 0;
	pthread_mutex_lock(&table_lock);
	for (size_t i = 0; i < table_n; i++)
		if (!strcmp(table[i].path, path)) {
			ino = table[i].ino;
			goto out;
		}
	struct node *t = vbfs_grow(table, &table_cap, table_n, sizeof *t, 64);
	if (!t)
		goto out;
	table = t;
	char *copy = strdup(path);
	if (!copy)
		goto out;
	table[table_n] = (struct node){ UNINDEXED_BIT | table_n, copy };
	ino = table[table_n++].ino;
out:
	pthread_mutex_unlock(&table_lock);
	return ino;
}

char *unindexed_join(const char *dir, const char *name)
{
	size_t a = strlen(dir), n = strlen(name);
	char *p = malloc(a + n + 2);
	if (!p)
		return NULL;
	memcpy(p, dir, a);
	if (a)
		p[a++] = '/';
	memcpy(p + a, name, n + 1);
	return p;
}

int unindexed_stat(int store_fd, const char *path, uint64_t ino, struct stat *st)
{
	if (vbfs_store_lstat(store_fd, path, st, NULL, 0) < 0)
		return errno;
	st->st_ino = ino;
	return 0;
}

int unindexed_lookup(int store_fd, const char *path, struct stat *st)
{
	if (vbfs_store_lstat(store_fd, path, st, NULL, 0) < 0)
		return errno;
	uint64_t ino = register_path(path);
	if (!ino)
		return ENOMEM;
	st->st_ino = ino;
	return 0;
}

int unindexed_list(int store_fd, const char *dir_path, unindexed_name_fn fn, void *ctx)
{
	int fd = vbfs_store_open(store_fd, dir_path, O_DIRECTORY);
	if (fd < 0)
		return errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return errno;
	}
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			if (fn(ctx, de->d_name))
				break;
	closedir(d);
	return 0;
}

void unindexed_free_all(void)
{
	pthread_mutex_lock(&table_lock);
	for (size_t i = 0; i < table_n; i++)
		free(table[i].path);
	free(table);
	table = NULL;
	table_n = table_cap = 0;
	pthread_mutex_unlock(&table_lock);
}
