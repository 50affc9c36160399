/*
 * test_index.c - the index library end to end, without FUSE: vbfs_build on
 * a small temp store, then every read-side call (lookup, digest, readdir,
 * foreach), incremental and full rebuilds, an interrupted build, the block
 * verdict on a crafted file, vbfs_file_open's states, and a scrub.
 *
 * Digests are checked against OpenSSL SHA-256 computed here, independently
 * of the library, with a 4 KiB block size so a 1.2 MB file spans two
 * digest runs (VBFS_RUN_BLOCKS = 256).
 */
#include "check.h"
#include <lmdb.h>
#include <openssl/evp.h>
#include <sys/time.h>

#define BS 4096u

static char *tmp, *store, *index_dir;

struct spec_file {
	const char *path;
	size_t size;
	uint64_t seed;
};

/* The regular files of the store (besides dirs and symlinks). */
static const struct spec_file files[] = {
	{ "a", 0, 1 },                  /* empty: no blocks */
	{ "B", 1, 2 },
	{ "a b", BS, 3 },               /* exactly one block */
	{ "ab", BS + 1, 4 },            /* one byte into the second */
	{ "big", 300 * BS + 123, 5 },   /* 301 blocks: two digest runs */
	{ "\xc3\xa9", 10, 6 },          /* "é" */
	{ "sub/c", 5000, 7 },
	{ "sub/d", 2 * BS, 8 },
	{ "sub/deep/e", 3, 9 },
};
#define NFILES (sizeof files / sizeof *files)

static uint8_t *content(size_t size, uint64_t seed)
{
	uint8_t *b = malloc(size ? size : 1);
	if (!b)
		CHECK_DIE("malloc");
	check_fill(b, size, seed);
	return b;
}

static void sha256(const void *p, size_t n, uint8_t out[VBFS_DIGEST_LEN])
{
	unsigned len = VBFS_DIGEST_LEN;
	if (!EVP_Digest(p, n, out, &len, EVP_sha256(), NULL))
		CHECK_DIE("EVP_Digest");
}

static void make_store(void)
{
	mkdir(store, 0755);
	mkdir(check_path(store, "sub"), 0755);
	mkdir(check_path(store, "sub/deep"), 0750);
	mkdir(check_path(store, "emptydir"), 0700);
	for (size_t i = 0; i < NFILES; i++) {
		uint8_t *b = content(files[i].size, files[i].seed);
		check_write(check_path(store, files[i].path), b, files[i].size);
		free(b);
	}
	if (symlink("big", check_path(store, "link")) < 0 ||
	    symlink("../../outside", check_path(store, "sub/dangling")) < 0)
		CHECK_DIE("symlink: %s", strerror(errno));
	chmod(check_path(store, "sub/c"), 0640);
	struct timespec ts[2] = { { 1600000000, 123456789 }, { 1600000000, 123456789 } };
	if (utimensat(AT_FDCWD, check_path(store, "sub/c"), ts, 0) < 0)
		CHECK_DIE("utimensat: %s", strerror(errno));
}

static vbfs_err build(uint32_t block_size, bool full, volatile int *stop,
		      struct vbfs_build_result *r)
{
	char why[VBFS_WHY_LEN] = "";
	struct vbfs_build_opts o = { .store = store, .index = index_dir,
				     .block_size = block_size, .jobs = 2, .full = full,
				     .stop = stop };
	vbfs_err err = vbfs_build(&o, r, why);
	if (err && !stop)
		fprintf(stderr, "vbfs_build: %s: %s\n", vbfs_strerror(err), why);
	return err;
}

static vbfs_index *open_index(void)
{
	char why[VBFS_WHY_LEN] = "";
	vbfs_index *idx = NULL;
	vbfs_err err = vbfs_index_open(index_dir, NULL, &idx, why);
	if (err)
		CHECK_DIE("vbfs_index_open: %s: %s", vbfs_strerror(err), why);
	return idx;
}

/* ---- first build and the read side ------------------------------------ */

