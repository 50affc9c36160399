/*
 * workdir.c - make and remove a drill's work directory.  See workdir.h.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "workdir.h"

char *workdir_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

char *workdir_create(const char *what, char why[VBFS_WHY_LEN])
{
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	char tmpl[PATH_MAX];
	if (snprintf(tmpl, sizeof tmpl, "%s/vbfs-%s.XXXXXX", tmp, what) >= (int)sizeof tmpl) {
		vbfs_whyf(why, "TMPDIR is too long");
		return NULL;
	}
	if (!mkdtemp(tmpl)) {
		vbfs_whyf(why, "%s: %s", tmpl, strerror(errno));
		return NULL;
	}
	char *dir = realpath(tmpl, NULL);
	char *mnt = dir ? workdir_path(dir, "mnt") : NULL;
	char *scr = dir ? workdir_path(dir, "scratch") : NULL;
	if (!dir || !mnt || !scr || mkdir(mnt, 0700) || mkdir(scr, 0700)) {
		vbfs_whyf(why, "%s: %s", tmpl, strerror(errno));
		free(mnt);
		free(scr);
		free(dir);
		workdir_remove(tmpl);
		return NULL;
	}
	free(mnt);
	free(scr);
	return dir;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D || flag == FTW_DNR)
		return rmdir(path) && errno != ENOENT ? -1 : 0;
	return unlink(path) && errno != ENOENT ? -1 : 0;
}

int workdir_remove(const char *path)
{
	/* FTW_MOUNT: a mountpoint that is still mounted belongs to another
	 * filesystem and is skipped, so we never delete through a mount. */
	return nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}
