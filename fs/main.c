/*
 * main.c - vbfs, the mount: options, index and store, the FUSE session,
 * signals, the summary and the exit status.
 *
 *   vbfs [-f] [-d] -o index=DIR[,log=FILE][,verify_key=PUB][,expect_backup_id=ID]
 *        [,max_age=DURATION] STORE MOUNTPOINT
 *
 * Exit status: 0 nothing found, 1 a damage event occurred while mounted,
 * 2 usage or operational error (bad index, mount failed).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <unistd.h>
#include <fuse_lowlevel.h>
#include "unindexed.h"
#include "vbfs_fs.h"

struct cli {
	char *store, *index, *log, *verify_key, *unindexed, *mountpoint;
	char *replica;                  /* every replica= value, joined by ':' */
	int replica_dangling;           /* a value before the last ends in a lone '\' */
	char *parity;
	char *expect_backup_id, *max_age;
	unsigned cache_mb, readahead, read_ahead_kb, next_files;
	int help, version, allow_other, nonempty, allow_store_mismatch;
};

enum { KEY_HELP, KEY_VERSION, KEY_ALLOW_OTHER, KEY_NONEMPTY, KEY_REPLICA };

#define OPT(t, p) { t, offsetof(struct cli, p), 1 }
static const struct fuse_opt cli_opts[] = {
	OPT("index=%s", index),
	OPT("log=%s", log),
	OPT("verify_key=%s", verify_key),
	OPT("expect_backup_id=%s", expect_backup_id),
	OPT("max_age=%s", max_age),
	OPT("unindexed=%s", unindexed),
	OPT("cache_mb=%u", cache_mb),
	OPT("readahead=%u", readahead),
	OPT("read_ahead_kb=%u", read_ahead_kb),
	OPT("next_files=%u", next_files),
	OPT("allow_store_mismatch", allow_store_mismatch),
	FUSE_OPT_KEY("replica=", KEY_REPLICA),
	OPT("parity=%s", parity),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("nonempty", KEY_NONEMPTY),
	FUSE_OPT_END
};

static const char usage_text[] =
	"usage: vbfs [-f] [-d] -o index=DIR[,OPTIONS] STORE MOUNTPOINT\n"
	"\n"
	"Mount STORE read-only at MOUNTPOINT, verifying every block served against\n"
	"the SHA-256 block index DIR.  A read that touches a damaged block fails\n"
	"with EIO and is logged with path, block and offset.\n"
	"\n"
	"vbfs options (-o):\n"
	"  index=DIR            the index (required; built by 'vbfsctl build')\n"
	"  log=FILE             append events as JSON lines\n"
	"  verify_key=PUB       refuse an index not signed by this Ed25519 key\n"
	"  expect_backup_id=ID  refuse an index built for another backup id\n"
	"  max_age=DURATION     refuse an index built longer ago (e.g. 26h, 90m)\n"
	"  unindexed=hide|allow store entries the index lacks: hidden (default),\n"
	"                       or shown and served unverified with an event\n"
	"  cache_mb=N           verified-block cache (default 64)\n"
	"  readahead=N          blocks verified ahead of a sequential reader (default 4)\n"
	"  read_ahead_kb=N      kernel readahead for the mount (default 1024; 0 keeps)\n"
	"  next_files=N         on open, verify the first blocks of the next N files\n"
	"                       of the directory, as tar/cp/rsync read them (default 8)\n"
	"  replica=DIR[:DIR...] other copies of the store: a damaged block is served\n"
	"                       from the first whose bytes match the index\n"
	"                       (repeatable; a path with ':' or ',': see vbfs(1))\n"
	"  parity=DIR           parity from 'vbfsctl build --parity': rebuild a\n"
	"                       damaged block, hash it, serve it only if it matches\n"
	"  allow_store_mismatch mount even when fewer than half of the index's top-level\n"
	"                       entries are in STORE (normally refused: the index is\n"
	"                       not for this store)\n"
	"  allow_other          let other users in; modes and owners from the index\n"
	"                       are enforced (default_permissions)\n"
	"  nonempty             mount over a directory that is not empty (its\n"
	"                       entries are hidden while mounted)\n"
	"  -f  foreground (events also on stderr)   -d  FUSE debug\n"
	"\n"
	"Live counters: getfattr -n user.vbfs.stats --only-values MOUNTPOINT\n"
	"On unmount: a one-line summary on stderr (with -f) and in syslog; exit\n"
	"status 0 nothing found, 1 damage seen, 2 error (a script waits for it: -f).\n";