static void check_first_build(void)
{
	struct vbfs_build_result r;
	uint64_t bytes = 0, blocks = 0;
	for (size_t i = 0; i < NFILES; i++) {
		bytes += files[i].size;
		blocks += vbfs_nblocks(files[i].size, BS);
	}
	CHECK_ERR(build(BS, false, NULL, &r), VBFS_OK);
	/* root, 9 files, sub, sub/deep, emptydir, link, sub/dangling */
	CHECK_EQ(r.entries, 15);
	CHECK_EQ(r.files_hashed, NFILES);
	CHECK_EQ(r.files_reused, 0);
	CHECK_EQ(r.files_removed, 0);
	CHECK_EQ(r.bytes_hashed, bytes);
	CHECK_EQ(r.damage_events, 0);

	struct stat st;
	CHECK(stat(index_dir, &st) == 0 && (st.st_mode & 07777) == 0700);

	vbfs_index *idx = open_index();
	const struct vbfs_meta *m = vbfs_index_meta(idx);
	CHECK_EQ(m->format_version, VBFS_FORMAT_VERSION);
	CHECK_EQ(m->block_size, BS);
	CHECK_STREQ(m->hash, "sha256");
	CHECK_STREQ(m->backup_id, "store");     /* default: the store dir's name */
	CHECK_EQ(m->entries, 15);
	CHECK_EQ(m->files, NFILES);
	CHECK_EQ(m->blocks, blocks);
	CHECK_EQ(m->bytes, bytes);
	CHECK(m->created > 1700000000 && m->updated >= m->created);
	CHECK(!m->signed_);
	char *real = realpath(index_dir, NULL);
	CHECK_STREQ(vbfs_index_path(idx), real);
	free(real);
	vbfs_index_close(idx);
}

static void check_lookups(vbfs_txn *t)
{
	struct vbfs_entry e;
	CHECK_ERR(vbfs_txn_lookup_path(t, "", &e), VBFS_OK);
	CHECK_EQ(e.id, VBFS_ROOT_ID);
	CHECK_EQ(e.type, VBFS_T_DIR);
	CHECK_EQ(e.path_len, 0);
	CHECK_ERR(vbfs_txn_lookup_path(t, ".", &e), VBFS_OK);
	CHECK_EQ(e.id, VBFS_ROOT_ID);

	CHECK_ERR(vbfs_txn_lookup_path(t, "sub/c", &e), VBFS_OK);
	CHECK_EQ(e.type, VBFS_T_REG);
	CHECK_EQ(e.size, 5000);
	CHECK_EQ(e.mode, 0100640);
	CHECK_EQ(e.uid, getuid());
	CHECK_EQ(e.gid, getgid());
	CHECK_EQ(e.mtime_sec, 1600000000);
	CHECK_EQ(e.mtime_nsec, 123456789);
	CHECK_BYTES(e.path, e.path_len, "sub/c");
	uint64_t c_id = e.id;
	struct vbfs_entry sub;
	CHECK_ERR(vbfs_txn_lookup_path(t, "sub", &sub), VBFS_OK);
	CHECK_EQ(e.parent, sub.id);
	CHECK_EQ(sub.mode, 040755);
	CHECK_ERR(vbfs_txn_get(t, c_id, &e), VBFS_OK);
	CHECK_BYTES(e.path, e.path_len, "sub/c");
	CHECK_ERR(vbfs_txn_lookup(t, sub.id, "c", 1, &e), VBFS_OK);
	CHECK_EQ(e.id, c_id);

	/* Odd but equivalent spellings of the same path. */
	CHECK_ERR(vbfs_txn_lookup_path(t, "./sub//c", &e), VBFS_OK);
	CHECK_EQ(e.id, c_id);
	CHECK_ERR(vbfs_txn_lookup_path(t, "/sub/c", &e), VBFS_OK);
	CHECK_EQ(e.id, c_id);

	CHECK_ERR(vbfs_txn_lookup_path(t, "sub/deep/e", &e), VBFS_OK);
	CHECK_EQ(e.size, 3);
	CHECK_ERR(vbfs_txn_lookup_path(t, "sub/deep", &e), VBFS_OK);
	CHECK_EQ(e.mode, 040750);
	CHECK_ERR(vbfs_txn_lookup_path(t, "\xc3\xa9", &e), VBFS_OK);
	CHECK_EQ(e.size, 10);
	CHECK_ERR(vbfs_txn_lookup_path(t, "a b", &e), VBFS_OK);
	CHECK_EQ(e.size, BS);

	CHECK_ERR(vbfs_txn_lookup_path(t, "link", &e), VBFS_OK);
	CHECK_EQ(e.type, VBFS_T_LNK);
	CHECK_BYTES(e.target, e.target_len, "big");
	CHECK_ERR(vbfs_txn_lookup_path(t, "sub/dangling", &e), VBFS_OK);
	CHECK_EQ(e.type, VBFS_T_LNK);
	CHECK_BYTES(e.target, e.target_len, "../../outside");
	/* A symlink is never followed by the index either. */
	CHECK_ERR(vbfs_txn_lookup_path(t, "link/x", &e), VBFS_ERR_NOTFOUND);

	CHECK_ERR(vbfs_txn_lookup_path(t, "nope", &e), VBFS_ERR_NOTFOUND);
	CHECK_ERR(vbfs_txn_lookup_path(t, "sub/nope", &e), VBFS_ERR_NOTFOUND);
	CHECK_ERR(vbfs_txn_lookup_path(t, "big/x", &e), VBFS_ERR_NOTFOUND);
	CHECK_ERR(vbfs_txn_lookup_path(t, "su", &e), VBFS_ERR_NOTFOUND);
	CHECK_ERR(vbfs_txn_lookup(t, VBFS_ROOT_ID, "sub/c", 5, &e), VBFS_ERR_NOTFOUND);
	CHECK_ERR(vbfs_txn_get(t, 999999, &e), VBFS_ERR_NOTFOUND);
}

