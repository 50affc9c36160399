/*
 * privmount.c - the drills' private vbfs mount, child processes and
 * scratch directories.  See privmount.h for the contract.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <cjson/cJSON.h>
#include "privmount.h"

#ifndef VBFS_BINDIR
#define VBFS_BINDIR "/usr/local/bin"
#endif

#define MOUNT_TIMEOUT   10.0    /* seconds for the daemon to mount */
#define UMOUNT_TRIES    25      /* x 0.2 s while the mount is busy */
#define DAEMON_GRACE    10.0    /* seconds for the daemon to exit after unmount */

volatile sig_atomic_t drill_stop;

static void on_signal(int sig)
{
	drill_stop = sig;
}

void drill_install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocking read or poll returns EINTR and we notice. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	nanosleep(&ts, NULL);
}

/* ---- child processes --------------------------------------------------- */

static _Noreturn void child_exec(const struct drill_spawn *s, pid_t parent)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	if (s->new_group)
		setpgid(0, 0);
	if (s->die_with_parent) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)        /* died before the prctl */
			_exit(127);
	}
	int in = open("/dev/null", O_RDONLY);
	if (in >= 0 && in != 0) {
		dup2(in, 0);
		close(in);
	}
	if (s->stdout_fd >= 0)
		dup2(s->stdout_fd, 1);
	if (s->stderr_fd >= 0)
		dup2(s->stderr_fd, 2);
	for (const char *const *e = s->env; e && *e; e++)
		putenv((char *)*e);     /* the child's own copy of environ */
	execvp(s->argv[0], (char *const *)s->argv);
	dprintf(2, "vbfsctl: exec %s: %s\n", s->argv[0], strerror(errno));
	_exit(127);
}

pid_t drill_spawn(const struct drill_spawn *s, char why[VBFS_WHY_LEN])
{
	fflush(NULL);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, VBFS_WHY_LEN, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0)
		child_exec(s, parent);
	if (s->new_group)
		setpgid(pid, pid);      /* both sides: whichever runs first wins */
	return pid;
}

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	return -1;
#endif
}

enum drill_wait_result drill_wait(pid_t pid, double timeout, bool stoppable,
				  int *status)
{
	double deadline = timeout >= 0 ? vbfs_monotonic() + timeout : 0;
	int pfd = open_pidfd(pid);
	enum drill_wait_result res;
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD)) {
			if (r < 0)
				*status = 0;
			res = DRILL_EXITED;
			break;
		}
		if (stoppable && drill_stop) {
			res = DRILL_STOPPED;
			break;
		}
		double left = timeout >= 0 ? deadline - vbfs_monotonic() : 0.2;
		if (left <= 0) {
			res = DRILL_TIMEOUT;
			break;
		}
		if (left > 0.2)
			left = 0.2;     /* wake up now and then to check drill_stop */
		if (pfd >= 0) {
			/* The pidfd turns readable the moment the child exits, so
			 * phase timings are not rounded up to a polling tick. */
			struct pollfd p = { .fd = pfd, .events = POLLIN };
			poll(&p, 1, (int)(left * 1000) + 1);
		} else {
			sleep_s(left < 0.01 ? left : 0.01);
		}
	}
	if (pfd >= 0)
		close(pfd);
	return res;
}

int drill_kill_group(pid_t pid, int sig, double grace)
{
	int status = 0;
	kill(-pid, sig);
	if (drill_wait(pid, grace, false, &status) == DRILL_TIMEOUT) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		drill_wait(pid, -1, false, &status);
	}
	kill(-pid, SIGKILL);    /* stragglers the shell left in its group */
	return status;
}

void drill_status_text(int status, char *out, size_t n)
{
	if (WIFEXITED(status))
		snprintf(out, n, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, n, "killed by %s", sigabbrev_np(WTERMSIG(status))
			 ? sigabbrev_np(WTERMSIG(status)) : "a signal");
	else
		snprintf(out, n, "status %d", status);
}

/* ---- the work directory ------------------------------------------------- */

static char *join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", a, b);
	return p;
}