/*
 * libfuse's own messages.  Unknown -o options are libfuse's to refuse (it
 * knows its own and the kernel's); its error lines ("fuse: unknown
 * option(s): `-o foo'") are reworded to the one-line "vbfs: ..." form every
 * vbfs error has.  Everything else (-d's debug trace) passes unchanged.
 */
static void fuse_message(enum fuse_log_level level, const char *fmt, va_list ap)
{
	(void)level;
	if (!strncmp(fmt, "fuse: ", 6)) {
		fputs("vbfs: ", stderr);
		fmt += 6;
	}
	vfprintf(stderr, fmt, ap);
}

static int cli_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cli *cl = data;
	(void)outargs;
	switch (key) {
	case FUSE_OPT_KEY_OPT:
		return 1;   /* libfuse's (fuse_session_new refuses what it does not know) */
	case FUSE_OPT_KEY_NONOPT:
		if (!cl->store) {
			cl->store = strdup(arg);
			return 0;
		}
		if (!cl->mountpoint)
			cl->mountpoint = strdup(arg);   /* checked before libfuse does */
		return 1;   /* the mountpoint: fuse_parse_cmdline takes it */
	case KEY_HELP: cl->help = 1; return 0;
	case KEY_VERSION: cl->version = 1; return 0;
	case KEY_ALLOW_OTHER: cl->allow_other = 1; return 1;
	case KEY_NONEMPTY: cl->nonempty = 1; return 0;   /* ours: libfuse 3 has none */
	case KEY_REPLICA: {   /* repeatable: each value adds to the list */
		const char *v = arg + strlen("replica=");
		size_t had = cl->replica ? strlen(cl->replica) + 1 : 0;
		char *list = realloc(cl->replica, had + strlen(v) + 1);
		if (!list)
			return -1;
		/* A value ending in a lone backslash would escape the ':' that
		 * joins it to the next, making two directories one name. */
		size_t run = 0;
		while (run < had - (had > 0) && list[had - 2 - run] == '\\')
			run++;
		if (run % 2)
			cl->replica_dangling = 1;
		if (had)
			list[had - 1] = ':';
		strcpy(list + had, v);
		cl->replica = list;
		return 0;
	}
	}
	return 1;
}

/* Everything main() owns, so an early exit can release it (LeakSanitizer
 * turns a leak at exit into exit status 1: a usage error must stay 2). */
static struct fuse_args args;
static struct fuse_cmdline_opts cmd;
static struct cli c = { .cache_mb = 64, .readahead = 4, .read_ahead_kb = 1024, .next_files = 8 };
static struct vbfs_fs fs = { .log_fd = -1, .store_fd = -1 };
static struct fuse_session *se;
static bool cache_ready, sink_ready;

static void release_all(void)
{
	if (se)
		fuse_session_destroy(se);
	se = NULL;
	files_free(fs.files);   /* after prefetch_stop: queued blocks hold files */
	lookahead_free(fs.lookahead);
	fs.lookahead = NULL;
	if (cache_ready)
		cache_destroy(&fs.cache);
	if (sink_ready)
		sink_close(&fs);
	else if (fs.log_fd >= 0)
		close(fs.log_fd);
	vbfs_heal_close(fs.heal);
	vbfs_index_close(fs.index);
	if (fs.store_fd >= 0)
		close(fs.store_fd);
	free(fs.store);
	free(fs.index_path);
	free(cmd.mountpoint);
	fuse_opt_free_args(&args);
	free(c.store); free(c.index); free(c.log); free(c.verify_key); free(c.unindexed);
	free(c.mountpoint); free(c.replica); free(c.parity);
	free(c.expect_backup_id); free(c.max_age);
}

/* "vbfs: <what>: <why>" on stderr, release everything, exit 2. */
static _Noreturn __attribute__((format(printf, 1, 2))) void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("vbfs: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	release_all();
	exit(VBFS_EXIT_USAGE);
}

/* A root daemon can raise the mount's readahead so the kernel sends 1 MiB
 * READs (one block) instead of 128 KiB pieces.  Runs on its own thread:
 * stat() of the mountpoint needs the session loop to answer. */
struct bdi_arg { char *mountpoint; unsigned kb; };

