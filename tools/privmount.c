/*
 * privmount.c - the drills' private vbfs mount: start the daemon, wait
 * until it is mounted, unmount and reap it, and read what it counted (the
 * stats xattr) and logged (the event log).  See privmount.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <cjson/cJSON.h>
#include "cjson_num.h"
#include "privmount.h"
#include "proc.h"
#include "tool.h"
#include "workdir.h"

#ifndef VBFS_BINDIR
#define VBFS_BINDIR "/usr/local/bin"
#endif

#define MOUNT_TIMEOUT   10.0    /* seconds for the daemon to mount */
#define UMOUNT_TRIES    25      /* x 0.2 s while the mount is busy */
#define DAEMON_GRACE    10.0    /* seconds for the daemon to exit after unmount */

/* ---- the private mount -------------------------------------------------- */

static bool runnable(const char *p)
{
	struct stat st;
	return p && stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

const char *privmount_find_vbfs(void)
{
	static char found[PATH_MAX];
	const char *env = getenv("VBFS_BIN");
	if (env && *env)
		return runnable(env) ? env : NULL;
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(found, sizeof found, "%s/../fs/vbfs", self);
			if (runnable(found))
				return found;
			snprintf(found, sizeof found, "%s/vbfs", self);
			if (runnable(found))
				return found;
		}
	}
	snprintf(found, sizeof found, "%s/vbfs", VBFS_BINDIR);
	return runnable(found) ? found : NULL;
}

/* libfuse splits -o on commas; a backslash escapes one. */
static void opt_escape(const char *in, char *out, size_t n)
{
	size_t j = 0;
	for (; *in && j + 2 < n; in++) {
		if (*in == ',' || *in == '\\')
			out[j++] = '\\';
		out[j++] = *in;
	}
	out[j] = '\0';
}

/* The daemon's own last words for an error message: its last non-empty
 * stderr line, or a sanitizer's "ERROR:" line when there is one. */
static void last_line(const char *file, char *out, size_t n)
{
	out[0] = '\0';
	FILE *f = fopen(file, "re");
	if (!f)
		return;
	char line[VBFS_WHY_LEN];
	bool pinned = false;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!line[0] || pinned)
			continue;
		snprintf(out, n, "%s", line);
		pinned = strstr(line, "ERROR: ") != NULL;
	}
	fclose(f);
}

/* Mounted: the mountpoint's device differs from its parent's. */
static int mount_state(const char *mnt)
{
	/* The parent by name, not "mnt/..": that would walk through the mount. */
	char parent[PATH_MAX];
	snprintf(parent, sizeof parent, "%s", mnt);
	char *slash = strrchr(parent, '/');
	if (!slash)
		snprintf(parent, sizeof parent, ".");
	else if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	struct stat a, b;
	if (stat(parent, &b) != 0)
		return -1;
	if (stat(mnt, &a) != 0)
		return errno == ENOENT ? 0 : 1;    /* ENOTCONN: a dead FUSE mount */
	return a.st_dev != b.st_dev;
}

static vbfs_err wait_mounted(struct privmount *pm, char why[VBFS_WHY_LEN])
{
	double deadline = vbfs_monotonic() + MOUNT_TIMEOUT;
	for (;;) {
		if (mount_state(pm->mnt) == 1) {
			pm->mounted = true;
			return VBFS_OK;
		}
		int status;
		if (waitpid(pm->pid, &status, WNOHANG) == pm->pid) {
			char st[64], msg[VBFS_WHY_LEN / 2];
			proc_status_text(status, st, sizeof st);
			last_line(pm->errlog, msg, sizeof msg);
			vbfs_whyf(why, "vbfs exited (%s): %s", st,
				 msg[0] ? msg : "no message");
			pm->pid = 0;
			return VBFS_ERR_IO;
		}
		if (tool_stop) {
			vbfs_whyf(why, "interrupted");
			return VBFS_ERR_INTERRUPTED;
		}
		if (vbfs_monotonic() > deadline) {
			vbfs_whyf(why, "vbfs did not mount within %.0f s",
				 MOUNT_TIMEOUT);
			return VBFS_ERR_IO;
		}
		proc_sleep(0.005);
	}
}