/* Every block digest of every file equals SHA-256 of its bytes. */
static void check_digests(vbfs_txn *t)
{
	uint8_t want[VBFS_DIGEST_LEN], got[VBFS_DIGEST_LEN];
	for (size_t i = 0; i < NFILES; i++) {
		struct vbfs_entry e;
		CHECK_ERR(vbfs_txn_lookup_path(t, files[i].path, &e), VBFS_OK);
		CHECK_EQ(e.size, files[i].size);
		uint8_t *b = content(files[i].size, files[i].seed);
		uint64_t n = vbfs_nblocks(files[i].size, BS);
		int bad = 0;
		for (uint64_t k = 0; k < n; k++) {
			sha256(b + k * BS, vbfs_block_len(files[i].size, BS, k), want);
			if (vbfs_txn_digest(t, e.id, k, got) != VBFS_OK || memcmp(got, want, sizeof got))
				bad++;
		}
		CHECK_MSG(bad == 0, "%s: %d of %" PRIu64 " block digests wrong", files[i].path,
			  bad, n);
		/* No digest past the end (the run may exist: it must be refused). */
		CHECK_MSG(vbfs_txn_digest(t, e.id, n, got) != VBFS_OK, "%s: digest for block %"
			  PRIu64 " past the end", files[i].path, n);
		free(b);
	}
	/* Digests across the run boundary (blocks 255 | 256). */
	struct vbfs_entry big;
	CHECK_ERR(vbfs_txn_lookup_path(t, "big", &big), VBFS_OK);
	uint8_t *b = content(300 * BS + 123, 5);
	sha256(b + 256 * BS, BS, want);
	CHECK_ERR(vbfs_txn_digest(t, big.id, 256, got), VBFS_OK);
	CHECK_MEMEQ(got, want, VBFS_DIGEST_LEN);
	sha256(b + 300 * BS, 123, want);
	CHECK_ERR(vbfs_txn_digest(t, big.id, 300, got), VBFS_OK);
	CHECK_MEMEQ(got, want, VBFS_DIGEST_LEN);
	free(b);
	CHECK(vbfs_txn_digest(t, big.id, 512, got) != VBFS_OK);
	CHECK(vbfs_txn_digest(t, 999999, 0, got) != VBFS_OK);
}

struct names {
	char v[32][64];
	uint64_t ids[32];
	int n, stop_after;
};

static int collect(void *ctx, const struct vbfs_entry *e)
{
	struct names *c = ctx;
	size_t n;
	const char *name = vbfs_entry_name(e, &n);
	if (c->n < 32) {
		snprintf(c->v[c->n], sizeof c->v[c->n], "%.*s", (int)n, name);
		c->ids[c->n] = e->id;
		c->n++;
	}
	return c->stop_after && c->n >= c->stop_after;
}

static void check_names(const struct names *c, const char *const *want, int n, const char *what)
{
	CHECK_MSG(c->n == n, "%s: %d entries, wanted %d", what, c->n, n);
	for (int i = 0; i < n && i < c->n; i++)
		CHECK_MSG(!strcmp(c->v[i], want[i]), "%s[%d]: \"%s\", wanted \"%s\"", what, i,
			  c->v[i], want[i]);
}