static void *raise_readahead(void *p)
{
	struct bdi_arg *a = p;
	struct stat st;
	char path[128], val[32];
	if (a->kb && stat(a->mountpoint, &st) == 0) {
		snprintf(path, sizeof path, "/sys/class/bdi/%u:%u/read_ahead_kb",
			 major(st.st_dev), minor(st.st_dev));
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			int n = snprintf(val, sizeof val, "%u", a->kb);
			if (write(fd, val, (size_t)n) < 0) { /* not root: keep the default */ }
			close(fd);
		}
	}
	free(a->mountpoint);
	free(a);
	return NULL;
}

static void summary(struct vbfs_fs *f)
{
	char line[1024];
	size_t n = 0;
	uint64_t damage = sink_damage_count(f);
	n += (size_t)snprintf(line + n, sizeof line - n,
		"vbfs: unmounted %s: %llu blocks (%llu bytes) verified, %llu damage event%s",
		f->store, (unsigned long long)atomic_load(&f->blocks_verified),
		(unsigned long long)atomic_load(&f->bytes_verified),
		(unsigned long long)damage, damage == 1 ? "" : "s");
	for (int k = 0; k < VBFS_EV_COUNT && n < sizeof line; k++) {
		uint64_t count = atomic_load(&f->events[k]);
		if (count)
			n += (size_t)snprintf(line + n, sizeof line - n, ", %s %llu",
					      vbfs_event_kind_name(k), (unsigned long long)count);
	}
	fprintf(stderr, "%s\n", line);
	syslog(damage ? LOG_ERR : LOG_INFO, "%s", line + strlen("vbfs: "));
}

/*
 * The replica list: ':' separates directories and a backslash takes the
 * next character as it is ("\:" a colon, "\\" a backslash), so any path
 * can be named.  That is on top of libfuse's own escapes in the -o string
 * ("\," a comma, "\\" a backslash), which are undone first: the directory
 * "a:b,c" is -o 'replica=a\\:b\,c'.  replica= may be given more than once;
 * the lists add up, in order.  Split in place: 0, -1 for a trailing
 * backslash, -2 for more than `max` directories.
 */
static int split_replicas(char *list, const char **dirs, size_t max, size_t *n)
{
	char *s = list, *d = list, *item = list;
	*n = 0;
	for (;; s++) {
		if (*s == '\\') {
			if (!*++s)
				return -1;
			*d++ = *s;
		} else if (*s == ':' || !*s) {
			bool end = !*s;
			*d++ = '\0';
			if (*item) {   /* an empty item ("a::b") names nothing */
				if (*n == max)
					return -2;
				dirs[(*n)++] = item;
			}
			if (end)
				return 0;
			item = d;
		} else {
			*d++ = *s;
		}
	}
}

static void open_heal(struct vbfs_fs *f, char *replicas, const char *parity)
{
	const char *dirs[HEAL_SOURCES_MAX - 1];
	struct vbfs_heal_opts ho = { .replicas = dirs, .parity = parity, .store = f->store };
	char why[VBFS_WHY_LEN];
	int rc = replicas ? split_replicas(replicas, dirs, HEAL_SOURCES_MAX - 1, &ho.nreplicas) : 0;
	if (rc == -1)
		die("-o replica=: ends in a backslash that escapes nothing");
	if (rc == -2)
		die("-o replica: at most %d directories", HEAL_SOURCES_MAX - 1);
	if (replicas && !ho.nreplicas)
		die("-o replica=: needs a directory");
	if (parity && !*parity)
		die("-o parity=: needs a directory");
	if (vbfs_heal_open(f->index, &ho, &f->heal, why))
		die("%s", why);
}

/* Is `dir` empty?  -1 with errno when it cannot be read. */
static int dir_is_empty(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	struct dirent *e;
	int empty = 1;
	while (empty && (e = readdir(d)))
		empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
	closedir(d);
	return empty;
}

/* Refuse a mountpoint that is the store or inside it (the mount would
 * hide, or serve, itself), and one that is not empty unless -o nonempty:
 * a mount there hides files somebody put there. */
static void refuse_mountpoint(const char *mnt, const char *store)
{
	char *m = realpath(mnt, NULL), *s = realpath(store, NULL);
	bool inside = false;
	if (m && s) {
		size_t n = strlen(s);
		inside = !strncmp(m, s, n) && (m[n] == '\0' || m[n] == '/' || n == 1);
	}
	free(m);
	free(s);
	if (inside)
		die("mountpoint %s: is the store or inside it (mount it elsewhere)", mnt);
	if (!c.nonempty && dir_is_empty(mnt) == 0)
		die("mountpoint %s: not empty (its files would be hidden; "
		    "-o nonempty mounts anyway)", mnt);
}

