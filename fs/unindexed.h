/*
 * unindexed.h - store entries the index does not know (-o unindexed=allow).
 * See unindexed.c.  Thread-safe.
 */
#ifndef VBFS_UNINDEXED_H
#define VBFS_UNINDEXED_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include "vbfs.h"

#define UNINDEXED_BIT (1ull << 62)   /* index ids never reach this */

bool  unindexed_ino(uint64_t ino);
char *unindexed_path(uint64_t ino);                       /* malloc'd or NULL */
char *unindexed_join(const char *dir, const char *name);  /* malloc'd */
/* lstat a store path; on success register it and set st->st_ino.  errno. */
int   unindexed_lookup(int store_fd, const char *path, struct stat *st);
int   unindexed_stat(int store_fd, const char *path, uint64_t ino, struct stat *st);
typedef int (*unindexed_name_fn)(void *ctx, const char *name);
int   unindexed_list(int store_fd, const char *dir_path, unindexed_name_fn fn, void *ctx);
void  unindexed_free_all(void);

#endif
