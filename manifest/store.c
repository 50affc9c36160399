/*
 * store.c - opening files in the backup store without ever leaving it.
 *
 * The store is untrusted input: a symlink inside it may point anywhere.  We
 * resolve paths with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) where the
 * kernel has it, else one O_NOFOLLOW openat() per component.  Everything is
 * read-only; O_NOATIME keeps a restore from touching the store's atimes
 * (it needs ownership, so we fall back without it on EPERM).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>
#include "vbfs.h"

static int openat2_beneath(int dirfd, const char *path, int flags)
{
#ifdef SYS_openat2
	struct open_how how = {
		.flags = (uint64_t)flags,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
#else
	(void)dirfd; (void)path; (void)flags;
	errno = ENOSYS;
	return -1;
#endif
}

/* Fallback: walk the components, O_NOFOLLOW on each. */
static int open_by_components(int dirfd, const char *path, int flags)
{
	char *copy = strdup(path), *save = NULL, *comp;
	int fd = dup(dirfd);
	if (!copy || fd < 0) {
		free(copy);
		if (fd >= 0) close(fd);
		errno = ENOMEM;
		return -1;
	}
	comp = strtok_r(copy, "/", &save);
	while (comp) {
		char *next = strtok_r(NULL, "/", &save);
		int f = next ? O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC : flags | O_NOFOLLOW;
		if (!strcmp(comp, "..")) {
			errno = EXDEV;
			close(fd);
			fd = -1;
			break;
		}
		int nfd = openat(fd, comp, f);
		int saved = errno;
		close(fd);
		errno = saved;
		fd = nfd;
		if (fd < 0)
			break;
		comp = next;
	}
	free(copy);
	return fd;
}

static int open_once(int store_fd, const char *path, int flags)
{
	static int have_openat2 = 1;   /* racy but monotone: only ever cleared */
	if (!*path)
		return openat(store_fd, ".", flags);
	if (have_openat2) {
		int fd = openat2_beneath(store_fd, path, flags);
		if (fd >= 0 || errno != ENOSYS)
			return fd;
		have_openat2 = 0;
	}
	return open_by_components(store_fd, path, flags);
}

int vbfs_store_open(int store_fd, const char *path, int extra_flags)
{
	/* O_NONBLOCK: a FIFO planted where a file was must not hang us; it has
	 * no effect on regular files. */
	int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME | O_NONBLOCK | extra_flags;
	int fd = open_once(store_fd, path, flags);
	if (fd < 0 && errno == EPERM) {
		flags &= ~O_NOATIME;
		fd = open_once(store_fd, path, flags);
	}
	/* RESOLVE_NO_SYMLINKS reports ELOOP for a symlink; so does O_NOFOLLOW. */
	return fd;
}