int main(int argc, char **argv)
{
	struct stat st;
	char why[VBFS_WHY_LEN];
	int ret = VBFS_EXIT_USAGE;

	fuse_set_log_func(fuse_message);
	args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	if (fuse_opt_parse(&args, &c, cli_opts, cli_proc) < 0)
		goto out;
	if (c.help || c.version) {
		if (c.help)
			fputs(usage_text, stdout);
		else
			printf("vbfs %s (index format %u, libfuse %s)\n", VBFS_VERSION,
			       VBFS_FORMAT_VERSION, fuse_pkgversion());
		ret = VBFS_EXIT_OK;
		goto out;
	}
	if (c.readahead > 64)
		die("-o readahead: must be 0..64 blocks");
	if (c.cache_mb < 1 || c.cache_mb > 65536)
		die("-o cache_mb: must be 1..65536");
	if (c.next_files > 64)
		die("-o next_files: must be 0..64");
	if (c.read_ahead_kb > 1048576)
		die("-o read_ahead_kb: must be 0..1048576");
	if (c.mountpoint && stat(c.mountpoint, &st) < 0)
		die("mountpoint %s: %s", c.mountpoint, strerror(errno));
	if (fuse_parse_cmdline(&args, &cmd) != 0)
		goto out;
	if (!c.store || !cmd.mountpoint)
		die("needs STORE and MOUNTPOINT (try 'vbfs --help')");
	if (!c.index)
		die("-o index=DIR is required (try 'vbfs --help')");
	if (c.unindexed && strcmp(c.unindexed, "hide") && strcmp(c.unindexed, "allow"))
		die("-o unindexed=%s: must be hide or allow", c.unindexed);
	fs.allow_unindexed = c.unindexed && !strcmp(c.unindexed, "allow");
	if (stat(c.store, &st) < 0)
		die("store %s: %s", c.store, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		die("store %s: not a directory", c.store);
	if (stat(cmd.mountpoint, &st) < 0)
		die("mountpoint %s: %s", cmd.mountpoint, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		die("mountpoint %s: not a directory", cmd.mountpoint);
	{
		/* Mounting over a live mount would hide it: refuse. */
		char *parent = malloc(strlen(cmd.mountpoint) + 4);
		struct stat pst;
		if (parent) {
			sprintf(parent, "%s/..", cmd.mountpoint);
			if (stat(parent, &pst) == 0 && (pst.st_dev != st.st_dev || pst.st_ino == st.st_ino)) {
				free(parent);
				die("mountpoint %s: already a mount point (unmount it first)",
				    cmd.mountpoint);
			}
			free(parent);
		}
	}
	refuse_mountpoint(cmd.mountpoint, c.store);
	if (stat(c.index, &st) < 0)
		die("index %s: %s", c.index, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		die("index %s: not a directory", c.index);

	/* Resolve everything relative now: daemonizing moves us to /. */
	fs.store = realpath(c.store, NULL);
	fs.store_fd = vbfs_store_open_root(fs.store);
	if (fs.store_fd < 0)
		die("store %s: %s", c.store, strerror(errno));
	/* Read-only to the kernel too; with allow_other, the index's modes and
	 * owners are enforced by the kernel (default_permissions). */
	fuse_opt_add_arg(&args, "-oro");
	fuse_opt_add_arg(&args, "-osubtype=vbfs");
	if (c.allow_other)
		fuse_opt_add_arg(&args, "-odefault_permissions");
	{
		char *fsname = NULL;
		fuse_opt_add_opt_escaped(&fsname, fs.store);
		char *opt = malloc(strlen(fsname) + 16);
		if (opt) {
			sprintf(opt, "-ofsname=%s", fsname);
			fuse_opt_add_arg(&args, opt);
			free(opt);
		}
		free(fsname);
	}

	/* The session now, before the index and the log are opened: an
	 * option libfuse refuses changes nothing on disk. */
	se = fuse_session_new(&args, &vbfs_ops, sizeof vbfs_ops, &fs);
	if (!se)
		goto out;

	{
		/* The index is a private copy from here on (manifest/snapshot.c):
		 * nothing done to c.index while mounted changes what is served. */
		struct vbfs_index_expect x = { .verify_key = c.verify_key,
					       .backup_id = c.expect_backup_id };
		if (c.max_age && (vbfs_parse_duration(c.max_age, &x.max_age) || x.max_age <= 0))
			die("-o max_age=%s: must be a duration above 0 (e.g. 26h, 90m)",
			    c.max_age);
		if (vbfs_index_open_expect(c.index, &x, &fs.index, why))
			die("%s", why);
	}
	if (!c.allow_store_mismatch &&
	    vbfs_store_check_index(fs.store_fd, fs.store, fs.index, why))
		die("%s (-o allow_store_mismatch mounts it anyway)", why);
	fs.meta = vbfs_index_meta(fs.index);
	fs.index_path = strdup(vbfs_index_path(fs.index));
	if (c.replica_dangling)
		die("-o replica=: ends in a backslash that escapes nothing");
	if (c.replica || c.parity)
		open_heal(&fs, c.replica, c.parity);
	if (c.log) {
		/* Never through a symlink: a root daemon logging into a directory
		 * others can write must not append to a file of their choosing. */
		fs.log_fd = open(c.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fs.log_fd < 0)
			die("log %s: %s", c.log, errno == ELOOP ? "a symbolic link (not followed)"
			    : strerror(errno));
	}
	fs.foreground = cmd.foreground;
	fs.readahead_blocks = c.readahead;
	fs.next_files = c.next_files;
	unsigned slots = (unsigned)(((uint64_t)c.cache_mb << 20) / fs.meta->block_size);
	if (slots < 2 * c.readahead + 8)
		slots = 2 * c.readahead + 8;   /* room for readers plus the window */
	cache_ready = true;   /* cache_destroy copes with a failed init */
	if (cache_init(&fs.cache, slots, fs.meta->block_size))
		die("out of memory");
	sink_init(&fs);
	sink_ready = true;
	if (!(fs.files = files_new()) || !(fs.lookahead = lookahead_new()))
		die("%s%s", "out of memory", "");

	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, cmd.mountpoint) != 0) {
		fprintf(stderr, "vbfs: mount %s failed\n", cmd.mountpoint);
		goto out_signals;
	}
	if (fuse_daemonize(cmd.foreground) != 0)
		goto out_unmount;
	fs.prefetch = prefetch_start(&fs, vbfs_ncpu());
	{
		struct bdi_arg *a = malloc(sizeof *a);
		pthread_t th;
		if (a && (a->mountpoint = realpath(cmd.mountpoint, NULL))) {
			a->kb = c.read_ahead_kb;
			if (pthread_create(&th, NULL, raise_readahead, a) == 0)
				pthread_detach(th);
		}
	}
	{
		char built[32], id[sizeof fs.meta->backup_id];
		vbfs_rfc3339(fs.meta->updated, built);
		/* The id is any bytes a build was given: no control characters
		 * into the log line. */
		for (size_t i = 0; i < sizeof id; i++) {
			unsigned char ch = (unsigned char)fs.meta->backup_id[i];
			id[i] = ch && (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
		}
		syslog(LOG_INFO, "mounted %s at %s (index %s: backup id %s, built %s; root "
		       "verified%s; served from a private copy)", fs.store, cmd.mountpoint,
		       fs.index_path, id, built,
		       c.verify_key ? ", signature verified" : "");
	}

	if (cmd.singlethread)
		ret = fuse_session_loop(se);
	else {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();
		if (!cfg)
			goto out_unmount;
		fuse_loop_cfg_set_clone_fd(cfg, (unsigned)cmd.clone_fd);
		/* Unset options come back as UINT_MAX, which libfuse 3.14's setters
		 * warn about (libfuse#1003): pass only what the user gave. */
		if (cmd.max_threads > 0 && cmd.max_threads <= 100000)
			fuse_loop_cfg_set_max_threads(cfg, cmd.max_threads);
		if (cmd.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(cfg, cmd.max_idle_threads);
		ret = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	prefetch_stop(fs.prefetch);
	unindexed_free_all();
	summary(&fs);
	ret = ret < 0 ? VBFS_EXIT_USAGE : sink_damage_count(&fs) ? VBFS_EXIT_DAMAGE : VBFS_EXIT_OK;
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
	se = NULL;
out:
	release_all();
	return ret;
}
