/*
 * cmd_sample.c - `vbfsctl sample`: the sample-restore drill.
 *
 * Picks N indexed regular files with a seeded PRNG, copies each through a
 * vbfs mount into a scratch directory (so every byte copied was verified
 * block by block by the mount), then checks the copy's size and every
 * block's SHA-256 against the index.  With --store/--index the mount is a
 * private one (privmount.c) that is always unmounted and removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include "tool.h"
#include "heal.h"
#include "history.h"
#include "privmount.h"
#include "rng.h"
#include "workdir.h"

/* The projection's byte rate wants at least this many bytes read beyond
 * files' first blocks; when the sample holds fewer, that many more are
 * read (verified, through the mount) from the largest indexed file. */
#define CALIBRATE_BYTES (16u << 20)

struct pick {
	uint64_t id, size;
	char *path;
	bool ok;
	bool damaged;                   /* failed because the backup is damaged */
	char reason[160];
	int64_t fail_offset;            /* -1: not about one offset */
	/* timing, for the projection: open + create + the first block, then the rest */
	double first_seconds, rest_seconds;
	uint64_t first_bytes, rest_bytes;
};

/*
 * How a full restore was projected: time = files x per_file + bytes / rate.
 * per_file is what a file costs beyond its bytes (open, create, the
 * round trips of a small read), measured on the sampled files; the rate
 * is measured on bytes read in bulk (beyond the first block of a file),
 * so a sample of small files does not pass its per-file cost off as a
 * slow byte rate (the old model, bytes / sampled throughput, projected a
 * restore that took 9.6 s at 111 s from 126.9 KiB of small files).
 */
struct projection {
	bool known;
	const char *model;              /* "files_and_bytes" or "per_file" */
	double seconds, per_file, rate; /* rate: bytes/s, 0 when not used */
	uint64_t rate_bytes;            /* bytes the rate was measured on */
	uint64_t calibration_bytes;     /* of those, read beyond the sample */
	size_t files_timed;             /* sampled files the per-file cost is from */
	char *calibration_path;
};

struct sample {
	/* options */
	const char *mount, *store, *index;
	char *index_from_mount;         /* owned: read from the mount's xattr */
	uint64_t n, seed;
	bool seed_given, keep, json, has_rto;
	double rto;
	/* state */
	vbfs_index *idx;
	vbfs_txn *txn;
	uint32_t block_size;
	struct pick *files;             /* every regular file, then the picks first */
	size_t nfiles, npicked;
	uint64_t store_bytes;
	char *work, *scratch;
	const char *mnt;
	struct privmount pm;
	bool own_mount;
	struct privmount_stats before;       /* --mount: counters when we started */
	bool have_before;
	void *buf;
	uint64_t bytes_restored;
	double restore_seconds;
	double cal_seconds;             /* the calibration read (not in restore_seconds) */
	uint64_t cal_bytes;
	char *cal_path;
	struct privmount_events ev;
	struct tool_heal heal;          /* --replica, --parity: the private mount heals */
	struct tool_heal_report healed;
	struct tool_progress progress;  /* drawn only when stderr is a terminal */
	struct vbfs_progress done;
};

