/*
 * test_sparse.c - hard links and holes in the index, and the verdict on a
 * sparse file's blocks (vbfs_block_judge), without FUSE.
 *
 * Store (64 KiB blocks): sparse.img, 16 blocks, data only in block 3 and a
 * few bytes in block 10; a.bin and b.bin, two links of one inode; c.bin,
 * a copy of it.
 */
#include "check.h"

#define BS (64u << 10)

static char *tmp, *store, *idx;

static void pwrite_all(const char *path, const void *p, size_t n, off_t off)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0 || pwrite(fd, p, n, off) != (ssize_t)n || close(fd) < 0)
		CHECK_DIE("pwrite %s: %s", path, strerror(errno));
}

static void make_store(void)
{
	uint8_t *data = malloc(4 * BS);
	if (!data)
		CHECK_DIE("malloc");
	for (size_t i = 0; i < 4 * BS; i++)
		data[i] = (uint8_t)(i * 7 + 1);
	tmp = check_tmpdir("test_sparse");
	store = strdup(check_path(tmp, "store"));
	idx = strdup(check_path(tmp, "index"));
	if (mkdir(store, 0755) < 0)
		CHECK_DIE("mkdir %s", store);
	const char *img = check_path(store, "sparse.img");
	check_write(img, "", 0);
	if (truncate(img, 16 * BS) < 0)
		CHECK_DIE("truncate: %s", strerror(errno));
	pwrite_all(img, data, BS, 3 * BS);
	pwrite_all(img, "tail", 4, 10 * BS + 100);
	check_write(check_path(store, "a.bin"), data, 3 * BS + 5);
	if (link(check_path(store, "a.bin"), check_path(store, "b.bin")) < 0)
		CHECK_DIE("link: %s", strerror(errno));
	check_write(check_path(store, "c.bin"), data, 3 * BS + 5);
	free(data);
}

static void check_build_and_index(void)
{
	struct vbfs_build_opts o = { .store = store, .index = idx, .block_size = BS, .jobs = 2 };
	struct vbfs_build_result r;
	char why[VBFS_WHY_LEN];
	CHECK_ERR(vbfs_build(&o, &r, why), VBFS_OK);
	CHECK_EQ(r.files_hashed, 3);            /* a.bin (holds b.bin's digests), c.bin, sparse.img */
	CHECK_EQ(r.files_linked, 1);
	CHECK_EQ(r.bytes_holes, 14 * BS);
	CHECK_EQ(r.bytes_hashed, 2 * (3 * BS + 5) + 2 * BS);

	vbfs_index *index;
	vbfs_txn *t;
	struct vbfs_entry a, b, c, s;
	CHECK_ERR(vbfs_index_open(idx, NULL, &index, why), VBFS_OK);
	CHECK_ERR(vbfs_txn_begin(index, &t), VBFS_OK);
	CHECK_ERR(vbfs_txn_lookup_path(t, "a.bin", &a), VBFS_OK);
	uint64_t a_id = a.id;
	CHECK_ERR(vbfs_txn_lookup_path(t, "b.bin", &b), VBFS_OK);
	CHECK_ERR(vbfs_txn_lookup_path(t, "c.bin", &c), VBFS_OK);
	CHECK_EQ(a.link, 0);
	CHECK_EQ(b.link, a_id);
	CHECK_EQ(vbfs_entry_data_id(&b), a_id);
	CHECK_EQ(c.link, 0);
	CHECK_EQ(b.nlink, 2);
	CHECK(b.store_ino == a.store_ino && b.store_dev == a.store_dev && b.store_dev);
	uint8_t da[VBFS_DIGEST_LEN], dc[VBFS_DIGEST_LEN], zero[VBFS_DIGEST_LEN], d[VBFS_DIGEST_LEN];
	CHECK_ERR(vbfs_txn_digest(t, vbfs_entry_data_id(&b), 3, da), VBFS_OK);
	CHECK_ERR(vbfs_txn_digest(t, c.id, 3, dc), VBFS_OK);
	CHECK_MEMEQ(da, dc, VBFS_DIGEST_LEN);   /* the link's digests are the holder's */
	CHECK(vbfs_txn_digest(t, b.id, 0, d) == VBFS_ERR_NOTFOUND);   /* none of its own */

	CHECK_ERR(vbfs_txn_lookup_path(t, "sparse.img", &s), VBFS_OK);
	CHECK(s.flags & VBFS_F_HOLES);
	CHECK(!(a.flags & VBFS_F_HOLES));
	CHECK(s.alloc_blocks < s.size / 512);
	bool hole;
	char map[17] = { 0 };
	for (uint64_t k = 0; k < 16; k++) {
		CHECK_ERR(vbfs_txn_hole(t, s.id, k, &hole), VBFS_OK);
		map[k] = hole ? 'h' : 'd';
	}
	CHECK_STREQ(map, "hhhdhhhhhhdhhhhh");
	vbfs_zero_digest(BS, zero);
	CHECK_ERR(vbfs_txn_digest(t, s.id, 0, d), VBFS_OK);
	CHECK_MEMEQ(d, zero, VBFS_DIGEST_LEN);
	uint64_t at;
	CHECK_ERR(vbfs_txn_seek_block(t, s.id, 16, 0, false, &at), VBFS_OK);
	CHECK_EQ(at, 3);
	CHECK_ERR(vbfs_txn_seek_block(t, s.id, 16, 3, true, &at), VBFS_OK);
	CHECK_EQ(at, 4);
	CHECK_ERR(vbfs_txn_seek_block(t, s.id, 16, 4, false, &at), VBFS_OK);
	CHECK_EQ(at, 10);
	CHECK_ERR(vbfs_txn_seek_block(t, s.id, 16, 11, false, &at), VBFS_OK);
	CHECK_EQ(at, 16);                       /* no more data */
	CHECK_ERR(vbfs_txn_seek_block(t, a.id, 4, 0, true, &at), VBFS_OK);
	CHECK_EQ(at, 4);                        /* a file without holes */
	vbfs_txn_end(t);
	vbfs_index_close(index);
}