static void check_readdir(vbfs_txn *t)
{
	/* Byte order of the names (LMDB key order): upper case first, a prefix
	 * before its extensions, UTF-8 after ASCII. */
	static const char *const root[] = { "B", "a", "a b", "ab", "big", "emptydir",
					    "link", "sub", "\xc3\xa9" };
	static const char *const sub[] = { "c", "d", "dangling", "deep" };
	struct names c = { .n = 0 };
	CHECK_ERR(vbfs_txn_readdir(t, VBFS_ROOT_ID, 0, collect, &c), VBFS_OK);
	check_names(&c, root, 9, "readdir /");
	/* Each child is the record its name looks up (readdir walks the
	 * records with a cursor, lookup searches by key). */
	for (int i = 0; i < c.n; i++) {
		struct vbfs_entry byname;
		CHECK_ERR(vbfs_txn_lookup(t, VBFS_ROOT_ID, c.v[i], strlen(c.v[i]), &byname), VBFS_OK);
		CHECK_MSG(byname.id == c.ids[i], "readdir /[%d] \"%s\": id %llu, lookup %llu", i,
			  c.v[i], (unsigned long long)c.ids[i], (unsigned long long)byname.id);
	}

	/* Resume after the 3rd child, as the kernel does with an offset. */
	struct names more = { .n = 0 };
	if (c.n >= 3)
		CHECK_ERR(vbfs_txn_readdir(t, VBFS_ROOT_ID, c.ids[2], collect, &more), VBFS_OK);
	check_names(&more, root + 3, 6, "readdir / after \"a b\"");
	/* Resume after the last: nothing. */
	struct names none = { .n = 0 };
	if (c.n == 9)
		CHECK_ERR(vbfs_txn_readdir(t, VBFS_ROOT_ID, c.ids[8], collect, &none), VBFS_OK);
	CHECK_EQ(none.n, 0);

	/* The callback stops the walk. */
	struct names first = { .n = 0, .stop_after = 2 };
	CHECK_ERR(vbfs_txn_readdir(t, VBFS_ROOT_ID, 0, collect, &first), VBFS_OK);
	check_names(&first, root, 2, "readdir / stopped at 2");

	struct vbfs_entry e;
	struct names s = { .n = 0 };
	CHECK_ERR(vbfs_txn_lookup_path(t, "sub", &e), VBFS_OK);
	CHECK_ERR(vbfs_txn_readdir(t, e.id, 0, collect, &s), VBFS_OK);
	check_names(&s, sub, 4, "readdir sub");
	struct names empty = { .n = 0 };
	CHECK_ERR(vbfs_txn_lookup_path(t, "emptydir", &e), VBFS_OK);
	CHECK_ERR(vbfs_txn_readdir(t, e.id, 0, collect, &empty), VBFS_OK);
	CHECK_EQ(empty.n, 0);
}

static int count(void *ctx, const struct vbfs_entry *e)
{
	uint64_t *n = ctx;
	(void)e;
	(*n)++;
	return 0;
}

static void check_read_side(void)
{
	vbfs_index *idx = open_index();
	vbfs_txn *t = NULL;
	CHECK_ERR(vbfs_txn_begin(idx, &t), VBFS_OK);
	if (!t)
		CHECK_DIE("vbfs_txn_begin");
	check_lookups(t);
	check_digests(t);
	check_readdir(t);
	uint64_t n = 0;
	CHECK_ERR(vbfs_txn_foreach(t, count, &n), VBFS_OK);
	CHECK_EQ(n, vbfs_index_meta(idx)->entries);
	/* reset/renew keep the handle usable */
	vbfs_txn_reset(t);
	CHECK_ERR(vbfs_txn_renew(t), VBFS_OK);
	struct vbfs_entry e;
	CHECK_ERR(vbfs_txn_lookup_path(t, "big", &e), VBFS_OK);
	vbfs_txn_end(t);
	vbfs_index_close(idx);
}

/* ---- rebuilds ----------------------------------------------------------- */

static uint64_t id_of(const char *path)
{
	vbfs_index *idx = open_index();
	vbfs_txn *t;
	struct vbfs_entry e = { .id = 0 };
	if (vbfs_txn_begin(idx, &t))
		CHECK_DIE("vbfs_txn_begin");
	if (vbfs_txn_lookup_path(t, path, &e))
		e.id = 0;
	vbfs_txn_end(t);
	vbfs_index_close(idx);
	return e.id;
}