int vbfs_store_open_root(const char *store)
{
	return open(store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int vbfs_store_lstat(int store_fd, const char *path, struct stat *st,
		     char *target, size_t target_cap)
{
	/* openat2 rejects O_PATH with O_NOATIME/O_NONBLOCK: plain flags here. */
	int fd = open_once(store_fd, path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fstat(fd, st);
	if (rc == 0 && target && target_cap) {
		target[0] = '\0';
		if (S_ISLNK(st->st_mode)) {
			ssize_t n = readlinkat(fd, "", target, target_cap - 1);
			if (n >= 0)
				target[n] = '\0';
		}
	}
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* Reopen the O_PATH handle `pfd` for reading.  Through /proc/self/fd the
 * file opened is exactly the one whose type was checked; without /proc,
 * reopen by path and let the caller's dev/ino comparison catch a swap. */
static int reopen_for_reading(int pfd, int store_fd, const char *path)
{
	char proc[64];
	int flags = O_RDONLY | O_CLOEXEC | O_NOATIME | O_NONBLOCK;
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
	int fd = open(proc, flags);
	if (fd < 0 && errno == EPERM)
		fd = open(proc, flags & ~O_NOATIME);
	if (fd < 0 && errno == ENOENT && access("/proc/self/fd", F_OK) < 0)
		fd = vbfs_store_open(store_fd, path, 0);
	return fd;
}

int vbfs_store_open_reg(int store_fd, const char *path, struct stat *st)
{
	struct stat opened;
	memset(st, 0, sizeof *st);
	int pfd = open_once(store_fd, path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0)
		return -1;
	if (fstat(pfd, st) < 0 || !S_ISREG(st->st_mode)) {
		int saved = st->st_mode ? EINVAL : errno;
		close(pfd);
		errno = saved;
		return -1;
	}
	int fd = reopen_for_reading(pfd, store_fd, path);
	int saved = errno;
	close(pfd);
	if (fd < 0) {
		errno = saved;
		return -1;
	}
	/* Compare the opened file with the one checked (dev, ino, type). */
	if (fstat(fd, &opened) < 0 || opened.st_dev != st->st_dev ||
	    opened.st_ino != st->st_ino || !S_ISREG(opened.st_mode)) {
		*st = opened;
		close(fd);
		errno = EAGAIN;
		return -1;
	}
	*st = opened;
	return fd;
}

bool vbfs_dir_unknown(const struct vbfs_entry *e, struct vbfs_event *ev)
{
	if (e->type != VBFS_T_DIR || !(e->flags & VBFS_F_UNREADABLE))
		return false;
	*ev = (struct vbfs_event){ .kind = VBFS_EV_UNREADABLE, .path = e->path,
		.path_len = e->path_len, .block = -1,
		.detail = "directory was unreadable when the index was built: its content is unknown" };
	return true;
}

/* What a non-regular file found where a regular one was indexed is now. */
static const char *now_a(mode_t m)
{
	if (S_ISDIR(m)) return "is now a directory";
	if (S_ISLNK(m)) return "is now a symlink";
	if (S_ISFIFO(m)) return "is now a FIFO (not opened)";
	if (S_ISCHR(m) || S_ISBLK(m)) return "is now a device (not opened)";
	return "is no longer a regular file";
}

enum vbfs_file_state vbfs_file_open(int store_fd, const struct vbfs_entry *e,
				    int *fd, struct vbfs_event *ev)
{
	struct stat st;
	char *path = strndup(e->path, e->path_len);
	enum vbfs_file_state state = VBFS_FILE_OK;

	*fd = -1;
	memset(ev, 0, sizeof *ev);
	ev->path = e->path;
	ev->path_len = e->path_len;
	ev->block = -1;
	if (e->flags & VBFS_F_DAMAGED) {
		ev->kind = VBFS_EV_CORRUPT;
		ev->detail = "differs from the backup-time manifest (recorded at build)";
		state = VBFS_FILE_DAMAGED;
		goto out;
	}
	if (e->flags & VBFS_F_CHANGED) {
		ev->kind = VBFS_EV_CHANGED;
		ev->detail = "changed while the index was built: no digests were recorded";
		state = VBFS_FILE_DAMAGED;
		goto out;
	}
	if (e->flags & VBFS_F_UNREADABLE) {
		ev->kind = VBFS_EV_UNREADABLE;
		ev->detail = "was unreadable when the index was built: no digests";
		state = VBFS_FILE_DAMAGED;
		goto out;
	}
	if (!path) {
		ev->kind = VBFS_EV_UNREADABLE;
		ev->detail = "out of memory";
		state = VBFS_FILE_UNREADABLE;
		goto out;
	}
	/* Type first: a FIFO or a device standing where the file was is never
	 * opened (an open can block or act on a device). */
	*fd = vbfs_store_open_reg(store_fd, path, &st);
	if (*fd < 0) {
		int err = errno;
		if (st.st_mode && !S_ISREG(st.st_mode)) {
			ev->kind = VBFS_EV_CHANGED;
			ev->detail = now_a(st.st_mode);
			state = VBFS_FILE_CHANGED;
		} else if (err == ELOOP || err == ENOTDIR || err == EAGAIN) {
			/* ELOOP: a symlink now stands where a parent was. */
			ev->kind = VBFS_EV_CHANGED;
			ev->detail = err == ELOOP ? "a symlink stands in its path"
				   : err == EAGAIN ? "was replaced while it was opened"
				   : "a parent is no longer a directory";
			state = VBFS_FILE_CHANGED;
		} else if (err == ENOENT) {
			ev->kind = VBFS_EV_MISSING;
			ev->detail = "file is absent from the store";
			state = VBFS_FILE_MISSING;
		} else {
			ev->kind = VBFS_EV_UNREADABLE;
			ev->detail = strerror(err);
			state = VBFS_FILE_UNREADABLE;
		}
		goto out;
	}
	if ((uint64_t)st.st_size > e->size) {
		ev->kind = VBFS_EV_CHANGED;
		ev->detail = "file grew since it was indexed; indexed bytes still verified";
		state = VBFS_FILE_GROWN;
	} else if (e->nlink && st.st_nlink != e->nlink) {
		ev->kind = VBFS_EV_CHANGED;
		ev->detail = st.st_nlink > e->nlink
			? "link count grew since it was indexed (a hard link added); bytes still verified"
			: "link count fell since it was indexed (a hard link removed or broken); bytes still verified";
		state = VBFS_FILE_RELINKED;
	}
out:
	free(path);
	return state;
}

/* ---- is this index for this store? ---------------------------------------- */

#define TOP_SAMPLE 1024

struct top_entry { char name[256]; };
struct top_list { struct top_entry *v; size_t n; };

static int top_add(void *ctx, const struct vbfs_entry *e)
{
	struct top_list *l = ctx;
	size_t n;
	const char *name = vbfs_entry_name(e, &n);
	if (n < sizeof l->v[0].name) {
		memcpy(l->v[l->n].name, name, n);
		l->v[l->n].name[n] = '\0';
		l->n++;
	}
	return l->n == TOP_SAMPLE;
}

vbfs_err vbfs_store_check_index(int store_fd, const char *store, vbfs_index *idx,
				char why[VBFS_WHY_LEN])
{
	struct top_list l = { .v = calloc(TOP_SAMPLE, sizeof *l.v) };
	vbfs_txn *t;
	vbfs_err err;
	size_t match = 0;
	if (!l.v)
		return VBFS_ERR_NOMEM;
	/* Names first, under the turn; the store is looked at after it. */
	if ((err = vbfs_txn_begin(idx, &t))) {
		free(l.v);
		return err;
	}
	err = vbfs_txn_readdir(t, VBFS_ROOT_ID, 0, top_add, &l);
	vbfs_txn_end(t);
	if (err) {
		vbfs_whyf(why, "%s: index damaged: cannot list its top level (%s)",
			  vbfs_index_path(idx), vbfs_strerror(err));
		free(l.v);
		return err;
	}
	for (size_t i = 0; i < l.n; i++) {
		struct stat st;
		if (fstatat(store_fd, l.v[i].name, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
			match++;   /* there (of any type: a changed entry is damage, not a stranger) */
	}
	if (2 * match < l.n) {
		vbfs_whyf(why, "index %s is not for store %s: %zu of the %zu top-level entries "
			  "it recorded are there", vbfs_index_path(idx), store, match, l.n);
		err = VBFS_ERR_STORE_MISMATCH;
	}
	free(l.v);
	return err;
}