/* ---- options ------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vbfsctl sample (--mount MOUNTPOINT | --store STORE --index INDEX)\n"
		"                      [-n N] [--seed S] [--rto DURATION] [--replica DIR]...\n"
		"                      [--parity DIR] [--keep] [--json]\n\n"
		"Sample-restore drill: copy N random indexed files through a vbfs mount into a\n"
		"scratch directory under $TMPDIR, check each copy's size and SHA-256 against\n"
		"the index, and report per file OK or why it failed.\n\n"
		"  --mount MNT       use a running vbfs mount (index read from the mount)\n"
		"  --store, --index  mount STORE privately with INDEX for the drill\n"
		"  -n N              files to sample (default 10)\n"
		"  --seed S          PRNG seed: the same seed picks the same files\n"
		"  --rto DURATION    project a full restore (files x per-file cost + bytes at\n"
		"                    the bulk rate, both measured) against this objective\n"
		"  --mount-opts OPTS  extra vbfs -o options for the private mount\n"
		"                     (allow_other: other users, e.g. a database server)\n"
		"  --replica DIR     (with --store) the private mount serves a damaged block\n"
		"                    from this copy of the store (repeatable); --parity DIR:\n"
		"                    from parity.  Still damage, but the files restore whole\n"
		"  --keep            keep the scratch directory\n"
		"  --json            one JSON document on stdout\n\n"
		"Verdict: met, missed (the projection exceeds --rto), failed (a file could not\n"
		"be restored for another reason) or damaged (a file's bytes were damaged or\n"
		"missing, or the mount logged damage).\n"
		"Exit: 0 met; 1 missed, failed or damaged; 2 usage or operational error.\n");
}

static uint64_t parse_u64(const char *what, const char *s)
{
	char *end;
	errno = 0;
	if (!s[0])
		tool_usage_error("sample", "%s: not a number: '%s'", what, s);
	if (s[0] == '-')
		tool_usage_error("sample", "%s %s: must be >= %s", what, s,
				 strcmp(what, "-n") ? "0" : "1");
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		tool_usage_error("sample", "%s: not a number: '%s'", what, s);
	return v;
}

static void parse_args(struct sample *s, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mount", required_argument, NULL, 'm' },
		{ "store", required_argument, NULL, 's' },
		{ "index", required_argument, NULL, 'i' },
		{ "seed",  required_argument, NULL, 'S' },
		{ "rto",   required_argument, NULL, 'r' },
		{ "mount-opts", required_argument, NULL, 'O' },
		{ "replica", required_argument, NULL, 'R' },
		{ "parity", required_argument, NULL, 'P' },
		{ "keep",  no_argument,       NULL, 'k' },
		{ "json",  no_argument,       NULL, 'j' },
		{ "help",  no_argument,       NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;
	s->n = 10;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":n:", opts, NULL)) != -1) {
		switch (c) {
		case 'm': s->mount = optarg; break;
		case 's': s->store = optarg; break;
		case 'i': s->index = optarg; break;
		case 'n': s->n = parse_u64("-n", optarg); break;
		case 'S': s->seed = parse_u64("--seed", optarg); s->seed_given = true; break;
		case 'r':
			s->rto = tool_parse_objective("sample", "--rto", optarg);
			s->has_rto = true;
			break;
		case 'k': s->keep = true; break;
		case 'O': privmount_mount_opts = optarg; break;
		case 'R': tool_heal_add_replica(&s->heal, "sample", optarg); break;
		case 'P': tool_heal_set_parity(&s->heal, "sample", optarg); break;
		case 'j': s->json = true; break;
		case 'h': usage(stdout); exit(VBFS_EXIT_OK);
		default: tool_getopt_error("sample", c, argv);
		}
	}
	if (optind < argc)
		tool_usage_error("sample", "unexpected argument '%s'", argv[optind]);
	if (!s->mount && !(s->store && s->index))
		tool_usage_error("sample", "give --mount MOUNTPOINT, or --store STORE and --index INDEX");
	if (s->mount && s->store)
		tool_usage_error("sample", "--mount and --store exclude each other");
	if (tool_heal_given(&s->heal) && !s->store)
		tool_usage_error("sample", "--replica and --parity need --store and --index "
				 "(a running mount heals with its own -o replica=, parity=)");
	if (tool_heal_given(&s->heal))
		privmount_mount_opts = tool_heal_privmount_opts(&s->heal, "sample", privmount_mount_opts);
	if (s->n == 0)
		tool_usage_error("sample", "-n 0: must be >= 1");
	if (!s->seed_given) {
		uint32_t r;
		if (getrandom(&r, sizeof r, 0) != sizeof r)
			r = (uint32_t)(vbfs_monotonic() * 1e6) ^ (uint32_t)getpid();
		s->seed = r;
	}
}

/* ---- picking ------------------------------------------------------------ */

static int collect(void *ctx, const struct vbfs_entry *e)
{
	struct sample *s = ctx;
	if (e->type != VBFS_T_REG)
		return 0;
	if (s->nfiles % 1024 == 0)
		s->files = realloc(s->files, (s->nfiles + 1024) * sizeof *s->files);
	if (!s->files)
		tool_die("sample: out of memory");
	struct pick *p = &s->files[s->nfiles++];
	memset(p, 0, sizeof *p);
	p->id = vbfs_entry_data_id(e);   /* a hard link's digests are its holder's */
	p->size = e->size;
	p->path = xmalloc(e->path_len + 1);
	memcpy(p->path, e->path, e->path_len);
	p->path[e->path_len] = '\0';
	p->fail_offset = -1;
	s->store_bytes += e->size;
	return 0;
}

