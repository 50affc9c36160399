/*
 * record.c - the on-disk tree entry: a fixed little-endian header followed
 * by the path and the symlink target.  Explicit byte encoding (not a struct
 * dump) so the index reads the same on every machine and the decoder can
 * check every length before trusting it.
 *
 *   off  size  field
 *     0     1  record version (2; 1 is still read)
 *     1     1  type (enum vbfs_type)
 *     2     2  version 1: reserved, 0.  Version 2: header length, 152
 *     4  7x4   mode uid gid flags nlink mtime_nsec store_ctime_nsec
 *    32  5x8   id parent size rdev store_ino
 *    72  2x8   mtime_sec store_ctime_sec
 *    88    32  file_digest
 *   120   2x4  path_len target_len
 *   --- version 2 adds ---
 *   128     8  link          (hard links: the id that holds the digests, or 0)
 *   136     8  alloc_blocks  (st_blocks at build: 512-byte units allocated)
 *   144     8  store_dev     (st_dev at build)
 *   152     -  path bytes, then target bytes
 * A field added later makes version 3 (the decoder refuses what it does not
 * fully understand rather than skip it).
 *
 * A version-1 record decodes with link 0, store_dev 0 and alloc_blocks as
 * if the file had no holes.
 */
#include <stdbool.h>
#include <string.h>
#include "vbfs.h"

#define RECORD_VERSION 2
#define RECORD_HEADER_V1 128
#define RECORD_HEADER  152

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
	return v;
}
static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
	return v;
}

size_t vbfs_record_size(const struct vbfs_entry *e)
{
	return RECORD_HEADER + e->path_len + e->target_len;
}

/* vbfs_record_encode and vbfs_record_decode are mirror images, field by
 * field at the same offsets: change one, change the other (test_record
 * checks that every record decodes to what was encoded). */
void vbfs_record_encode(const struct vbfs_entry *e, uint8_t *out)
{
	memset(out, 0, RECORD_HEADER);
	out[0] = RECORD_VERSION;
	out[1] = (uint8_t)e->type;
	out[2] = RECORD_HEADER & 0xff;
	out[3] = RECORD_HEADER >> 8;
	put32(out + 4, e->mode);
	put32(out + 8, e->uid);
	put32(out + 12, e->gid);
	put32(out + 16, e->flags);
	put32(out + 20, e->nlink);
	put32(out + 24, e->mtime_nsec);
	put32(out + 28, e->store_ctime_nsec);
	put64(out + 32, e->id);
	put64(out + 40, e->parent);
	put64(out + 48, e->size);
	put64(out + 56, e->rdev);
	put64(out + 64, e->store_ino);
	put64(out + 72, (uint64_t)e->mtime_sec);
	put64(out + 80, (uint64_t)e->store_ctime_sec);
	memcpy(out + 88, e->file_digest, VBFS_DIGEST_LEN);
	put32(out + 120, (uint32_t)e->path_len);
	put32(out + 124, (uint32_t)e->target_len);
	put64(out + 128, e->link);
	put64(out + 136, e->alloc_blocks);
	put64(out + 144, e->store_dev);
	if (e->path_len)
		memcpy(out + RECORD_HEADER, e->path, e->path_len);
	if (e->target_len)
		memcpy(out + RECORD_HEADER + e->path_len, e->target, e->target_len);
}

/* A build writes paths relative to the store root, one name per component:
 * no leading '/', no empty, "." or ".." component.  A record that breaks
 * this was not written by vbfs, and following it could reach outside the
 * store or outside repair's output directory. */
static bool path_is_relative_clean(const char *p, size_t n)
{
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != '/')
			continue;
		size_t len = i - start;
		const char *c = p + start;
		if (n && (len == 0 || (c[0] == '.' && (len == 1 || (len == 2 && c[1] == '.')))))
			return false;
		start = i + 1;
	}
	return true;
}

vbfs_err vbfs_record_decode(const void *rec, size_t len, struct vbfs_entry *e)
{
	const uint8_t *p = rec;
	size_t header;
	if (len < RECORD_HEADER_V1 || p[0] < 1 || p[0] > RECORD_VERSION)
		return VBFS_ERR_FORMAT;
	if (p[1] < VBFS_T_REG || p[1] > VBFS_T_SOCK)
		return VBFS_ERR_FORMAT;
	if (p[0] == 1) {
		if (p[2] || p[3])
			return VBFS_ERR_FORMAT;
		header = RECORD_HEADER_V1;
	} else {
		header = (size_t)p[2] | (size_t)p[3] << 8;
		if (header != RECORD_HEADER || header > len)
			return VBFS_ERR_FORMAT;
	}
	uint64_t path_len = get32(p + 120), target_len = get32(p + 124);
	if (path_len + target_len != len - header)
		return VBFS_ERR_FORMAT;
	memset(e, 0, sizeof *e);
	e->type = p[1];
	e->mode = get32(p + 4);
	e->uid = get32(p + 8);
	e->gid = get32(p + 12);
	e->flags = get32(p + 16);
	e->nlink = get32(p + 20);
	e->mtime_nsec = get32(p + 24);
	e->store_ctime_nsec = get32(p + 28);
	e->id = get64(p + 32);
	e->parent = get64(p + 40);
	e->size = get64(p + 48);
	e->rdev = get64(p + 56);
	e->store_ino = get64(p + 64);
	e->mtime_sec = (int64_t)get64(p + 72);
	e->store_ctime_sec = (int64_t)get64(p + 80);
	memcpy(e->file_digest, p + 88, VBFS_DIGEST_LEN);
	if (header == RECORD_HEADER) {
		e->link = get64(p + 128);
		e->alloc_blocks = get64(p + 136);
		e->store_dev = get64(p + 144);
	} else
		e->alloc_blocks = (e->size + 511) / 512;   /* v1: no holes known */
	if (e->link == e->id && e->id)
		return VBFS_ERR_FORMAT;
	if (e->mtime_nsec >= 1000000000u || e->store_ctime_nsec >= 1000000000u)
		return VBFS_ERR_FORMAT;
	/* A path never contains NUL and (but for the root) never is empty. */
	e->path = (const char *)p + header;
	e->path_len = path_len;
	e->target = e->path + path_len;
	e->target_len = target_len;
	if (memchr(e->path, '\0', path_len) || (e->id != VBFS_ROOT_ID && !path_len))
		return VBFS_ERR_FORMAT;
	if (!path_is_relative_clean(e->path, path_len))
		return VBFS_ERR_FORMAT;
	if (e->type == VBFS_T_REG && (e->size >> 62))
		return VBFS_ERR_FORMAT;
	return VBFS_OK;
}

const char *vbfs_entry_name(const struct vbfs_entry *e, size_t *len)
{
	const char *slash = e->path_len ? memrchr(e->path, '/', e->path_len) : NULL;
	const char *name = slash ? slash + 1 : e->path;
	*len = e->path_len - (size_t)(name - e->path);
	return name;
}
