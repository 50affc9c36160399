/*
 * randread.c - N concurrent readers at random offsets and lengths, checking
 * every byte against the pristine copy and every EIO against the known
 * damage.  Built by the load tests with `cc -O2 -pthread`.
 *
 *   randread MNT PRISTINE LIST DAMAGE BS THREADS SECONDS SEED
 *
 * LIST: one relative path per line (regular files, no newline in names).
 * DAMAGE: lines "PATH<TAB>BLOCK" of the blocks that must fail.
 * Half the threads read through the page cache, half with O_DIRECT (the
 * request then goes to the daemon as is) when the mount allows it.
 *
 * A reader loops like cat does: pread until the range is done.  The kernel
 * may end a read short just before a failed page and report EIO on the next
 * call, or fail the whole call when its batch of pages reaches a failed one,
 * so the rule checked is: every byte returned equals the original; EIO
 * comes only when the rest of the range [pos, end) meets a damaged block;
 * a range that meets damage always ends in EIO (no damaged byte is ever
 * returned).
 *
 * Output: one line of JSON totals on stdout; exit 1 on any violation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct file {
	char *path;
	int orig_fd;
	uint64_t size;
	uint8_t *bad;           /* one flag per block */
};

static struct file *files;
static size_t nfiles;
static const char *mnt;
static uint64_t bs;
static double deadline;
static atomic_ullong reads, bytes, eio_ok, eio_wrong, wrong_bytes, damaged_served,
	other_err, direct_threads;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
	return *s;
}

/* First damaged block touching [off, end), or UINT64_MAX. */
static uint64_t first_bad(const struct file *f, uint64_t off, uint64_t end)
{
	for (uint64_t b = off / bs; b * bs < end; b++)
		if (f->bad[b])
			return b;
	return UINT64_MAX;
}

struct worker { int id; uint64_t seed; int direct; };

static void *reader(void *p)
{
	struct worker *w = p;
	uint64_t s = w->seed * 2654435761u + 1;
	int *fds = calloc(nfiles, sizeof *fds);
	uint8_t *buf, *orig = malloc(4 * bs + 8192);
	if (posix_memalign((void **)&buf, 4096, 4 * bs + 8192) || !fds || !orig)
		abort();
	for (size_t i = 0; i < nfiles; i++)
		fds[i] = -1;
	while (now() < deadline) {
		struct file *f = &files[rng(&s) % nfiles];
		size_t fi = (size_t)(f - files);
		if (!f->size)
			continue;
		if (fds[fi] < 0) {
			char path[8192];
			snprintf(path, sizeof path, "%s/%s", mnt, f->path);
			fds[fi] = open(path, O_RDONLY | (w->direct ? O_DIRECT : 0));
			if (fds[fi] < 0) {
				fprintf(stderr, "randread: open %s: %s\n", path, strerror(errno));
				atomic_fetch_add(&other_err, 1);
				continue;
			}
		}
		uint64_t off = rng(&s) % f->size, len = 1 + rng(&s) % (3 * bs);
		if (w->direct) {        /* page-aligned for O_DIRECT */
			off &= ~(uint64_t)4095;
			len = (len + 4095) & ~(uint64_t)4095;
		}
		uint64_t end = off + len < f->size ? off + len : f->size;
		uint64_t bad = first_bad(f, off, end), pos = off;
		while (pos < end) {
			ssize_t n = pread(fds[fi], buf, end - pos, (off_t)pos);
			atomic_fetch_add(&reads, 1);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				if (errno != EIO) {
					atomic_fetch_add(&other_err, 1);
					fprintf(stderr, "randread: %s at %llu: %s\n", f->path,
						(unsigned long long)pos, strerror(errno));
				} else if (bad != UINT64_MAX && pos < (bad + 1) * bs)
					/* [pos, end) meets damage.  A buffered read may fail
					 * before the damaged block: the kernel reads a batch
					 * of pages and fails the call when the batch's last
					 * page fails (filemap_get_pages), copying nothing. */
					atomic_fetch_add(&eio_ok, 1);
				else {
					atomic_fetch_add(&eio_wrong, 1);
					fprintf(stderr, "randread: unexpected EIO %s at %llu (range %llu..%llu, first bad block %lld)\n",
						f->path, (unsigned long long)pos, (unsigned long long)off,
						(unsigned long long)end, bad == UINT64_MAX ? -1LL : (long long)bad);
				}
				break;
			}
			if (n == 0) {
				atomic_fetch_add(&other_err, 1);
				fprintf(stderr, "randread: early EOF %s at %llu\n", f->path, (unsigned long long)pos);
				break;
			}
			if (bad != UINT64_MAX && pos + (uint64_t)n > bad * bs) {
				atomic_fetch_add(&damaged_served, 1);
				fprintf(stderr, "randread: bytes of damaged block %llu of %s were returned\n",
					(unsigned long long)bad, f->path);
			}
			if (pread(f->orig_fd, orig, (size_t)n, (off_t)pos) != n)
				abort();
			uint64_t diff = 0;
			for (ssize_t i = 0; i < n; i++)
				diff += buf[i] != orig[i];
			if (diff) {
				atomic_fetch_add(&wrong_bytes, diff);
				fprintf(stderr, "randread: %llu WRONG BYTES in %s at %llu\n",
					(unsigned long long)diff, f->path, (unsigned long long)pos);
			}
			atomic_fetch_add(&bytes, (uint64_t)n);
			pos += (uint64_t)n;
		}
		if (pos >= end && bad != UINT64_MAX) {
			atomic_fetch_add(&damaged_served, 1);   /* the range had damage, no EIO */
			fprintf(stderr, "randread: range %llu..%llu of %s has damaged block %llu but read fine\n",
				(unsigned long long)off, (unsigned long long)end, f->path, (unsigned long long)bad);
		}
	}
	for (size_t i = 0; i < nfiles; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	free(buf);
	free(orig);
	return NULL;
}