/* Partial Fisher-Yates over the files in id order: the first npicked are
 * the sample.  Same index + same seed = same files. */
static void pick(struct sample *s)
{
	struct rng r;
	rng_seed(&r, s->seed);
	s->npicked = s->n < s->nfiles ? (size_t)s->n : s->nfiles;
	for (size_t i = 0; i < s->npicked; i++) {
		size_t j = i + (size_t)rng_below(&r, s->nfiles - i);
		struct pick t = s->files[i];
		s->files[i] = s->files[j];
		s->files[j] = t;
	}
}

static void open_index(struct sample *s)
{
	char why[VBFS_WHY_LEN] = "";
	vbfs_err err = vbfs_index_open(s->index, NULL, &s->idx, why);
	if (err != VBFS_OK)
		tool_die("sample: index %s: %s", s->index, why[0] ? why : vbfs_strerror(err));
	s->block_size = vbfs_index_meta(s->idx)->block_size;
	if ((err = vbfs_txn_begin(s->idx, &s->txn)) != VBFS_OK)
		tool_die("sample: index %s: %s", s->index, vbfs_strerror(err));
	if ((err = vbfs_txn_foreach(s->txn, collect, s)) != VBFS_OK)
		tool_die("sample: index %s: %s", s->index, vbfs_strerror(err));
}

/* ---- restore and check one file ----------------------------------------- */

/* A file failed.  `damaged`: the backup's bytes are wrong or missing (not
 * an error of ours or of the machine). */
static bool fail(struct pick *p, bool damaged, int64_t offset, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static bool fail(struct pick *p, bool damaged, int64_t offset, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->reason, sizeof p->reason, fmt, ap);
	va_end(ap);
	p->ok = false;
	p->damaged = damaged;
	p->fail_offset = offset;
	return false;
}

static bool interrupted(void)
{
	return tool_stop != 0;
}

static ssize_t read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r < 0 && errno == EINTR && !interrupted())
			continue;
		if (r < 0)
			return got ? (ssize_t)got : -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* Copy MNT/path to the scratch file, block-aligned reads, so a failing read's
 * offset is the damaged block's start. */
static bool restore_one(struct sample *s, struct pick *p, const char *dst)
{
	char src[PATH_MAX];
	snprintf(src, sizeof src, "%s/%s", s->mnt, p->path);
	/* Timed as a restore tool copies a file: cp -a also stats it, asks
	 * for its extended attributes and sets the copy's mode and times; on
	 * a FUSE mount those round trips are much of a small file's cost. */
	double t0 = vbfs_monotonic();
	struct stat sst;
	int in = lstat(src, &sst) == 0 ? open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
	if (in < 0)
		return errno == ENOENT ? fail(p, true, -1, "missing from the mount")
				       : fail(p, false, -1, "open: %s", strerror(errno));
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		int e = errno;
		close(in);
		tool_die("sample: scratch %s: %s", dst, strerror(e));
	}
	uint64_t off = 0;
	double t_first = -1, t_last = -1;
	bool ok = true;
	for (;;) {
		ssize_t r = read_full(in, s->buf, s->block_size);
		if (interrupted()) {
			ok = false;
			break;
		}
		if (r < 0) {
			ok = errno == EIO
				? fail(p, true, (int64_t)off, "EIO at byte offset %" PRIu64, off)
				: fail(p, false, (int64_t)off, "read error at byte offset %" PRIu64
				       ": %s", off, strerror(errno));
			break;
		}
		if (r == 0)
			break;
		if (vbfs_write_all(out, s->buf, (size_t)r, -1) != 0)
			tool_die("sample: scratch %s: %s", dst, strerror(errno));
		t_last = vbfs_monotonic();
		if (t_first < 0) {
			t_first = t_last;
			p->first_bytes = (uint64_t)r;
		}
		off += (uint64_t)r;
		s->bytes_restored += (uint64_t)r;
		s->done.bytes_done += (uint64_t)r;
		tool_progress_cb(&s->progress, &s->done);
	}
	char names[256];
	const struct timespec times[2] = { sst.st_atim, sst.st_mtim };
	(void)llistxattr(src, names, sizeof names);     /* what cp -a would copy */
	close(in);
	if (fchmod(out, (sst.st_mode & 0700) | 0600) != 0 || futimens(out, times) != 0
	    || close(out) != 0)
		tool_die("sample: scratch %s: %s", dst, strerror(errno));
	double t_end = vbfs_monotonic();
	/* The bytes after the first block, as they stream, give the rate;
	 * everything else (stat, open, create, the first block, close,
	 * metadata) is the file's fixed cost. */
	p->rest_seconds = t_first >= 0 ? t_last - t_first : 0;
	p->first_seconds = t_end - t0 - p->rest_seconds;
	p->rest_bytes = off - p->first_bytes;
	s->restore_seconds += t_end - t0;
	if (ok && off != p->size)
		ok = fail(p, true, -1, "size differs: index %" PRIu64 " bytes, restored %" PRIu64,
			  p->size, off);
	return ok;
}