static void check_incremental(void)
{
	struct vbfs_build_result r;
	uint64_t big_id = id_of("big"), c_id = id_of("sub/c"), d_id = id_of("sub/d");

	/* Unchanged store: everything reused, nothing hashed. */
	CHECK_ERR(build(0, false, NULL, &r), VBFS_OK);
	CHECK_EQ(r.files_hashed, 0);
	CHECK_EQ(r.files_reused, NFILES);
	CHECK_EQ(r.files_removed, 0);
	CHECK_EQ(r.bytes_hashed, 0);

	/* Change one file (new size), delete one, add one. */
	uint8_t *b = content(6000, 77);
	check_write(check_path(store, "sub/c"), b, 6000);
	if (unlink(check_path(store, "sub/d")) < 0)
		CHECK_DIE("unlink: %s", strerror(errno));
	check_write(check_path(store, "sub/new"), "0123456789", 10);
	CHECK_ERR(build(0, false, NULL, &r), VBFS_OK);
	CHECK_EQ(r.files_hashed, 2);
	CHECK_EQ(r.files_reused, NFILES - 2);
	CHECK_EQ(r.files_removed, 1);
	CHECK_EQ(r.bytes_hashed, 6000 + 10);

	/* Ids are stable for what stayed; the changed file keeps its id too. */
	CHECK_EQ(id_of("big"), big_id);
	CHECK_EQ(id_of("sub/c"), c_id);
	CHECK_EQ(id_of("sub/d"), 0);
	CHECK(id_of("sub/new") != 0);

	vbfs_index *idx = open_index();
	vbfs_txn *t;
	struct vbfs_entry e;
	uint8_t want[VBFS_DIGEST_LEN], got[VBFS_DIGEST_LEN];
	if (vbfs_txn_begin(idx, &t))
		CHECK_DIE("vbfs_txn_begin");
	CHECK_EQ(vbfs_index_meta(idx)->block_size, BS);     /* kept */
	CHECK_EQ(vbfs_index_meta(idx)->files, NFILES);      /* -d +new */
	CHECK_ERR(vbfs_txn_lookup_path(t, "sub/c", &e), VBFS_OK);
	CHECK_EQ(e.size, 6000);
	sha256(b + BS, 6000 - BS, want);
	CHECK_ERR(vbfs_txn_digest(t, e.id, 1, got), VBFS_OK);
	CHECK_MEMEQ(got, want, VBFS_DIGEST_LEN);
	/* The removed file's digests left with it. */
	CHECK(d_id != 0 && vbfs_txn_digest(t, d_id, 0, got) == VBFS_ERR_NOTFOUND);
	CHECK_ERR(vbfs_txn_get(t, d_id, &e), VBFS_ERR_NOTFOUND);
	static const char *const sub[] = { "c", "dangling", "deep", "new" };
	struct names s = { .n = 0 };
	CHECK_ERR(vbfs_txn_lookup_path(t, "sub", &e), VBFS_OK);
	CHECK_ERR(vbfs_txn_readdir(t, e.id, 0, collect, &s), VBFS_OK);
	check_names(&s, sub, 4, "readdir sub after rebuild");
	uint64_t n = 0;
	CHECK_ERR(vbfs_txn_foreach(t, count, &n), VBFS_OK);
	CHECK_EQ(n, 15);
	vbfs_txn_end(t);
	vbfs_index_close(idx);
	free(b);

	/* Same size, new mtime: rehashed. */
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 1700000000, 5 } };
	utimensat(AT_FDCWD, check_path(store, "B"), ts, 0);
	CHECK_ERR(build(0, false, NULL, &r), VBFS_OK);
	CHECK_EQ(r.files_hashed, 1);
	CHECK_EQ(r.files_reused, NFILES - 1);

	/* --full rehashes everything. */
	CHECK_ERR(build(0, true, NULL, &r), VBFS_OK);
	CHECK_EQ(r.files_hashed, NFILES);
	CHECK_EQ(r.files_reused, 0);

	/* A new block size cannot reuse digests. */
	CHECK_ERR(build(2 * BS, false, NULL, &r), VBFS_OK);
	CHECK_EQ(r.files_hashed, NFILES);
	CHECK_EQ(r.files_reused, 0);
	idx = open_index();
	CHECK_EQ(vbfs_index_meta(idx)->block_size, 2 * BS);
	vbfs_index_close(idx);
	CHECK_ERR(build(BS, false, NULL, &r), VBFS_OK);     /* back, for what follows */
}

/* A stopped build writes nothing: the previous index is untouched. */
static void check_interrupted(void)
{
	struct vbfs_build_result r;
	volatile int stop = 1;
	vbfs_index *idx = open_index();
	struct vbfs_meta before = *vbfs_index_meta(idx);
	vbfs_index_close(idx);

	check_write(check_path(store, "later"), "x", 1);
	CHECK_ERR(build(0, true, &stop, &r), VBFS_ERR_INTERRUPTED);
	CHECK_EQ(id_of("later"), 0);
	idx = open_index();
	CHECK_MEMEQ(vbfs_index_meta(idx)->root_digest, before.root_digest, VBFS_DIGEST_LEN);
	CHECK_EQ(vbfs_index_meta(idx)->entries, before.entries);
	vbfs_index_close(idx);
	unlink(check_path(store, "later"));
}

/* ---- bad input ---------------------------------------------------------- */