const char *privmount_mount_opts;

vbfs_err privmount_start(struct privmount *pm, const char *work,
			 const char *store, const char *index,
			 char why[VBFS_WHY_LEN])
{
	memset(pm, 0, sizeof *pm);
	pm->status = -1;
	pm->mnt = workdir_path(work, "mnt");
	pm->log = workdir_path(work, "events.log");
	pm->errlog = workdir_path(work, "vbfs.err");
	if (!pm->mnt || !pm->log || !pm->errlog) {
		vbfs_whyf(why, "out of memory");
		return VBFS_ERR_NOMEM;
	}
	const char *bin = privmount_find_vbfs();
	if (!bin) {
		vbfs_whyf(why, "no vbfs binary found (set VBFS_BIN, "
			 "or install vbfs beside vbfsctl)");
		return VBFS_ERR_IO;
	}
	char *idx = realpath(index, NULL), *sto = realpath(store, NULL);
	if (!idx || !sto) {
		vbfs_whyf(why, "%s: %s", idx ? store : index, strerror(errno));
		free(idx);
		free(sto);
		return VBFS_ERR_IO;
	}
	char eidx[2 * PATH_MAX], elog[2 * PATH_MAX], opts[4 * PATH_MAX + 32];
	opt_escape(idx, eidx, sizeof eidx);
	opt_escape(pm->log, elog, sizeof elog);
	int n = snprintf(opts, sizeof opts, "index=%s,log=%s%s%s", eidx, elog,
			 privmount_mount_opts && *privmount_mount_opts ? "," : "",
			 privmount_mount_opts ? privmount_mount_opts : "");
	if (n < 0 || (size_t)n >= sizeof opts) {   /* a cut path would name another directory */
		vbfs_whyf(why, "the mount options are longer than %zu bytes", sizeof opts - 1);
		free(idx);
		free(sto);
		return VBFS_ERR_IO;
	}
	if (privmount_mount_opts && strstr(privmount_mount_opts, "allow_other"))
		chmod(work, 0711);   /* others may pass through to mnt/, not list */

	int errfd = open(pm->errlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	const char *argv[] = { bin, "-f", "-o", opts, sto, pm->mnt, NULL };
	struct proc_spawn s = {
		.argv = argv, .stdout_fd = errfd, .stderr_fd = errfd,
		.new_group = true, .die_with_parent = true,
	};
	pm->pid = proc_spawn(&s, why);
	if (errfd >= 0)
		close(errfd);
	free(idx);
	free(sto);
	if (pm->pid < 0) {
		pm->pid = 0;
		return VBFS_ERR_IO;
	}
	vbfs_err err = wait_mounted(pm, why);
	if (err != VBFS_OK) {
		char ignore[VBFS_WHY_LEN];
		privmount_stop(pm, ignore);
	}
	return err;
}

static int run_quiet(const char *const *argv, double timeout)
{
	char why[VBFS_WHY_LEN];
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	struct proc_spawn s = { .argv = argv, .stdout_fd = devnull, .stderr_fd = devnull };
	pid_t pid = proc_spawn(&s, why);
	if (devnull >= 0)
		close(devnull);
	if (pid < 0)
		return -1;
	int status;
	if (proc_wait(pid, timeout, false, &status) == PROC_TIMEOUT) {
		kill(pid, SIGKILL);
		proc_wait(pid, -1, false, &status);
		return -1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void unmount(struct privmount *pm)
{
	const char *argv[] = { "fusermount3", "-u", "-q", pm->mnt, NULL };
	for (int i = 0; i < UMOUNT_TRIES && mount_state(pm->mnt) == 1; i++) {
		/* Busy while a restore command's leftovers still use it: retry. */
		if (run_quiet(argv, 10) == 0)
			break;
		proc_sleep(0.2);
	}
	if (mount_state(pm->mnt) == 1) {
		const char *lazy[] = { "fusermount3", "-u", "-z", "-q", pm->mnt, NULL };
		if (run_quiet(lazy, 10) != 0)
			umount2(pm->mnt, MNT_DETACH);
	}
}

vbfs_err privmount_stop(struct privmount *pm, char why[VBFS_WHY_LEN])
{
	if (!pm->mnt)
		return VBFS_OK;
	unmount(pm);
	pm->mounted = false;
	bool crashed = false;
	if (pm->pid > 0) {
		int status;
		if (proc_wait(pm->pid, DAEMON_GRACE, false, &status) == PROC_TIMEOUT) {
			kill(pm->pid, SIGTERM);
			kill(pm->pid, SIGCONT);     /* a stopped daemon would sit on it */
			if (proc_wait(pm->pid, 5, false, &status) == PROC_TIMEOUT) {
				kill(pm->pid, SIGKILL);
				proc_wait(pm->pid, -1, false, &status);
			}
		}
		pm->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		pm->pid = 0;
		/* 0 and 1 are the daemon's verdicts; anything else means the
		 * mount itself broke during the drill. */
		if (pm->status != 0 && pm->status != 1) {
			char st[64], msg[VBFS_WHY_LEN / 2];
			proc_status_text(status, st, sizeof st);
			last_line(pm->errlog, msg, sizeof msg);
			vbfs_whyf(why, "vbfs exited abnormally (%s): %s", st,
				 msg[0] ? msg : "no message");
			crashed = true;
		}
	}
	if (rmdir(pm->mnt) != 0 && errno != ENOENT) {
		if (!crashed)
			vbfs_whyf(why, "%s: %s", pm->mnt, strerror(errno));
		return VBFS_ERR_IO;
	}
	return crashed ? VBFS_ERR_IO : VBFS_OK;
}

void privmount_free(struct privmount *pm)
{
	free(pm->mnt);
	free(pm->log);
	free(pm->errlog);
	memset(pm, 0, sizeof *pm);
}

static char *get_xattr(const char *path, const char *name)
{
	for (int tries = 0; tries < 3; tries++) {
		ssize_t n = getxattr(path, name, NULL, 0);
		if (n < 0)
			return NULL;
		char *buf = malloc((size_t)n + 1);
		if (!buf)
			return NULL;
		ssize_t m = getxattr(path, name, buf, (size_t)n);
		if (m >= 0 && m <= n) {
			buf[m] = '\0';
			return buf;
		}
		free(buf);
		if (m < 0 && errno != ERANGE)   /* ERANGE: it grew meanwhile */
			return NULL;
	}
	return NULL;
}

vbfs_err privmount_stats(const char *mnt, struct privmount_stats *st, char why[VBFS_WHY_LEN])
{
	memset(st, 0, sizeof *st);
	char *txt = get_xattr(mnt, "user.vbfs.stats");
	if (!txt) {
		vbfs_whyf(why, "%s: user.vbfs.stats: %s", mnt, strerror(errno));
		return VBFS_ERR_IO;
	}
	cJSON *o = cJSON_Parse(txt);
	free(txt);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		vbfs_whyf(why, "%s: user.vbfs.stats is not a JSON object", mnt);
		return VBFS_ERR_FORMAT;
	}
	/* Counters are whole numbers (cjson_num.h): anything else is not a
	 * count this drill can vouch for. */
	char bad[VBFS_WHY_LEN];
	vbfs_err err = VBFS_OK, e;
	st->blocks_verified = st->bytes_verified = 0;
	if ((e = vbfs_json_whole(o, "blocks_verified", VBFS_JSON_WHOLE_MAX, &st->blocks_verified, bad)) &&
	    e != VBFS_ERR_NOTFOUND)
		err = e;
	if (!err && (e = vbfs_json_whole(o, "bytes_verified", VBFS_JSON_WHOLE_MAX, &st->bytes_verified,
					 bad)) && e != VBFS_ERR_NOTFOUND)
		err = e;
	const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "events"), *it;
	cJSON_ArrayForEach(it, ev) {
		int k = it->string ? vbfs_event_kind_from_name(it->string) : -1;
		if (!err && k >= 0 && (e = vbfs_json_whole(ev, it->string, VBFS_JSON_WHOLE_MAX,
							   &st->events[k], bad)))
			err = e;
	}
	cJSON_Delete(o);
	if (err)
		vbfs_whyf(why, "%s: user.vbfs.stats: %s", mnt, bad);
	return err;
}

char *privmount_index_of(const char *mnt)
{
	return get_xattr(mnt, "user.vbfs.index");
}

/* Damage is the library's verdict on the kind; a kind this vbfsctl does not
 * know (a newer daemon's) counts as damage: better a false alarm than a
 * quiet loss. */
static bool kind_is_damage(const char *kind, int *kind_idx)
{
	int k = vbfs_event_kind_from_name(kind);
	*kind_idx = k;
	return k < 0 || vbfs_event_is_damage((enum vbfs_event_kind)k);
}

static void keep_event(struct privmount_events *ev, const cJSON *o, const char *kind)
{
	if (ev->kept >= PRIVMOUNT_KEEP_EVENTS)
		return;
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(o, "path");
	char buf[VBFS_WHY_LEN];
	int n = snprintf(buf, sizeof buf, "%s %s", kind,
			 cJSON_IsString(path) ? path->valuestring : "?");
	uint64_t b, at = 0;
	if (!vbfs_json_whole(o, "block", VBFS_JSON_WHOLE_MAX, &b, NULL) && n > 0 && (size_t)n < sizeof buf) {
		vbfs_json_whole(o, "offset", VBFS_JSON_WHOLE_MAX, &at, NULL);
		snprintf(buf + n, sizeof buf - (size_t)n, " block %llu offset %llu",
			 (unsigned long long)b, (unsigned long long)at);
	}
	ev->first[ev->kept] = strdup(buf);
	if (ev->first[ev->kept])
		ev->kept++;
}

vbfs_err privmount_read_events(const char *log, struct privmount_events *ev,
			   char why[VBFS_WHY_LEN])
{
	memset(ev, 0, sizeof *ev);
	FILE *f = fopen(log, "re");
	if (!f) {
		if (errno == ENOENT)
			return VBFS_OK;
		vbfs_whyf(why, "%s: %s", log, strerror(errno));
		return VBFS_ERR_IO;
	}
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) >= 0) {
		if (line[strspn(line, " \t\r\n")] == '\0')
			continue;
		ev->lines++;
		cJSON *o = cJSON_Parse(line);
		const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "event");
		if (!cJSON_IsString(kind)) {
			ev->unparsed++;
			cJSON_Delete(o);
			continue;
		}
		int k;
		/* A replica's or parity's refused copy (a source, no verdict on
		 * repair) is about that source, not the store: the mount does
		 * not count it either. */
		bool refusal = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "source")) &&
			       !cJSON_GetObjectItemCaseSensitive(o, "repairable") &&
			       strcmp(kind->valuestring, "healed");
		if (refusal) {
			cJSON_Delete(o);
			continue;
		}
		if (kind_is_damage(kind->valuestring, &k)) {
			ev->damage++;
			keep_event(ev, o, kind->valuestring);
		}
		if (k >= 0)
			ev->by_kind[k]++;
		cJSON_Delete(o);
	}
	free(line);
	fclose(f);
	return VBFS_OK;
}

void privmount_events_free(struct privmount_events *ev)
{
	for (size_t i = 0; i < ev->kept; i++)
		free(ev->first[i]);
	memset(ev, 0, sizeof *ev);
}
