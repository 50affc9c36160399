/*
 * test_record.c - the on-disk tree record (record.c).
 *
 * The decoder is the index's first line of defence: it must give back every
 * field the encoder wrote, and refuse (never over-read) anything else.
 * Every buffer handed to it here is malloc'd at exactly its length, so an
 * over-read shows up under ASan.
 */
#include "check.h"

static struct vbfs_entry sample(void)
{
	struct vbfs_entry e = {
		.id = 0x0102030405060708ull, .parent = 42, .type = VBFS_T_LNK,
		.mode = 0120777, .uid = 1000, .gid = 0xfffffffeu,
		.flags = VBFS_F_FILE_DIGEST, .nlink = 3,
		.size = 0x0000123456789abcull, .mtime_sec = -12345678901ll,
		.mtime_nsec = 999999999u, .rdev = 0x0800000000000001ull,
		.store_ino = UINT64_MAX, .store_ctime_sec = 1795000000,
		.store_ctime_nsec = 1, .link = 0x1112131415161718ull,
		.alloc_blocks = 0x2122232425262728ull, .store_dev = 0x3132333435363738ull,
		.path = "dir/sub dir/f\xc3\xbcnf", .path_len = 17,
		.target = "../target \xe2\x86\x92", .target_len = 13,
	};
	for (int i = 0; i < (int)VBFS_DIGEST_LEN; i++)
		e.file_digest[i] = (uint8_t)(0xa0 + i);
	return e;
}

static uint8_t *encode(const struct vbfs_entry *e, size_t *n)
{
	*n = vbfs_record_size(e);
	uint8_t *buf = malloc(*n);
	if (!buf)
		CHECK_DIE("malloc");
	vbfs_record_encode(e, buf);
	return buf;
}

/* Decode from a private exact-length copy of (p, n). */
static vbfs_err decode_copy(const uint8_t *p, size_t n, struct vbfs_entry *e, uint8_t **keep)
{
	uint8_t *copy = malloc(n ? n : 1);
	if (!copy)
		CHECK_DIE("malloc");
	memcpy(copy, p, n);
	vbfs_err err = vbfs_record_decode(copy, n, e);
	if (keep)
		*keep = copy;
	else
		free(copy);
	return err;
}

static void test_round_trip(void)
{
	struct vbfs_entry in = sample(), out;
	size_t n;
	uint8_t *buf = encode(&in, &n);
	CHECK_EQ(n, 152 + 17 + 13);
	CHECK_ERR(vbfs_record_decode(buf, n, &out), VBFS_OK);
	CHECK_EQ(out.id, in.id);
	CHECK_EQ(out.parent, in.parent);
	CHECK_EQ(out.type, in.type);
	CHECK_EQ(out.mode, in.mode);
	CHECK_EQ(out.uid, in.uid);
	CHECK_EQ(out.gid, in.gid);
	CHECK_EQ(out.flags, in.flags);
	CHECK_EQ(out.nlink, in.nlink);
	CHECK_EQ(out.size, in.size);
	CHECK(out.mtime_sec == in.mtime_sec);   /* negative: before 1970 */
	CHECK_EQ(out.mtime_nsec, in.mtime_nsec);
	CHECK_EQ(out.rdev, in.rdev);
	CHECK_EQ(out.store_ino, in.store_ino);
	CHECK(out.store_ctime_sec == in.store_ctime_sec);
	CHECK_EQ(out.store_ctime_nsec, in.store_ctime_nsec);
	CHECK_MEMEQ(out.file_digest, in.file_digest, VBFS_DIGEST_LEN);
	CHECK_EQ(out.link, in.link);
	CHECK_EQ(out.alloc_blocks, in.alloc_blocks);
	CHECK_EQ(out.store_dev, in.store_dev);
	CHECK_BYTES(out.path, out.path_len, in.path);
	CHECK_BYTES(out.target, out.target_len, in.target);
	/* path and target point into the record, not into a copy */
	CHECK(out.path == (const char *)buf + 152);

	/* Encoding the decoded entry gives the same bytes. */
	size_t n2;
	uint8_t *again = encode(&out, &n2);
	CHECK_EQ(n2, n);
	CHECK_MEMEQ(again, buf, n);
	free(again);
	free(buf);
}

