/*
 * util.c - small helpers shared by the library and the tools: the one
 * error-message formatter, hex, UTF-8, SHA-256 of bytes in memory, time,
 * SIZE and DURATION parsing, core count.  Each exists once; a second copy
 * elsewhere is a bug waiting to disagree with this one.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "vbfs.h"

const char *vbfs_strerror(vbfs_err err)
{
	switch (err) {
	case VBFS_OK:               return "success";
	case VBFS_ERR_IO:           return "I/O error";
	case VBFS_ERR_NOMEM:        return "out of memory";
	case VBFS_ERR_NOTFOUND:     return "not found";
	case VBFS_ERR_NOTINDEX:     return "not a vbfs index";
	case VBFS_ERR_FORMAT:       return "malformed record";
	case VBFS_ERR_VERSION:      return "index format is newer than this vbfs";
	case VBFS_ERR_LMDB:         return "LMDB error";
	case VBFS_ERR_ROOT:         return "index damaged: root digest mismatch";
	case VBFS_ERR_SIGNATURE:    return "index signature check failed";
	case VBFS_ERR_USAGE:        return "invalid argument";
	case VBFS_ERR_INTERRUPTED:  return "interrupted";
	case VBFS_ERR_STORE_MISMATCH: return "the index is not for this store";
	case VBFS_ERR_EXPECT:       return "not the index expected (backup id or age)";
	}
	return "unknown error";
}

void vbfs_whyf(char *why, const char *fmt, ...)
{
	va_list ap;
	if (!why)
		return;
	va_start(ap, fmt);
	vsnprintf(why, VBFS_WHY_LEN, fmt, ap);
	va_end(ap);
}

void vbfs_hex(const uint8_t *bin, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[bin[i] >> 4];
		out[2 * i + 1] = digits[bin[i] & 15];
	}
	out[2 * n] = '\0';
}

int vbfs_hexval(int c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int vbfs_unhexn(const char *hex, size_t hexlen, uint8_t *out, size_t n)
{
	if (hexlen != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = vbfs_hexval((unsigned char)hex[2 * i]);
		int lo = vbfs_hexval((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int vbfs_unhex(const char *hex, uint8_t *out, size_t n)
{
	return vbfs_unhexn(hex, strnlen(hex, 2 * n + 1), out, n);
}

size_t vbfs_utf8_decode(const unsigned char *s, size_t n, bool surrogates, uint32_t *cp)
{
	if (n == 0)
		return 0;
	unsigned c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	size_t len;
	uint32_t v, min;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2; v = c & 0x1f; min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3; v = c & 0x0f; min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4; v = c & 0x07; min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff)
		return 0;
	if (v >= 0xd800 && v <= 0xdfff && !surrogates)
		return 0;
	*cp = v;
	return len;
}

void vbfs_sha256(const void *p, size_t n, uint8_t out[VBFS_DIGEST_LEN])
{
	unsigned len = VBFS_DIGEST_LEN;
	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

int64_t vbfs_now(void)
{
	return (int64_t)time(NULL);
}

double vbfs_monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void vbfs_rfc3339(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* SIZE: bytes, or with a K/M/G suffix (optionally "iB"/"B"). */
int vbfs_parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	uint64_t mul = 1;
	switch (toupper((unsigned char)*end)) {
	case 'K': mul = 1ull << 10; end++; break;
	case 'M': mul = 1ull << 20; end++; break;
	case 'G': mul = 1ull << 30; end++; break;
	}
	if (mul > 1 && (!strcmp(end, "iB") || !strcmp(end, "B")))
		end += strlen(end);
	if (*end || v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

/* DURATION: "3600", "90s", "45m", "1h30m", "1.5h"; "0" is valid. */
int vbfs_parse_duration(const char *s, double *out)
{
	double total = 0;
	bool had_unit = false;
	int last_rank = 4;      /* units in the order h, m, s, each once: not "1m1h" */
	const char *p = s;
	if (!s || !*s)
		return -1;
	while (*p) {
		char *end;
		if (!isdigit((unsigned char)*p) && *p != '.')
			return -1;
		errno = 0;
		double v = strtod(p, &end);
		if (errno || end == p || !isfinite(v) || v < 0)
			return -1;
		p = end;
		int rank = *p == 'h' ? 3 : *p == 'm' ? 2 : *p == 's' ? 1 : 0;
		if (rank && rank >= last_rank)
			return -1;
		if (rank)
			last_rank = rank;
		switch (*p) {
		case 'h': total += v * 3600; p++; had_unit = true; break;
		case 'm': total += v * 60; p++; had_unit = true; break;
		case 's': total += v; p++; had_unit = true; break;
		case '\0':
			if (had_unit)           /* "1h30": a bare number only alone */
				return -1;
			total += v;
			break;
		default: return -1;
		}
	}
	*out = total;
	return 0;
}

unsigned vbfs_ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

void *vbfs_grow(void *array, size_t *cap, size_t n, size_t elem, size_t first)
{
	if (n < *cap)
		return array;
	size_t c = *cap ? 2 * *cap : first;
	void *p = realloc(array, c * elem);
	if (p)
		*cap = c;
	return p;
}

/* See vbfs.h: event paths and details are shown through this, so JSON and
 * human lines name a file the same way. */
char *vbfs_utf8_sanitize(const char *s, size_t n, bool *clean)
{
	char *out = malloc(3 * n + 1), *o = out;
	*clean = true;
	if (!out) return NULL;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t k = vbfs_utf8_decode((const unsigned char *)s + i, n - i, false, &cp);
		if (k == 0 || (k == 1 && s[i] == '\0')) {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3; i++;
			*clean = false;
		} else {
			memcpy(o, s + i, k);
			o += k; i += k;
		}
	}
	*o = '\0';
	return out;
}