char *drill_workdir(const char *what, char why[VBFS_WHY_LEN])
{
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	char tmpl[PATH_MAX];
	if (snprintf(tmpl, sizeof tmpl, "%s/vbfs-%s.XXXXXX", tmp, what) >= (int)sizeof tmpl) {
		snprintf(why, VBFS_WHY_LEN, "TMPDIR is too long");
		return NULL;
	}
	if (!mkdtemp(tmpl)) {
		snprintf(why, VBFS_WHY_LEN, "%s: %s", tmpl, strerror(errno));
		return NULL;
	}
	char *dir = realpath(tmpl, NULL);
	char *mnt = dir ? join(dir, "mnt") : NULL;
	char *scr = dir ? join(dir, "scratch") : NULL;
	if (!dir || !mnt || !scr || mkdir(mnt, 0700) || mkdir(scr, 0700)) {
		snprintf(why, VBFS_WHY_LEN, "%s: %s", tmpl, strerror(errno));
		free(mnt);
		free(scr);
		free(dir);
		drill_rmtree(tmpl);
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

int drill_rmtree(const char *path)
{
	/* FTW_MOUNT: a mountpoint that is still mounted belongs to another
	 * filesystem and is skipped, so we never delete through a mount. */
	return nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

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
			drill_status_text(status, st, sizeof st);
			last_line(pm->errlog, msg, sizeof msg);
			snprintf(why, VBFS_WHY_LEN, "vbfs exited (%s): %s", st,
				 msg[0] ? msg : "no message");
			pm->pid = 0;
			return VBFS_ERR_IO;
		}
		if (drill_stop) {
			snprintf(why, VBFS_WHY_LEN, "interrupted");
			return VBFS_ERR_INTERRUPTED;
		}
		if (vbfs_monotonic() > deadline) {
			snprintf(why, VBFS_WHY_LEN, "vbfs did not mount within %.0f s",
				 MOUNT_TIMEOUT);
			return VBFS_ERR_IO;
		}
		sleep_s(0.005);
	}
}

const char *privmount_mount_opts;

vbfs_err privmount_start(struct privmount *pm, const char *work,
			 const char *store, const char *index,
			 char why[VBFS_WHY_LEN])
{
	memset(pm, 0, sizeof *pm);
	pm->status = -1;
	pm->mnt = join(work, "mnt");
	pm->log = join(work, "events.log");
	pm->errlog = join(work, "vbfs.err");
	if (!pm->mnt || !pm->log || !pm->errlog) {
		snprintf(why, VBFS_WHY_LEN, "out of memory");
		return VBFS_ERR_NOMEM;
	}
	const char *bin = privmount_find_vbfs();
	if (!bin) {
		snprintf(why, VBFS_WHY_LEN, "no vbfs binary found (set VBFS_BIN, "
			 "or install vbfs beside vbfsctl)");
		return VBFS_ERR_IO;
	}
	char *idx = realpath(index, NULL), *sto = realpath(store, NULL);
	if (!idx || !sto) {
		snprintf(why, VBFS_WHY_LEN, "%s: %s", idx ? store : index, strerror(errno));
		free(idx);
		free(sto);
		return VBFS_ERR_IO;
	}
	char eidx[2 * PATH_MAX], elog[2 * PATH_MAX], opts[4 * PATH_MAX + 32];
	opt_escape(idx, eidx, sizeof eidx);
	opt_escape(pm->log, elog, sizeof elog);
	snprintf(opts, sizeof opts, "index=%s,log=%s%s%s", eidx, elog,
		 privmount_mount_opts && *privmount_mount_opts ? "," : "",
		 privmount_mount_opts ? privmount_mount_opts : "");
	if (privmount_mount_opts && strstr(privmount_mount_opts, "allow_other"))
		chmod(work, 0711);   /* others may pass through to mnt/, not list */

	int errfd = open(pm->errlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	const char *argv[] = { bin, "-f", "-o", opts, sto, pm->mnt, NULL };
	struct drill_spawn s = {
		.argv = argv, .stdout_fd = errfd, .stderr_fd = errfd,
		.new_group = true, .die_with_parent = true,
	};
	pm->pid = drill_spawn(&s, why);
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
	struct drill_spawn s = { .argv = argv, .stdout_fd = devnull, .stderr_fd = devnull };
	pid_t pid = drill_spawn(&s, why);
	if (devnull >= 0)
		close(devnull);
	if (pid < 0)
		return -1;
	int status;
	if (drill_wait(pid, timeout, false, &status) == DRILL_TIMEOUT) {
		kill(pid, SIGKILL);
		drill_wait(pid, -1, false, &status);
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
		sleep_s(0.2);
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
		if (drill_wait(pm->pid, DAEMON_GRACE, false, &status) == DRILL_TIMEOUT) {
			kill(pm->pid, SIGTERM);
			kill(pm->pid, SIGCONT);     /* a stopped daemon would sit on it */
			if (drill_wait(pm->pid, 5, false, &status) == DRILL_TIMEOUT) {
				kill(pm->pid, SIGKILL);
				drill_wait(pm->pid, -1, false, &status);
			}
		}
		pm->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		pm->pid = 0;
		/* 0 and 1 are the daemon's verdicts; anything else means the
		 * mount itself broke during the drill. */
		if (pm->status != 0 && pm->status != 1) {
			char st[64], msg[VBFS_WHY_LEN / 2];
			drill_status_text(status, st, sizeof st);
			last_line(pm->errlog, msg, sizeof msg);
			snprintf(why, VBFS_WHY_LEN, "vbfs exited abnormally (%s): %s", st,
				 msg[0] ? msg : "no message");
			crashed = true;
		}
	}
	if (rmdir(pm->mnt) != 0 && errno != ENOENT) {
		if (!crashed)
			snprintf(why, VBFS_WHY_LEN, "%s: %s", pm->mnt, strerror(errno));
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

static int kind_index(const char *name)
{
	for (int k = 0; k < VBFS_EV_COUNT; k++) {
		const char *s = vbfs_event_kind_name((enum vbfs_event_kind)k);
		if (s && !strcmp(s, name))
			return k;
	}
	return -1;
}

vbfs_err privmount_stats(const char *mnt, struct vbfs_stats *st, char why[VBFS_WHY_LEN])
{
	memset(st, 0, sizeof *st);
	char *txt = get_xattr(mnt, "user.vbfs.stats");
	if (!txt) {
		snprintf(why, VBFS_WHY_LEN, "%s: user.vbfs.stats: %s", mnt, strerror(errno));
		return VBFS_ERR_IO;
	}
	cJSON *o = cJSON_Parse(txt);
	free(txt);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		snprintf(why, VBFS_WHY_LEN, "%s: user.vbfs.stats is not a JSON object", mnt);
		return VBFS_ERR_FORMAT;
	}
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "blocks_verified");
	st->blocks_verified = cJSON_IsNumber(v) ? (uint64_t)v->valuedouble : 0;
	v = cJSON_GetObjectItemCaseSensitive(o, "bytes_verified");
	st->bytes_verified = cJSON_IsNumber(v) ? (uint64_t)v->valuedouble : 0;
	const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "events"), *it;
	cJSON_ArrayForEach(it, ev) {
		int k = it->string ? kind_index(it->string) : -1;
		if (k >= 0 && cJSON_IsNumber(it))
			st->events[k] = (uint64_t)it->valuedouble;
	}
	cJSON_Delete(o);
	return VBFS_OK;
}

