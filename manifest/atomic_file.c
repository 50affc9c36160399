/*
 * atomic_file.c - files written whole or not at all: a temp file beside
 * the target, fsync'd, then renamed over it.  Exports, metrics, the HTML
 * report, shard reports and keys are written this way, so a reader (or
 * Prometheus's textfile collector) never sees half a file and a failed
 * write leaves the old file as it was.  See vbfs.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "vbfs.h"

int vbfs_write_all(int fd, const void *buf, size_t n, off_t off)
{
	const char *p = buf;
	while (n) {
		ssize_t w = off >= 0 ? pwrite(fd, p, n, off) : write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		if (off >= 0)
			off += w;
	}
	return 0;
}

vbfs_err vbfs_atomic_open(struct vbfs_atomic_file *f, const char *path,
			  unsigned mode, char why[VBFS_WHY_LEN])
{
	memset(f, 0, sizeof *f);
	f->fd = -1;
	/* The temp name must not end in ".prom": the textfile collector only
	 * reads *.prom, so it never sees the file before the rename. */
	size_t n = strlen(path) + 16;
	f->tmp = malloc(n);
	if (!f->tmp) {
		vbfs_whyf(why, "%s: out of memory", path);
		errno = ENOMEM;
		return VBFS_ERR_NOMEM;
	}
	snprintf(f->tmp, n, "%s.tmp.XXXXXX", path);
	f->fd = mkostemp(f->tmp, O_CLOEXEC);
	int e = errno;
	if (f->fd < 0 || fchmod(f->fd, (mode_t)mode) != 0) {
		e = errno;
		/* Name the file asked for, not the temporary one beside it. */
		vbfs_whyf(why, "%s: %s", path, strerror(e));
		vbfs_atomic_abort(f);
		errno = e;
		return VBFS_ERR_IO;
	}
	f->path = path;
	return VBFS_OK;
}

vbfs_err vbfs_atomic_commit(struct vbfs_atomic_file *f, char why[VBFS_WHY_LEN])
{
	const char *step = NULL;
	int e = 0;
	if (fsync(f->fd) != 0) {
		step = "fsync";
		e = errno;
	}
	if (close(f->fd) != 0 && !step) {
		step = "close";
		e = errno;
	}
	f->fd = -1;
	if (!step && rename(f->tmp, f->path) != 0) {
		step = "rename";
		e = errno;
	}
	if (step) {
		vbfs_whyf(why, "%s: %s: %s", f->path, step, strerror(e));
		vbfs_atomic_abort(f);
		errno = e;
		return VBFS_ERR_IO;
	}
	free(f->tmp);
	f->tmp = NULL;
	return VBFS_OK;
}

void vbfs_atomic_abort(struct vbfs_atomic_file *f)
{
	int e = errno;
	if (f->fd >= 0)
		close(f->fd);
	if (f->tmp)
		unlink(f->tmp);
	free(f->tmp);
	f->tmp = NULL;
	f->fd = -1;
	errno = e;
}

vbfs_err vbfs_write_file_atomic(const char *path, const void *buf, size_t len,
				unsigned mode, char why[VBFS_WHY_LEN])
{
	/* The rename would replace a symlink, not follow it; refuse it anyway
	 * so a link planted where the file goes is noticed, not clobbered. */
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
		vbfs_whyf(why, "%s: a symbolic link (not followed)", path);
		return VBFS_ERR_IO;
	}
	struct vbfs_atomic_file f;
	vbfs_err err = vbfs_atomic_open(&f, path, mode, why);
	if (err != VBFS_OK)
		return err;
	if (vbfs_write_all(f.fd, buf, len, -1) != 0) {
		int e = errno;
		vbfs_whyf(why, "%s: write: %s", path, strerror(e));
		vbfs_atomic_abort(&f);
		errno = e;
		return VBFS_ERR_IO;
	}
	return vbfs_atomic_commit(&f, why);
}