/* The restored copy, block by block, against the index. */
static bool check_copy(struct sample *s, struct pick *p, const char *dst)
{
	int fd = open(dst, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0)
		tool_die("sample: scratch %s: %s", dst, strerror(errno));
	bool ok = true;
	if ((uint64_t)st.st_size != p->size)
		ok = fail(p, true, -1, "size differs: index %" PRIu64 " bytes, copy %jd",
			  p->size, (intmax_t)st.st_size);
	uint64_t nb = vbfs_nblocks(p->size, s->block_size);
	for (uint64_t b = 0; ok && b < nb && !interrupted(); b++) {
		uint32_t len = vbfs_block_len(p->size, s->block_size, b);
		uint64_t off = b * s->block_size;
		uint8_t want[VBFS_DIGEST_LEN];
		vbfs_err err = vbfs_txn_digest(s->txn, p->id, b, want);
		if (err != VBFS_OK) {
			ok = fail(p, false, (int64_t)off, "no digest in the index for block %"
				  PRIu64 ": %s", b, vbfs_strerror(err));
			break;
		}
		ssize_t r = vbfs_block_read(fd, s->buf, len, off);
		if (r != (ssize_t)len)
			tool_die("sample: scratch %s: short read", dst);
		struct vbfs_block_check chk;    /* the library's verdict on the copy */
		if (vbfs_block_verify_bytes(s->buf, len, want, &chk) != VBFS_BLOCK_OK)
			ok = fail(p, true, (int64_t)off, "digest differs in block %" PRIu64
				  " (byte offset %" PRIu64 ")", b, off);
	}
	close(fd);
	return ok;
}

static void run_one(struct sample *s, size_t i)
{
	struct pick *p = &s->files[i];
	const char *base = strrchr(p->path, '/');
	base = base ? base + 1 : p->path;
	char dst[PATH_MAX];
	/* Flat names: an index path can never steer the copy out of scratch. */
	snprintf(dst, sizeof dst, "%s/%04zu-%.200s", s->scratch, i, base);
	p->ok = true;
	if (restore_one(s, p, dst))
		check_copy(s, p, dst);
}

/* ---- setup, cleanup, report --------------------------------------------- */

static void setup_mount(struct sample *s)
{
	char why[VBFS_WHY_LEN];
	s->work = workdir_create("sample", why);
	if (!s->work)
		tool_die("sample: scratch directory: %s", why);
	size_t n = strlen(s->work) + 16;
	s->scratch = xmalloc(n);
	snprintf(s->scratch, n, "%s/scratch", s->work);
	if (s->mount) {
		/* Someone else's mount: its log is not ours to read, but its
		 * counters tell how many damage events our reads added. */
		s->mnt = s->mount;
		s->have_before = privmount_stats(s->mnt, &s->before, why) == VBFS_OK;
		return;
	}
	vbfs_err err = privmount_start(&s->pm, s->work, s->store, s->index, why);
	if (err != VBFS_OK) {
		workdir_remove(s->work);
		if (err == VBFS_ERR_INTERRUPTED)
			tool_die("sample: interrupted");
		tool_die("sample: mount %s: %s", s->store, why);
	}
	s->own_mount = true;
	s->mnt = s->pm.mnt;
}

