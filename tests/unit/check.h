/*
 * check.h - the unit tests' tiny harness.
 *
 * CHECK(cond) and friends never abort: they print "file:line: what failed"
 * on stderr, count the failure and let the test go on, so one run shows
 * every broken expectation (LMDB's test programs do the same with a
 * one-line macro).  check_done() prints the tally and gives the exit status.
 *
 * Temp dirs come from $VBFS_TEST_TMP (ctest sets it to build/testtmp), else
 * $TMPDIR, else /tmp, and are removed by check_rmtree().
 */
#ifndef VBFS_TEST_CHECK_H
#define VBFS_TEST_CHECK_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vbfs.h"

static int check_failures, check_count;

#define CHECK_FAILED_(...) do { check_failures++; \
	fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } while (0)

#define CHECK(cond) do { check_count++; if (!(cond)) \
	CHECK_FAILED_("CHECK(%s) failed", #cond); } while (0)

#define CHECK_MSG(cond, ...) do { check_count++; if (!(cond)) { \
	CHECK_FAILED_("CHECK(%s) failed", #cond); \
	fprintf(stderr, "    "); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
	} while (0)

/* Integers of any width, compared and printed as 64-bit. */
#define CHECK_EQ(a, b) do { check_count++; \
	uint64_t check_a_ = (uint64_t)(a), check_b_ = (uint64_t)(b); \
	if (check_a_ != check_b_) CHECK_FAILED_("CHECK_EQ(%s, %s): %" PRIu64 " != %" PRIu64, \
		#a, #b, check_a_, check_b_); } while (0)

/* Doubles equal to within 1e-9 (sums and means of exact inputs). */
#define CHECK_NEAR(a, b) do { check_count++; \
	double check_a_ = (a), check_b_ = (b); \
	if (!(check_a_ - check_b_ < 1e-9 && check_b_ - check_a_ < 1e-9)) \
		CHECK_FAILED_("CHECK_NEAR(%s, %s): %.12g != %.12g", #a, #b, check_a_, check_b_); \
	} while (0)

/* A vbfs_err result against the one expected; prints both names. */
#define CHECK_ERR(call, want) do { check_count++; \
	vbfs_err check_e_ = (call), check_w_ = (want); \
	if (check_e_ != check_w_) CHECK_FAILED_("%s: got %d (%s), wanted %d (%s)", #call, \
		(int)check_e_, vbfs_strerror(check_e_), (int)check_w_, vbfs_strerror(check_w_)); \
	} while (0)

#define CHECK_STREQ(a, b) do { check_count++; \
	const char *check_a_ = (a), *check_b_ = (b); \
	if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_)) \
		CHECK_FAILED_("CHECK_STREQ(%s, %s): \"%s\" != \"%s\"", #a, #b, \
			check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)"); \
	} while (0)

/* (ptr, len) byte strings, e.g. an entry's path against a C string. */
#define CHECK_BYTES(p, n, s) do { check_count++; \
	const char *check_p_ = (const char *)(p), *check_s_ = (s); size_t check_n_ = (n); \
	if (check_n_ != strlen(check_s_) || memcmp(check_p_, check_s_, check_n_)) \
		CHECK_FAILED_("CHECK_BYTES(%s): \"%.*s\" != \"%s\"", #p, (int)check_n_, \
			check_p_ ? check_p_ : "", check_s_); } while (0)

#define CHECK_MEMEQ(a, b, n) do { check_count++; \
	if (memcmp((a), (b), (n))) CHECK_FAILED_("CHECK_MEMEQ(%s, %s, %s) differ", #a, #b, #n); \
	} while (0)

/* Setup failed (not an expectation): say why and stop with exit 2. */
#define CHECK_DIE(...) do { fprintf(stderr, "%s:%d: setup failed: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(2); } while (0)

static inline int check_done(const char *name)
{
	printf("# %s: %d checks, %d failed\n", name, check_count, check_failures);
	return check_failures ? 1 : 0;
}

/* A fresh private directory; the caller removes it with check_rmtree(). */
static inline char *check_tmpdir(const char *name)
{
	const char *base = getenv("VBFS_TEST_TMP");
	static char path[1024];
	if (!base || !*base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	mkdir(base, 0700);   /* ctest's testtmp may not exist yet; EEXIST is fine */
	snprintf(path, sizeof path, "%s/%s.XXXXXX", base, name);
	if (!mkdtemp(path))
		CHECK_DIE("mkdtemp %s: %s", path, strerror(errno));
	return strdup(path);
}

static inline int check_rm_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)st; (void)f;
	if (type == FTW_DP)
		return rmdir(p) < 0 ? -1 : 0;
	return unlink(p) < 0 ? -1 : 0;
}

static inline void check_rmtree(const char *dir)
{
	if (dir && nftw(dir, check_rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		fprintf(stderr, "warning: could not remove %s: %s\n", dir, strerror(errno));
}

/* "dir/name" in a rotating static buffer (8 live at once). */
static inline const char *check_path(const char *dir, const char *name)
{
	static char buf[8][1024];
	static int k;
	k = (k + 1) % 8;
	/* Through a local copy: `dir` may be an earlier result (another slot
	 * of buf), and gcc -O3 cannot prove the slots apart (-Wrestrict). */
	char joined[sizeof buf[0]];
	snprintf(joined, sizeof joined, "%s/%s", dir, name);
	memcpy(buf[k], joined, sizeof joined);
	return buf[k];
}

static inline void check_write(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || (n && write(fd, data, n) != (ssize_t)n) || close(fd) < 0)
		CHECK_DIE("write %s: %s", path, strerror(errno));
}

/* Deterministic bytes for file contents (xorshift; seed picks the stream). */
static inline void check_fill(uint8_t *buf, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		buf[i] = (uint8_t)(x >> 24);
	}
}

#endif