char *privmount_index_of(const char *mnt)
{
	return get_xattr(mnt, "user.vbfs.index");
}

bool drill_kind_is_damage(const char *kind, int *kind_idx)
{
	int k = kind_index(kind);
	if (kind_idx)
		*kind_idx = k;
	if (!strcmp(kind, "unindexed") || !strcmp(kind, "transient"))
		return false;
	return k < 0 || vbfs_event_is_damage((enum vbfs_event_kind)k);
}

static void keep_event(struct drill_events *ev, const cJSON *o, const char *kind)
{
	if (ev->kept >= DRILL_KEEP_EVENTS)
		return;
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(o, "path");
	const cJSON *block = cJSON_GetObjectItemCaseSensitive(o, "block");
	const cJSON *off = cJSON_GetObjectItemCaseSensitive(o, "offset");
	char buf[VBFS_WHY_LEN];
	int n = snprintf(buf, sizeof buf, "%s %s", kind,
			 cJSON_IsString(path) ? path->valuestring : "?");
	if (cJSON_IsNumber(block) && block->valuedouble >= 0 && n > 0 && (size_t)n < sizeof buf)
		snprintf(buf + n, sizeof buf - (size_t)n, " block %.0f offset %.0f",
			 block->valuedouble, cJSON_IsNumber(off) ? off->valuedouble : 0.0);
	ev->first[ev->kept] = strdup(buf);
	if (ev->first[ev->kept])
		ev->kept++;
}

vbfs_err drill_read_events(const char *log, struct drill_events *ev,
			   char why[VBFS_WHY_LEN])
{
	memset(ev, 0, sizeof *ev);
	FILE *f = fopen(log, "re");
	if (!f) {
		if (errno == ENOENT)
			return VBFS_OK;
		snprintf(why, VBFS_WHY_LEN, "%s: %s", log, strerror(errno));
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
		if (drill_kind_is_damage(kind->valuestring, &k)) {
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

void drill_events_free(struct drill_events *ev)
{
	for (size_t i = 0; i < ev->kept; i++)
		free(ev->first[i]);
	memset(ev, 0, sizeof *ev);
}