/* Unmount, read the log, remove the work dir.  Returns false when cleanup
 * itself failed (reported). */
static bool teardown(struct sample *s)
{
	char why[VBFS_WHY_LEN];
	bool ok = true;
	if (s->own_mount) {
		if (privmount_stop(&s->pm, why) != VBFS_OK) {
			tool_error("sample: vbfs mount: %s", why);
			ok = false;
		}
		if (privmount_read_events(s->pm.log, &s->ev, why) != VBFS_OK)
			tool_error("sample: event log: %s", why);
		tool_heal_read_log(s->pm.log, &s->healed);
	}
	struct privmount_stats after;
	if (s->have_before && privmount_stats(s->mnt, &after, why) == VBFS_OK) {
		for (int k = 0; k < VBFS_EV_COUNT; k++) {
			uint64_t d = after.events[k] - s->before.events[k];
			if (after.events[k] < s->before.events[k])
				d = 0;
			s->ev.by_kind[k] += d;
			if (vbfs_event_is_damage((enum vbfs_event_kind)k))
				s->ev.damage += d;
		}
	}
	if (s->keep) {
		fprintf(stderr, "sample: scratch kept in %s\n", s->scratch);
	} else if (workdir_remove(s->work) != 0) {
		tool_error("sample: remove %s: %s", s->work, strerror(errno));
		ok = false;
	}
	return ok;
}

static double throughput(const struct sample *s)
{
	double secs = s->restore_seconds > 1e-6 ? s->restore_seconds : 1e-6;
	return (double)s->bytes_restored / secs;
}

/*
 * When the sample read fewer than CALIBRATE_BYTES beyond files' first
 * blocks, read (through the mount, so verified) up to that many more from
 * the largest indexed file, past its first block, into a scratch file:
 * the byte rate is then measured on bulk reads, not on a few small files.
 */
static void calibrate(struct sample *s, uint64_t rest_bytes)
{
	if (rest_bytes >= CALIBRATE_BYTES || !s->nfiles)
		return;
	const struct pick *big = &s->files[0];
	for (size_t i = 1; i < s->nfiles; i++)
		if (s->files[i].size > big->size)
			big = &s->files[i];
	if (big->size <= s->block_size)
		return;                 /* no file has bytes beyond a first block */
	char src[PATH_MAX], dst[PATH_MAX];
	snprintf(src, sizeof src, "%s/%s", s->mnt, big->path);
	snprintf(dst, sizeof dst, "%s/calibrate", s->scratch);
	uint64_t want = CALIBRATE_BYTES - rest_bytes, off = s->block_size;
	if (want > big->size - off)
		want = big->size - off;
	double t0 = vbfs_monotonic();
	int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	uint64_t got = 0;
	while (in >= 0 && out >= 0 && got < want && !interrupted()) {
		size_t len = s->block_size;
		if (len > want - got)
			len = (size_t)(want - got);
		ssize_t r = pread(in, s->buf, len, (off_t)(off + got));
		if (r <= 0 || vbfs_write_all(out, s->buf, (size_t)r, -1) != 0)
			break;          /* a damaged block: the mount logged it */
		got += (uint64_t)r;
	}
	double t1 = vbfs_monotonic();
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	unlink(dst);
	if (got) {
		s->cal_bytes = got;
		s->cal_seconds = t1 - t0;
		s->cal_path = xstrdup(big->path);
	}
}

static int by_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/*
 * files x per-file cost + bytes / bulk rate, from the files that restored.
 * The per-file cost is the median over the sampled files, not the mean:
 * one file that waited on something else (the first lookup of a cold
 * mount, a busy look-ahead) must not stand for every file of the store.
 */