static void test_root_and_plain(void)
{
	struct vbfs_entry root = { .id = VBFS_ROOT_ID, .parent = VBFS_ROOT_ID,
				   .type = VBFS_T_DIR, .mode = 040755, .path = "" }, out;
	size_t n;
	uint8_t *buf = encode(&root, &n);
	CHECK_EQ(n, 152);
	CHECK_ERR(decode_copy(buf, n, &out, NULL), VBFS_OK);
	free(buf);

	/* A regular file with no target. */
	struct vbfs_entry f = { .id = 7, .parent = 1, .type = VBFS_T_REG, .mode = 0100600,
				.size = 5u << 20, .path = "a", .path_len = 1 };
	buf = encode(&f, &n);
	uint8_t *keep;
	CHECK_ERR(decode_copy(buf, n, &out, &keep), VBFS_OK);
	CHECK_EQ(out.size, 5u << 20);
	CHECK_EQ(out.target_len, 0);
	size_t nl;
	const char *name = vbfs_entry_name(&out, &nl);
	CHECK_BYTES(name, nl, "a");
	free(keep);
	free(buf);

	/* Every type round-trips. */
	for (uint32_t t = VBFS_T_REG; t <= VBFS_T_SOCK; t++) {
		f.type = t;
		buf = encode(&f, &n);
		CHECK_ERR(decode_copy(buf, n, &out, NULL), VBFS_OK);
		CHECK_EQ(out.type, t);
		free(buf);
	}
}

static void test_entry_name(void)
{
	struct vbfs_entry e = { 0 };
	size_t n;
	e.path = "a/b/c.d"; e.path_len = 7;
	const char *name = vbfs_entry_name(&e, &n);
	CHECK_BYTES(name, n, "c.d");
	e.path = "top"; e.path_len = 3;
	name = vbfs_entry_name(&e, &n);
	CHECK_BYTES(name, n, "top");
	e.path = ""; e.path_len = 0;
	name = vbfs_entry_name(&e, &n);
	CHECK_EQ(n, 0);
	/* path_len bounds the search, not a NUL: "a/b" inside "a/b/zzz" */
	e.path = "a/b/zzz"; e.path_len = 3;
	name = vbfs_entry_name(&e, &n);
	CHECK_BYTES(name, n, "b");
}

/* Every proper prefix, and one byte more, is refused. */
static void test_truncated(void)
{
	struct vbfs_entry in = sample(), out;
	size_t n;
	uint8_t *buf = encode(&in, &n);
	int accepted = 0;
	for (size_t len = 0; len < n; len++)
		if (decode_copy(buf, len, &out, NULL) != VBFS_ERR_FORMAT)
			accepted++;
	CHECK_MSG(accepted == 0, "%d truncated records were not refused with FORMAT", accepted);

	uint8_t *longer = malloc(n + 1);
	memcpy(longer, buf, n);
	longer[n] = 'x';
	CHECK_ERR(decode_copy(longer, n + 1, &out, NULL), VBFS_ERR_FORMAT);
	free(longer);
	free(buf);
}