static void check_bad_input(void)
{
	char why[VBFS_WHY_LEN];
	vbfs_index *idx = (vbfs_index *)1;
	struct vbfs_build_result r;
	const char *nodir = check_path(tmp, "no-such-index");

	why[0] = '\0';
	CHECK_ERR(vbfs_index_open(nodir, NULL, &idx, why), VBFS_ERR_IO);
	CHECK(idx == NULL && why[0]);
	CHECK_MSG(strstr(why, "no-such-index") != NULL, "why: %s", why);

	const char *empty = check_path(tmp, "empty-index");
	mkdir(empty, 0700);
	why[0] = '\0';
	CHECK_ERR(vbfs_index_open(empty, NULL, &idx, why), VBFS_ERR_NOTINDEX);
	CHECK(why[0]);

	/* Random bytes as data.mdb. */
	const char *garbage = check_path(tmp, "garbage-index");
	mkdir(garbage, 0700);
	uint8_t *junk = content(65536, 1234);
	check_write(check_path(garbage, "data.mdb"), junk, 65536);
	free(junk);
	why[0] = '\0';
	CHECK_ERR(vbfs_index_open(garbage, NULL, &idx, why), VBFS_ERR_NOTINDEX);
	CHECK_MSG(strstr(why, "not a vbfs index") != NULL, "why: %s", why);

	/* A file where the index directory should be. */
	const char *file = check_path(tmp, "file-index");
	check_write(file, "x", 1);
	CHECK_ERR(vbfs_index_open(file, NULL, &idx, why), VBFS_ERR_NOTINDEX);

	/* build: missing store, bad block size, a non-empty non-index dir. */
	struct vbfs_build_opts o = { .store = check_path(tmp, "no-such-store"),
				     .index = check_path(tmp, "idx2") };
	CHECK(vbfs_build(&o, &r, why) != VBFS_OK && why[0]);
	CHECK_MSG(access(o.index, F_OK) != 0, "a failed build created %s", o.index);
	o.store = store;
	o.block_size = 3000;
	CHECK_ERR(vbfs_build(&o, &r, why), VBFS_ERR_USAGE);
	o.block_size = 2u << 10;
	CHECK_ERR(vbfs_build(&o, &r, why), VBFS_ERR_USAGE);
	o.block_size = 128u << 20;
	CHECK_ERR(vbfs_build(&o, &r, why), VBFS_ERR_USAGE);
	o.block_size = 0;
	o.index = garbage;   /* has data.mdb, but garbage */
	CHECK(vbfs_build(&o, &r, why) != VBFS_OK);
	mkdir(check_path(tmp, "busy"), 0700);
	check_write(check_path(tmp, "busy/precious"), "keep", 4);
	o.index = check_path(tmp, "busy");
	CHECK_ERR(vbfs_build(&o, &r, why), VBFS_ERR_NOTINDEX);
	CHECK(access(check_path(tmp, "busy/data.mdb"), F_OK) != 0);
}

/*
 * Edit one digest behind the library's back with raw LMDB: the root digest
 * no longer matches and the index must be refused (ERR_ROOT), then a
 * rebuild mends it.
 */
static void check_tamper(void)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;
	if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 8) ||
	    mdb_env_set_mapsize(env, (size_t)1 << 30) || mdb_env_open(env, index_dir, 0, 0600))
		CHECK_DIE("mdb_env_open %s", index_dir);
	if (mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, "blocks", 0, &dbi) ||
	    mdb_cursor_open(txn, dbi, &cur))
		CHECK_DIE("open blocks db");
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	CHECK(rc == 0 && v.mv_size >= VBFS_DIGEST_LEN);
	if (rc == 0) {
		uint8_t *copy = malloc(v.mv_size);
		memcpy(copy, v.mv_data, v.mv_size);
		copy[0] ^= 1;
		MDB_val nv = { v.mv_size, copy };
		CHECK(mdb_cursor_put(cur, &k, &nv, MDB_CURRENT) == 0);
		free(copy);
	}
	mdb_cursor_close(cur);
	CHECK(mdb_txn_commit(txn) == 0);
	mdb_env_close(env);

	char why[VBFS_WHY_LEN] = "";
	vbfs_index *idx = NULL;
	CHECK_ERR(vbfs_index_open(index_dir, NULL, &idx, why), VBFS_ERR_ROOT);
	CHECK_MSG(strstr(why, "root digest") != NULL, "why: %s", why);
	vbfs_index_close(idx);

	struct vbfs_build_result r;
	CHECK_ERR(build(0, true, NULL, &r), VBFS_OK);
	CHECK_ERR(vbfs_index_open(index_dir, NULL, &idx, why), VBFS_OK);
	vbfs_index_close(idx);
}

/* ---- the block verdict -------------------------------------------------- */