static struct projection project(const struct sample *s)
{
	struct projection pr = { .model = "per_file" };
	double rest_t = s->cal_seconds;
	uint64_t rest_b = s->cal_bytes;
	double *cost = xcalloc(s->npicked ? s->npicked : 1, sizeof *cost);
	for (size_t i = 0; i < s->npicked; i++) {
		const struct pick *p = &s->files[i];
		if (!p->ok)
			continue;
		pr.files_timed++;
		rest_t += p->rest_seconds;
		rest_b += p->rest_bytes;
	}
	if (!s->nfiles || !pr.files_timed) {
		pr.known = !s->nfiles;  /* nothing to restore, or nothing measured */
		free(cost);
		return pr;
	}
	pr.known = true;
	double sec_per_byte = 0;
	if (rest_b) {
		pr.model = "files_and_bytes";
		sec_per_byte = (rest_t > 1e-9 ? rest_t : 1e-9) / (double)rest_b;
		pr.rate = 1 / sec_per_byte;
		pr.rate_bytes = rest_b;
		pr.calibration_bytes = s->cal_bytes;
	}
	/* What each file cost beyond its first block's bytes at the bulk rate
	 * (with no bulk rate: all of it). */
	size_t n = 0;
	for (size_t i = 0; i < s->npicked; i++) {
		const struct pick *p = &s->files[i];
		if (p->ok)
			cost[n++] = fmax(0, p->first_seconds - sec_per_byte * (double)p->first_bytes);
	}
	qsort(cost, n, sizeof *cost, by_double);
	pr.per_file = n % 2 ? cost[n / 2] : (cost[n / 2 - 1] + cost[n / 2]) / 2;
	free(cost);
	pr.seconds = (double)s->nfiles * pr.per_file + (double)s->store_bytes * sec_per_byte;
	pr.calibration_path = s->cal_path;
	return pr;
}

static cJSON *seed_json(uint64_t seed)
{
	/* JSON numbers are doubles: exact up to 2^53, a string beyond. */
	if (seed <= (1ull << 53))
		return cJSON_CreateNumber((double)seed);
	char b[24];
	snprintf(b, sizeof b, "%" PRIu64, seed);
	return cJSON_CreateString(b);
}

struct outcome {
	size_t failed, damaged;         /* files */
	struct projection pr;
	bool rto_met;
	enum hist_verdict verdict;
	bool clean;                     /* cleanup worked (else exit 2) */
};

static void report_json(const struct sample *s, const struct outcome *oc)
{
	const struct projection *pr = &oc->pr;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", oc->verdict == HIST_MET && oc->clean);
	cJSON_AddStringToObject(o, "verdict", hist_verdict_names[oc->verdict]);
	if (!oc->clean)
		cJSON_AddStringToObject(o, "error", "the drill could not clean up after itself "
					"(see stderr)");
	cJSON_AddItemToObject(o, "seed", seed_json(s->seed));
	cJSON_AddNumberToObject(o, "bytes", (double)s->bytes_restored);
	cJSON_AddNumberToObject(o, "seconds", s->restore_seconds);
	cJSON_AddNumberToObject(o, "bytes_per_second", throughput(s));
	cJSON_AddNumberToObject(o, "indexed_files", (double)s->nfiles);
	cJSON_AddNumberToObject(o, "indexed_bytes", (double)s->store_bytes);
	cJSON_AddNumberToObject(o, "events", (double)s->ev.damage);
	if (tool_heal_given(&s->heal))
		tool_heal_json(o, &s->healed);
	cJSON *files = cJSON_AddArrayToObject(o, "files");
	for (size_t i = 0; i < s->npicked; i++) {
		const struct pick *p = &s->files[i];
		cJSON *f = cJSON_CreateObject();
		cJSON_AddStringToObject(f, "path", p->path);
		cJSON_AddBoolToObject(f, "ok", p->ok);
		cJSON_AddNumberToObject(f, "size", (double)p->size);
		if (!p->ok) {
			cJSON_AddStringToObject(f, "reason", p->reason);
			if (p->fail_offset >= 0)
				cJSON_AddNumberToObject(f, "offset", (double)p->fail_offset);
		}
		cJSON_AddItemToArray(files, f);
	}
	if (!pr->known) {
		cJSON_AddNullToObject(o, "projected_seconds");
	} else {
		cJSON_AddNumberToObject(o, "projected_seconds", pr->seconds);
		cJSON *m = cJSON_AddObjectToObject(o, "projection");
		cJSON_AddStringToObject(m, "model", pr->model);
		cJSON_AddNumberToObject(m, "files", (double)s->nfiles);
		cJSON_AddNumberToObject(m, "bytes", (double)s->store_bytes);
		cJSON_AddNumberToObject(m, "per_file_seconds", pr->per_file);
		if (pr->rate > 0)
			cJSON_AddNumberToObject(m, "bytes_per_second", pr->rate);
		else
			cJSON_AddNullToObject(m, "bytes_per_second");
		cJSON_AddNumberToObject(m, "files_timed", (double)pr->files_timed);
		cJSON_AddNumberToObject(m, "rate_measured_on_bytes", (double)pr->rate_bytes);
		cJSON_AddNumberToObject(m, "calibration_bytes", (double)pr->calibration_bytes);
		if (pr->calibration_path)
			cJSON_AddStringToObject(m, "calibration_path", pr->calibration_path);
	}
	if (s->has_rto) {
		cJSON_AddNumberToObject(o, "rto_seconds", s->rto);
		cJSON_AddBoolToObject(o, "rto_met", oc->rto_met);
	}
	tool_print_json(o);
}