/* One field at a time made invalid. */
static void test_bad_fields(void)
{
	struct vbfs_entry in = sample(), out;
	size_t n;
	uint8_t *buf = encode(&in, &n);
	uint8_t *b = malloc(n);

#define MUTATE(stmt) do { memcpy(b, buf, n); stmt; \
	CHECK_ERR(decode_copy(b, n, &out, NULL), VBFS_ERR_FORMAT); } while (0)
	MUTATE(b[0] = 0);                       /* record version */
	MUTATE(b[0] = 3);                       /* a version not yet written */
	MUTATE(b[0] = 1);                       /* v1 with a v2 header */
	MUTATE(b[1] = 0);                       /* type below range */
	MUTATE(b[1] = VBFS_T_SOCK + 1);         /* type above range */
	MUTATE(b[2] = 153);                     /* header length */
	MUTATE(b[2] = 128);
	MUTATE(b[3] = 0x80);
	MUTATE(b[128] = 0x08; b[129] = 0x07; b[130] = 0x06; b[131] = 0x05;
	       b[132] = 0x04; b[133] = 0x03; b[134] = 0x02; b[135] = 0x01); /* link == id */
	MUTATE(b[24] = 0x00; b[25] = 0xca; b[26] = 0x9a; b[27] = 0x3b); /* mtime_nsec = 1e9 */
	MUTATE(b[28] = 0xff; b[29] = 0xff; b[30] = 0xff; b[31] = 0xff); /* ctime_nsec */
	MUTATE(b[120] = 18);                    /* path_len one too long */
	MUTATE(b[120] = 16);                    /* path_len one too short */
	MUTATE(b[120] = 0xff; b[121] = 0xff; b[122] = 0xff; b[123] = 0xff);
	MUTATE(b[124] = 0xff; b[125] = 0xff; b[126] = 0xff; b[127] = 0xff);
	MUTATE(b[152 + 3] = '\0');              /* NUL inside the path */
#undef MUTATE

	/* Lengths that add up only with 32-bit wrap-around. */
	memcpy(b, buf, n);
	uint32_t pl = 0xfffffff0u, tl = (uint32_t)(n - 152) + 0x10u;
	for (int i = 0; i < 4; i++) {
		b[120 + i] = (uint8_t)(pl >> (8 * i));
		b[124 + i] = (uint8_t)(tl >> (8 * i));
	}
	CHECK_ERR(decode_copy(b, n, &out, NULL), VBFS_ERR_FORMAT);
	free(b);
	free(buf);

	/* A non-root entry with an empty path. */
	struct vbfs_entry e = { .id = 9, .parent = 1, .type = VBFS_T_REG, .path = "" };
	buf = encode(&e, &n);
	CHECK_ERR(decode_copy(buf, n, &out, NULL), VBFS_ERR_FORMAT);
	free(buf);

	/* A regular file of 2^62 bytes or more cannot be real. */
	e = (struct vbfs_entry){ .id = 9, .parent = 1, .type = VBFS_T_REG,
				 .size = 1ull << 62, .path = "x", .path_len = 1 };
	buf = encode(&e, &n);
	CHECK_ERR(decode_copy(buf, n, &out, NULL), VBFS_ERR_FORMAT);
	free(buf);
}

/*
 * Garbage: random buffers and random mutations of a valid record.  The
 * decoder must never crash or over-read (ASan), and whatever it accepts
 * must re-encode to exactly the bytes it was given (no field ignored).
 */
static void test_garbage(void)
{
	struct vbfs_entry in = sample(), out;
	size_t n;
	uint8_t *good = encode(&in, &n);
	uint64_t x = 0x243f6a8885a308d3ull;
	int accepted = 0, mismatched = 0;

	for (int round = 0; round < 20000; round++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		size_t len;
		uint8_t *b;
		if (round % 2) {
			len = (size_t)(x % 300);
			b = malloc(len ? len : 1);
			check_fill(b, len, x);
		} else {
			len = n;
			b = malloc(len);
			memcpy(b, good, n);
			int flips = 1 + (int)(x % 4);
			for (int i = 0; i < flips; i++) {
				x ^= x << 13; x ^= x >> 7; x ^= x << 17;
				b[x % len] ^= (uint8_t)(1u << (x >> 60 & 7));
			}
		}
		if (vbfs_record_decode(b, len, &out) == VBFS_OK) {
			accepted++;
			size_t n2 = vbfs_record_size(&out);
			uint8_t *again = malloc(n2);
			vbfs_record_encode(&out, again);
			if (n2 != len || memcmp(again, b, len))
				mismatched++;
			free(again);
		}
		free(b);
	}
	CHECK_MSG(mismatched == 0, "%d of %d accepted garbage records did not re-encode "
		  "to the same bytes", mismatched, accepted);
	/* Flipping bits in the path or digest keeps a record valid: the
	 * mutation half must have produced some accepted records, or the
	 * re-encode check above tested nothing. */
	CHECK(accepted > 0);
	free(good);
}