static void check_block_verify(void)
{
	const char *path = check_path(tmp, "crafted");
	size_t size = 4 * BS;
	uint8_t *orig = content(size, 42), d[4][VBFS_DIGEST_LEN];
	uint8_t *buf = vbfs_block_buf(BS);
	struct vbfs_block_check chk;
	CHECK(buf && ((uintptr_t)buf & 4095) == 0);
	for (int i = 0; i < 4; i++)
		sha256(orig + i * BS, BS, d[i]);
	check_write(path, orig, size);
	int fd = open(path, O_RDWR);
	if (fd < 0)
		CHECK_DIE("open %s", path);

	CHECK_EQ(vbfs_block_verify(fd, BS, BS, d[1], buf, &chk), VBFS_BLOCK_OK);
	CHECK_EQ(chk.verdict, VBFS_BLOCK_OK);
	CHECK_EQ(chk.got, BS);
	CHECK_MEMEQ(chk.actual, d[1], VBFS_DIGEST_LEN);
	CHECK_MEMEQ(buf, orig + BS, BS);

	/* Right bytes, wrong expectation: corrupt, actual = the real digest. */
	CHECK_EQ(vbfs_block_verify(fd, BS, BS, d[0], buf, &chk), VBFS_BLOCK_CORRUPT);
	CHECK_MEMEQ(chk.actual, d[1], VBFS_DIGEST_LEN);

	/* One flipped bit in block 2. */
	uint8_t byte = orig[2 * BS + 100] ^ 0x10, bad[VBFS_DIGEST_LEN];
	if (pwrite(fd, &byte, 1, 2 * BS + 100) != 1)
		CHECK_DIE("pwrite");
	orig[2 * BS + 100] = byte;
	sha256(orig + 2 * BS, BS, bad);
	CHECK_EQ(vbfs_block_verify(fd, 2 * BS, BS, d[2], buf, &chk), VBFS_BLOCK_CORRUPT);
	CHECK_EQ(chk.verdict, VBFS_BLOCK_CORRUPT);
	CHECK_EQ(chk.got, BS);
	CHECK_MEMEQ(chk.actual, bad, VBFS_DIGEST_LEN);
	CHECK_EQ(vbfs_block_verify(fd, BS, BS, d[1], buf, &chk), VBFS_BLOCK_OK);
	CHECK_EQ(vbfs_block_verify(fd, 3 * BS, BS, d[3], buf, &chk), VBFS_BLOCK_OK);

	/* Truncated mid-block 2: block 2 short, block 3 gone, 0 and 1 fine. */
	if (ftruncate(fd, 2 * BS + 100) < 0)
		CHECK_DIE("ftruncate");
	CHECK_EQ(vbfs_block_verify(fd, 2 * BS, BS, d[2], buf, &chk), VBFS_BLOCK_MISSING);
	CHECK_EQ(chk.got, 100);
	CHECK_EQ(vbfs_block_verify(fd, 3 * BS, BS, d[3], buf, &chk), VBFS_BLOCK_MISSING);
	CHECK_EQ(chk.got, 0);
	CHECK_EQ(vbfs_block_verify(fd, 0, BS, d[0], buf, &chk), VBFS_BLOCK_OK);
	/* A short last block verifies against its own length. */
	uint8_t tail[VBFS_DIGEST_LEN];
	sha256(orig + 2 * BS, 100, tail);
	CHECK_EQ(vbfs_block_verify(fd, 2 * BS, 100, tail, buf, &chk), VBFS_BLOCK_OK);
	CHECK_MEMEQ(buf, orig + 2 * BS, 100);
	close(fd);

	/* The store refuses to be read: unreadable, with errno. */
	fd = open(path, O_WRONLY);
	CHECK_EQ(vbfs_block_verify(fd, 0, BS, d[0], buf, &chk), VBFS_BLOCK_UNREADABLE);
	CHECK_EQ(chk.err, EBADF);
	close(fd);
	fd = open(tmp, O_RDONLY | O_DIRECTORY);
	CHECK_EQ(vbfs_block_verify(fd, 0, BS, d[0], buf, &chk), VBFS_BLOCK_UNREADABLE);
	CHECK_EQ(chk.err, EISDIR);
	close(fd);
	free(buf);
	free(orig);
}

/* ---- vbfs_file_open and a scrub on a damaged store ---------------------- */

struct seen {
	int n;
	char kind[16][16];
	char path[16][64];
	int64_t block[16];
	uint64_t offset[16], length[16];
};

static void on_event(void *ctx, const struct vbfs_event *ev)
{
	struct seen *s = ctx;
	if (s->n >= 16)
		return;
	snprintf(s->kind[s->n], 16, "%s", vbfs_event_kind_name(ev->kind));
	snprintf(s->path[s->n], 64, "%.*s", (int)ev->path_len, ev->path);
	s->block[s->n] = ev->block;
	s->offset[s->n] = ev->offset;
	s->length[s->n] = ev->length;
	s->n++;
}

static int find_event(const struct seen *s, const char *kind, const char *path, int64_t block)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->kind[i], kind) && !strcmp(s->path[i], path) && s->block[i] == block)
			return i;
	return -1;
}