/* "projected full restore of 1.2 GiB in 3456 files: 9.8 s = 3456 files x
 * 1.20 ms + 1.2 GiB at 480.0 MiB/s (...)": the model, spelled out. */
static void projection_text(const struct sample *s, const struct outcome *oc)
{
	const struct projection *pr = &oc->pr;
	char b1[32], b2[32], b3[32];
	fprintf(stderr, "projected full restore of %s in %zu file%s: ",
		tool_human_bytes((double)s->store_bytes, b1), s->nfiles, s->nfiles == 1 ? "" : "s");
	if (!pr->known) {
		fprintf(stderr, "unknown (no sampled file restored)");
	} else if (!strcmp(pr->model, "files_and_bytes")) {
		fprintf(stderr, "%.1f s = %zu x %.2f ms per file + %s at %s/s\n", pr->seconds,
			s->nfiles, pr->per_file * 1e3, b1, tool_human_bytes(pr->rate, b2));
		fprintf(stderr, "  (per-file cost: the median of %zu restored file%s; byte rate from %s read "
			"beyond files' first blocks", pr->files_timed, pr->files_timed == 1 ? "" : "s",
			tool_human_bytes((double)pr->rate_bytes, b3));
		if (pr->calibration_bytes) {
			char *safe = tool_safe_name(pr->calibration_path);
			fprintf(stderr, ", %s of them from %s, read for the rate",
				tool_human_bytes((double)pr->calibration_bytes, b2), safe);
			free(safe);
		}
		fputc(')', stderr);
	} else {
		fprintf(stderr, "%.1f s = %zu x %.2f ms per file (every indexed file fits in "
			"one block: per-file cost only, the median of %zu restored file%s)", pr->seconds,
			s->nfiles, pr->per_file * 1e3, pr->files_timed, pr->files_timed == 1 ? "" : "s");
	}
	if (s->has_rto)
		fprintf(stderr, "; RTO %g s: %s", s->rto, oc->rto_met ? "met" : pr->known ? "missed"
			: "cannot tell");
	fputc('\n', stderr);
}

static void report_text(const struct sample *s, const struct outcome *oc)
{
	char b1[32], b2[32];
	fprintf(stderr, "sample: %zu of %zu indexed files, seed %" PRIu64 "\n",
	       s->npicked, s->nfiles, s->seed);
	for (size_t i = 0; i < s->npicked; i++) {
		const struct pick *p = &s->files[i];
		char *safe = tool_safe_name(p->path);
		if (p->ok)
			fprintf(stderr, "  OK    %s (%s)\n", safe, tool_human_bytes((double)p->size, b1));
		else
			fprintf(stderr, "  FAIL  %s: %s\n", safe, p->reason);
		free(safe);
	}
	fprintf(stderr, "restored %s in %.3f s: %s/s\n", tool_human_bytes((double)s->bytes_restored, b1),
	       s->restore_seconds, tool_human_bytes(throughput(s), b2));
	projection_text(s, oc);
	if (s->ev.damage)
		fprintf(stderr, "damage events logged by the mount: %" PRIu64 "\n", s->ev.damage);

	switch (oc->verdict) {
	case HIST_DAMAGED:
		if (oc->damaged)
			fprintf(stderr, "sample: DAMAGED: %zu of %zu files\n", oc->damaged, s->npicked);
		else
			fprintf(stderr, "sample: DAMAGED: %" PRIu64 " damage event%s logged by the mount\n",
				s->ev.damage, s->ev.damage == 1 ? "" : "s");
		break;
	case HIST_FAILED:
		if (oc->failed)
			fprintf(stderr, "sample: FAILED: %zu of %zu files could not be restored\n",
				oc->failed, s->npicked);
		else
			fprintf(stderr, "sample: FAILED: no projection to hold against the RTO\n");
		break;
	case HIST_MISSED:
		fprintf(stderr, "sample: MISSED: projected %.1f s exceeds the %g s RTO\n",
			oc->pr.seconds, s->rto);
		break;
	default:
		fprintf(stderr, "sample: MET: %zu of %zu files restored and verified\n",
			s->npicked, s->npicked);
	}
}