/* The verdicts on sparse.img's blocks as the store changes under them. */
static void check_judge(void)
{
	const char *img = check_path(store, "sparse.img");
	uint8_t zero[VBFS_DIGEST_LEN], data3[VBFS_DIGEST_LEN];
	struct vbfs_block_check chk;
	void *buf = vbfs_block_buf(BS);
	vbfs_zero_digest(BS, zero);
	int fd = open(img, O_RDONLY);
	if (fd < 0 || !buf)
		CHECK_DIE("open %s", img);
	CHECK_EQ(vbfs_block_judge(fd, 0, BS, true, zero, buf, &chk), VBFS_BLOCK_OK);
	CHECK_EQ(chk.layout, VBFS_LAYOUT_SAME);
	CHECK(((uint8_t *)buf)[BS - 1] == 0 && chk.got == BS);
	CHECK_EQ(vbfs_block_judge(fd, 3 * BS, BS, false, zero, buf, &chk), VBFS_BLOCK_CORRUPT);
	memcpy(data3, chk.actual, VBFS_DIGEST_LEN);
	CHECK_EQ(vbfs_block_judge(fd, 3 * BS, BS, false, data3, buf, &chk), VBFS_BLOCK_OK);
	CHECK_EQ(chk.layout, VBFS_LAYOUT_SAME);
	/* A hole whose recorded digest is not the zero block's never serves. */
	CHECK_EQ(vbfs_block_judge(fd, 0, BS, true, data3, buf, &chk), VBFS_BLOCK_CORRUPT);

	/* Hole -> other bytes: corrupt; hole -> zeros written: verifies, changed. */
	pwrite_all(img, "Z", 1, BS + 9);
	uint8_t *zeros = calloc(1, BS);
	pwrite_all(img, zeros, BS, 2 * BS);
	free(zeros);
	CHECK_EQ(vbfs_block_judge(fd, BS, BS, true, zero, buf, &chk), VBFS_BLOCK_CORRUPT);
	CHECK_EQ(chk.layout, VBFS_LAYOUT_HOLE_TO_DATA);
	CHECK_EQ(vbfs_block_judge(fd, 2 * BS, BS, true, zero, buf, &chk), VBFS_BLOCK_OK);
	CHECK_EQ(chk.layout, VBFS_LAYOUT_HOLE_TO_DATA);
	struct vbfs_event ev;
	struct vbfs_entry e = { .path = "sparse.img", .path_len = 10, .size = 16 * BS };
	vbfs_event_from_check(&ev, &e, 2, BS, zero, &chk);
	CHECK_EQ(ev.kind, VBFS_EV_CHANGED);
	CHECK_EQ(ev.offset, 2 * BS);

	/* Data -> a hole: corrupt (the zeros do not verify). */
	int wfd = open(img, O_WRONLY);
	if (wfd < 0 || fallocate(wfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 * BS, BS) < 0)
		CHECK_DIE("punch a hole: %s", strerror(errno));
	close(wfd);
	CHECK_EQ(vbfs_block_judge(fd, 3 * BS, BS, false, data3, buf, &chk), VBFS_BLOCK_CORRUPT);
	CHECK_EQ(chk.layout, VBFS_LAYOUT_DATA_TO_HOLE);
	vbfs_event_from_check(&ev, &e, 3, BS, data3, &chk);
	CHECK_EQ(ev.kind, VBFS_EV_CORRUPT);
	CHECK_STREQ(ev.detail, "data when indexed is now a hole");

	/* A hole past a truncated end is missing, never zeros. */
	if (truncate(img, 8 * BS) < 0)
		CHECK_DIE("truncate: %s", strerror(errno));
	CHECK_EQ(vbfs_block_judge(fd, 12 * BS, BS, true, zero, buf, &chk), VBFS_BLOCK_MISSING);
	close(fd);
	free(buf);
}

int main(void)
{
	make_store();
	check_build_and_index();
	check_judge();
	check_rmtree(tmp);
	free(tmp);
	free(store);
	free(idx);
	return check_done("test_sparse");
}