static void load(const char *pristine, const char *list, const char *damage)
{
	char line[8192];
	FILE *l = fopen(list, "r"), *d = fopen(damage, "r");
	if (!l || !d) {
		perror("randread: list/damage");
		exit(2);
	}
	size_t cap = 0;
	while (fgets(line, sizeof line, l)) {
		line[strcspn(line, "\n")] = '\0';
		if (!*line)
			continue;
		if (nfiles == cap) {
			cap = cap ? 2 * cap : 64;
			files = realloc(files, cap * sizeof *files);
		}
		struct file *f = &files[nfiles++];
		char path[16384];
		snprintf(path, sizeof path, "%s/%s", pristine, line);
		f->path = strdup(line);
		f->orig_fd = open(path, O_RDONLY);
		if (f->orig_fd < 0) {
			perror(path);
			exit(2);
		}
		f->size = (uint64_t)lseek(f->orig_fd, 0, SEEK_END);
		f->bad = calloc(f->size / bs + 2, 1);
	}
	while (fgets(line, sizeof line, d)) {
		char *tab = strchr(line, '\t');
		if (!tab)
			continue;
		*tab = '\0';
		uint64_t b = strtoull(tab + 1, NULL, 10);
		for (size_t i = 0; i < nfiles; i++)
			if (!strcmp(files[i].path, line) && b <= files[i].size / bs)
				files[i].bad[b] = 1;
	}
	fclose(l);
	fclose(d);
}

int main(int argc, char **argv)
{
	if (argc != 9) {
		fprintf(stderr, "usage: randread MNT PRISTINE LIST DAMAGE BS THREADS SECONDS SEED\n");
		return 2;
	}
	mnt = argv[1];
	bs = strtoull(argv[5], NULL, 10);
	int threads = atoi(argv[6]);
	double seconds = atof(argv[7]);
	uint64_t seed = strtoull(argv[8], NULL, 10);
	load(argv[2], argv[3], argv[4]);
	if (!nfiles) {
		fprintf(stderr, "randread: no files\n");
		return 2;
	}
	/* O_DIRECT through this mount?  Probe once. */
	char probe[16384];
	snprintf(probe, sizeof probe, "%s/%s", mnt, files[0].path);
	int pfd = open(probe, O_RDONLY | O_DIRECT);
	int direct_ok = pfd >= 0;
	if (pfd >= 0)
		close(pfd);

	pthread_t *th = calloc((size_t)threads, sizeof *th);
	struct worker *w = calloc((size_t)threads, sizeof *w);
	double start = now();
	deadline = start + seconds;
	for (int i = 0; i < threads; i++) {
		w[i] = (struct worker){ i, seed + (uint64_t)i * 7919, direct_ok && (i % 2) };
		if (w[i].direct)
			atomic_fetch_add(&direct_threads, 1);
		pthread_create(&th[i], NULL, reader, &w[i]);
	}
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	double secs = now() - start;
	printf("{\"threads\": %d, \"direct_threads\": %llu, \"seconds\": %.1f, \"reads\": %llu, "
	       "\"bytes\": %llu, \"mb_per_s\": %.1f, \"eio_expected\": %llu, \"eio_unexpected\": %llu, "
	       "\"wrong_bytes\": %llu, \"damaged_served\": %llu, \"other_errors\": %llu}\n",
	       threads, (unsigned long long)direct_threads, secs, (unsigned long long)reads,
	       (unsigned long long)bytes, bytes / secs / 1e6, (unsigned long long)eio_ok,
	       (unsigned long long)eio_wrong, (unsigned long long)wrong_bytes,
	       (unsigned long long)damaged_served, (unsigned long long)other_err);
	return eio_wrong || wrong_bytes || damaged_served || other_err ? 1 : 0;
}