static void free_sample(struct sample *s)
{
	for (size_t i = 0; i < s->nfiles; i++)
		free(s->files[i].path);
	free(s->files);
	free(s->buf);
	free(s->work);
	free(s->scratch);
	free(s->index_from_mount);
	free(s->cal_path);
	privmount_events_free(&s->ev);
	privmount_free(&s->pm);
	if (s->txn)
		vbfs_txn_end(s->txn);
	if (s->idx)
		vbfs_index_close(s->idx);
}

int cmd_sample(int argc, char **argv)
{
	struct sample s;
	memset(&s, 0, sizeof s);
	parse_args(&s, argc, argv);
	if (s.mount) {
		tool_require_dir("mountpoint", s.mount);
		/* Copying from a plain directory would "verify" nothing: it must
		 * be a vbfs mount even when --index is given.  The counters are
		 * there for every user; the index path only for the mount's
		 * owner (others give --index). */
		char why[VBFS_WHY_LEN];
		struct privmount_stats probe;
		if (privmount_stats(s.mount, &probe, why) != VBFS_OK)
			tool_die("sample: %s: not a vbfs mount (no user.vbfs.stats)", s.mount);
		if (!s.index && !(s.index = s.index_from_mount = privmount_index_of(s.mount)))
			tool_die("sample: %s: the mount does not tell its index to this user: "
				 "give --index", s.mount);
	} else {
		tool_require_dir("store", s.store);
	}
	tool_require_dir("index", s.index);
	open_index(&s);
	pick(&s);
	fprintf(stderr, "sample: seed %" PRIu64 " (rerun with --seed %" PRIu64 ")\n",
		s.seed, s.seed);

	s.buf = vbfs_block_buf(s.block_size);
	if (!s.buf)
		tool_die("sample: out of memory");
	tool_install_signals();
	setup_mount(&s);
	struct outcome oc = { 0 };
	tool_progress_init(&s.progress, "sample");
	s.done.files_total = s.npicked;
	for (size_t i = 0; i < s.npicked; i++)
		s.done.bytes_total += s.files[i].size;
	uint64_t rest_bytes = 0;
	for (size_t i = 0; i < s.npicked && !interrupted(); i++) {
		run_one(&s, i);
		oc.failed += !s.files[i].ok && !s.files[i].damaged;
		oc.damaged += s.files[i].damaged;
		rest_bytes += s.files[i].ok ? s.files[i].rest_bytes : 0;
		s.done.files_done++;
	}
	tool_progress_done(&s.progress);
	if (!interrupted())
		calibrate(&s, rest_bytes);
	oc.clean = teardown(&s);
	if (interrupted()) {
		tool_error("sample: interrupted by SIG%s: mount and scratch removed",
			   sigabbrev_np(tool_stop) ? sigabbrev_np(tool_stop) : "?");
		free_sample(&s);
		return VBFS_EXIT_USAGE;
	}
	for (size_t i = 0; i < s.ev.kept; i++)
		tool_print_line("sample: damage: ", s.ev.first[i]);
	tool_heal_say("sample: ", &s.healed);

	oc.pr = project(&s);
	oc.rto_met = !s.has_rto || (oc.pr.known && oc.pr.seconds <= s.rto);
	oc.verdict = hist_verdict_decide(oc.damaged || s.ev.damage,
					 oc.failed || (s.has_rto && !oc.pr.known), !oc.rto_met);
	if (s.json)
		report_json(&s, &oc);
	else
		report_text(&s, &oc);
	free_sample(&s);
	if (!oc.clean)
		return VBFS_EXIT_USAGE;
	return oc.verdict == HIST_MET ? VBFS_EXIT_OK : VBFS_EXIT_DAMAGE;
}