/* Indexes written before hard links and holes were recorded (version 1
 * records, 128-byte header) stay readable: no link, no device, and the
 * allocation of a file without holes. */
static void test_version1(void)
{
	uint8_t v1[128 + 3] = { 0 }, *keep;
	struct vbfs_entry out;
	v1[0] = 1;
	v1[1] = VBFS_T_REG;
	v1[4] = 0xa4; v1[5] = 0x81;            /* mode 0100644 */
	v1[20] = 2;                            /* nlink */
	v1[32] = 7;                            /* id */
	v1[40] = 1;                            /* parent */
	v1[48] = 0x01; v1[49] = 0x10;          /* size 4097 */
	v1[64] = 0x99;                         /* store_ino */
	v1[120] = 3;                           /* path_len */
	memcpy(v1 + 128, "a/b", 3);
	CHECK_ERR(decode_copy(v1, sizeof v1, &out, &keep), VBFS_OK);
	CHECK_EQ(out.id, 7);
	CHECK_EQ(out.size, 4097);
	CHECK_EQ(out.nlink, 2);
	CHECK_EQ(out.store_ino, 0x99);
	CHECK_EQ(out.link, 0);
	CHECK_EQ(out.store_dev, 0);
	CHECK_EQ(out.alloc_blocks, 9);          /* 4097 bytes: nine 512-byte units */
	CHECK_BYTES(out.path, out.path_len, "a/b");
	CHECK(out.path == (const char *)keep + 128);
	free(keep);
	v1[2] = 1;                              /* version 1 keeps bytes 2-3 zero */
	CHECK_ERR(decode_copy(v1, sizeof v1, &out, NULL), VBFS_ERR_FORMAT);
}

static void test_block_math(void)
{
	const uint32_t M = 1u << 20;
	CHECK_EQ(vbfs_nblocks(0, M), 0);
	CHECK_EQ(vbfs_nblocks(1, M), 1);
	CHECK_EQ(vbfs_nblocks(M, M), 1);
	CHECK_EQ(vbfs_nblocks(M + 1, M), 2);
	CHECK_EQ(vbfs_nblocks(5 * M + M / 2, M), 6);
	CHECK_EQ(vbfs_block_len(M + 1, M, 0), M);
	CHECK_EQ(vbfs_block_len(M + 1, M, 1), 1);
	CHECK_EQ(vbfs_block_len(M + 1, M, 2), 0);
	CHECK_EQ(vbfs_block_len(5 * M + M / 2, M, 5), M / 2);
	CHECK_EQ(vbfs_block_len(1ull << 40, M, (1ull << 20) - 1), M);
}

/* Paths a build never writes: following them could leave the store, or
 * repair's output directory. */
static void test_path_components(void)
{
	static const char *const bad[] = { "..", "../x", "a/../b", "a/..", ".", "./a", "a/./b",
					   "/abs", "a//b", "a/" };
	static const char *const good[] = { "...", ".hidden", "a/..b", "a/b..", "a/.x/b", "x" };
	struct vbfs_entry f = { .id = 7, .parent = 1, .type = VBFS_T_REG, .mode = 0100600 }, out;
	size_t n;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		f.path = bad[i];
		f.path_len = strlen(bad[i]);
		uint8_t *buf = encode(&f, &n);
		CHECK_ERR(decode_copy(buf, n, &out, NULL), VBFS_ERR_FORMAT);
		free(buf);
	}
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		f.path = good[i];
		f.path_len = strlen(good[i]);
		uint8_t *buf = encode(&f, &n);
		CHECK_ERR(decode_copy(buf, n, &out, NULL), VBFS_OK);
		free(buf);
	}
}

int main(void)
{
	test_round_trip();
	test_root_and_plain();
	test_entry_name();
	test_path_components();
	test_truncated();
	test_bad_fields();
	test_garbage();
	test_version1();
	test_block_math();
	return check_done("test_record");
}