static void check_damage(void)
{
	/* Damage: flip a byte in big block 257, delete "ab", grow "B",
	 * turn sub/deep/e into a directory, truncate "a b" to 100 bytes. */
	int fd = open(check_path(store, "big"), O_RDWR);
	uint8_t byte;
	if (fd < 0 || pread(fd, &byte, 1, 257 * BS + 7) != 1)
		CHECK_DIE("open big");
	byte ^= 0x01;
	if (pwrite(fd, &byte, 1, 257 * BS + 7) != 1)
		CHECK_DIE("pwrite big");
	close(fd);
	unlink(check_path(store, "ab"));
	fd = open(check_path(store, "B"), O_WRONLY | O_APPEND);
	if (fd < 0 || write(fd, "more", 4) != 4)
		CHECK_DIE("append B");
	close(fd);
	unlink(check_path(store, "sub/deep/e"));
	mkdir(check_path(store, "sub/deep/e"), 0755);
	if (truncate(check_path(store, "a b"), 100) < 0)
		CHECK_DIE("truncate");

	vbfs_index *idx = open_index();
	vbfs_txn *t;
	if (vbfs_txn_begin(idx, &t))
		CHECK_DIE("vbfs_txn_begin");
	int store_fd = vbfs_store_open_root(store);
	CHECK(store_fd >= 0);
	static const struct { const char *path; enum vbfs_file_state state; int kind; } want[] = {
		{ "big", VBFS_FILE_OK, -1 },
		{ "ab", VBFS_FILE_MISSING, VBFS_EV_MISSING },
		{ "B", VBFS_FILE_GROWN, VBFS_EV_CHANGED },
		{ "sub/deep/e", VBFS_FILE_CHANGED, VBFS_EV_CHANGED },
		{ "a b", VBFS_FILE_OK, -1 },   /* shrunk: found block by block */
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		struct vbfs_entry e;
		struct vbfs_event ev;
		int ffd = -1;
		CHECK_ERR(vbfs_txn_lookup_path(t, want[i].path, &e), VBFS_OK);
		enum vbfs_file_state st = vbfs_file_open(store_fd, &e, &ffd, &ev);
		CHECK_MSG(st == want[i].state, "vbfs_file_open(%s): state %d, wanted %d",
			  want[i].path, st, want[i].state);
		if (want[i].kind >= 0) {
			CHECK_EQ(ev.kind, want[i].kind);
			CHECK_BYTES(ev.path, ev.path_len, want[i].path);
		}
		if (st == VBFS_FILE_OK || st == VBFS_FILE_GROWN)
			CHECK(ffd >= 0);
		else
			CHECK(ffd == -1);
		if (ffd >= 0)
			close(ffd);
	}
	close(store_fd);
	vbfs_txn_end(t);

	struct seen s = { .n = 0 };
	struct vbfs_scrub_result r;
	char why[VBFS_WHY_LEN] = "";
	struct vbfs_scrub_opts o = { .store = store, .index = idx, .jobs = 2,
				     .event = on_event, .event_ctx = &s };
	CHECK_ERR(vbfs_scrub(&o, &r, why), VBFS_OK);
	int i = find_event(&s, "corrupt", "big", 257);
	CHECK_MSG(i >= 0, "no corrupt event for big block 257");
	if (i >= 0) {
		CHECK_EQ(s.offset[i], 257 * BS);
		CHECK_EQ(s.length[i], BS);
	}
	CHECK_MSG(find_event(&s, "missing", "ab", -1) >= 0, "no missing event for ab");
	CHECK_MSG(find_event(&s, "changed", "sub/deep/e", -1) >= 0, "no changed event for e");
	CHECK_MSG(find_event(&s, "changed", "B", -1) >= 0, "no changed event for grown B");
	i = find_event(&s, "missing", "a b", 0);
	CHECK_MSG(i >= 0, "no missing event for \"a b\" block 0");
	if (i >= 0)
		CHECK_EQ(s.length[i], BS);
	CHECK_MSG(s.n == 5, "scrub reported %d events, wanted 5", s.n);
	for (int k = 0; s.n != 5 && k < s.n; k++)
		fprintf(stderr, "  event: %s %s block %" PRId64 "\n", s.kind[k], s.path[k],
			s.block[k]);
	CHECK_EQ(r.events[VBFS_EV_CORRUPT], 1);
	CHECK_EQ(r.events[VBFS_EV_MISSING], 2);
	CHECK_EQ(r.events[VBFS_EV_CHANGED], 2);
	CHECK_EQ(r.damage_events, 5);
	vbfs_index_close(idx);
}

int main(void)
{
	tmp = check_tmpdir("test_index");
	store = strdup(check_path(tmp, "store"));
	index_dir = strdup(check_path(tmp, "index"));
	make_store();

	check_first_build();
	check_read_side();
	check_incremental();
	check_interrupted();
	check_bad_input();
	check_tamper();
	check_block_verify();
	check_damage();

	check_rmtree(tmp);
	free(store);
	free(index_dir);
	free(tmp);
	return check_done("test_index");
}
