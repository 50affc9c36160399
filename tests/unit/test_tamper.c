/*
 * test_tamper.c - damage an index the way an attacker or a bad disk would,
 * and check that the root digest notices.
 *
 * Two uses:
 *   test_tamper                 (ctest) self-test: builds a small index under
 *                               $VBFS_TEST_TMP, applies every tamper below to
 *                               a fresh copy and checks vbfs_index_open()
 *                               refuses each with VBFS_ERR_ROOT (or VERSION).
 *   test_tamper INDEX ACTION [--reseal]
 *                               (integration tests) change one thing in INDEX:
 *       digest       flip one bit of one block digest       (db 'blocks')
 *       size         add 1 to the size of one regular file  (db 'inodes')
 *       path         change one byte of one entry's path    (db 'inodes')
 *       dirent       rename one directory entry's key       (db 'dirents')
 *       meta         change the stored file count           (db 'meta')
 *       signature    flip one bit of the stored signature   (db 'meta')
 *       version=N    set meta format_version to N
 *       blocksize=N  set meta block_size to N
 *       unmeta=KEY   delete meta KEY: with --reseal, an index as a vbfs
 *                    that did not record KEY yet wrote it
 *       inflate=N    add N made-up block digests (runs of a file id no entry
 *                    has): with --reseal, an index as heavy as a store of
 *                    N blocks, to time the root digest check
 *   test_tamper INDEX open-time  time vbfs_index_open() (root digest check)
 *     --reseal: afterwards recompute and store the root digest, as a forger
 *     with write access but without the secret key would.  The signature (if
 *     any) is left alone, so only a --verify-key check can catch it.
 *
 * Opens the LMDB environment read-write with the same layout as
 * manifest/index_internal.h; exit 0 when the change was made, 2 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "index_internal.h"

#define TRY(call) do { int rc_ = (call); if (rc_) { \
	fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, mdb_strerror(rc_)); \
	goto out; } } while (0)


/* Replace the value under `key` in `dbi` with a modified copy. */
static int put_copy(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, const void *data, size_t len)
{
	MDB_val v = { len, (void *)data };
	return mdb_put(txn, dbi, k, &v, 0);
}

/* The first item of `dbi` for which `want` says yes (NULL: any). */
static int find_item(MDB_txn *txn, MDB_dbi dbi, int (*want)(const MDB_val *k, const MDB_val *v),
		     MDB_val *k, MDB_val *v)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc)
		return rc;
	for (rc = mdb_cursor_get(cur, k, v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, k, v, MDB_NEXT))
		if (!want || want(k, v))
			break;
	mdb_cursor_close(cur);
	return rc;
}

static int is_nonempty_file(const MDB_val *k, const MDB_val *v)
{
	struct vbfs_entry e;
	(void)k;
	return vbfs_record_decode(v->mv_data, v->mv_size, &e) == VBFS_OK &&
	       e.type == VBFS_T_REG && e.size > 0;
}

static int is_named_entry(const MDB_val *k, const MDB_val *v)
{
	struct vbfs_entry e;
	(void)k;
	return vbfs_record_decode(v->mv_data, v->mv_size, &e) == VBFS_OK && e.path_len > 0;
}

static int meta_set_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t val)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++) b[i] = (uint8_t)(val >> (8 * i));
	MDB_val k = { strlen(key), (void *)key };
	return put_copy(txn, dbi, &k, b, 8);
}

/* Apply ACTION in txn.  0 when done. */
static int tamper(MDB_txn *txn, const struct idx_dbs *db, const char *action)
{
	MDB_val k, v;
	uint8_t *copy = NULL;
	int rc = -1;

	if (!strcmp(action, "digest")) {
		TRY(find_item(txn, db->blocks, NULL, &k, &v));
		copy = malloc(v.mv_size);
		memcpy(copy, v.mv_data, v.mv_size);
		copy[0] ^= 0x01;
		TRY(put_copy(txn, db->blocks, &k, copy, v.mv_size));
	} else if (!strcmp(action, "size") || !strcmp(action, "path")) {
		TRY(find_item(txn, db->inodes, action[0] == 's' ? is_nonempty_file : is_named_entry,
			      &k, &v));
		copy = malloc(v.mv_size);
		memcpy(copy, v.mv_data, v.mv_size);
		if (action[0] == 's')
			copy[48] ^= 0x01;                  /* size, little-endian low byte */
		else
			copy[128 + 0] ^= 0x02;             /* first byte of the path */
		TRY(put_copy(txn, db->inodes, &k, copy, v.mv_size));
	} else if (!strcmp(action, "dirent")) {
		TRY(find_item(txn, db->dirents, NULL, &k, &v));
		uint8_t val[8];
		memcpy(val, v.mv_data, 8);
		copy = malloc(k.mv_size);
		memcpy(copy, k.mv_data, k.mv_size);
		MDB_val oldk = { k.mv_size, copy };
		TRY(mdb_del(txn, db->dirents, &oldk, NULL));
		copy[k.mv_size - 1] ^= 0x04;              /* last byte of the name */
		MDB_val nk = { k.mv_size, copy }, nv = { 8, val };
		TRY(mdb_put(txn, db->dirents, &nk, &nv, 0));
	} else if (!strcmp(action, "meta")) {
		MDB_val mk = { 5, "files" };
		TRY(mdb_get(txn, db->meta, &mk, &v));
		uint64_t n = 0;
		for (int i = 7; i >= 0; i--) n = n << 8 | ((const uint8_t *)v.mv_data)[i];
		TRY(meta_set_u64(txn, db->meta, "files", n + 1));
	} else if (!strcmp(action, "signature")) {
		MDB_val sk = { strlen(IDX_META_SIG), IDX_META_SIG };
		TRY(mdb_get(txn, db->meta, &sk, &v));
		copy = malloc(v.mv_size);
		memcpy(copy, v.mv_data, v.mv_size);
		copy[10] ^= 0x80;
		TRY(put_copy(txn, db->meta, &sk, copy, v.mv_size));
	} else if (!strncmp(action, "version=", 8)) {
		TRY(meta_set_u64(txn, db->meta, "format_version", strtoull(action + 8, NULL, 10)));
	} else if (!strncmp(action, "blocksize=", 10)) {
		TRY(meta_set_u64(txn, db->meta, "block_size", strtoull(action + 10, NULL, 10)));
	} else if (!strncmp(action, "unmeta=", 7)) {
		MDB_val mk = { strlen(action + 7), (void *)(action + 7) };
		TRY(mdb_del(txn, db->meta, &mk, NULL));
	} else if (!strncmp(action, "inflate=", 8)) {
		uint64_t n = strtoull(action + 8, NULL, 10);
		uint8_t key[16], run[VBFS_RUN_BLOCKS * VBFS_DIGEST_LEN];
		for (uint64_t r = 0; r * VBFS_RUN_BLOCKS < n; r++) {
			uint64_t left = n - r * VBFS_RUN_BLOCKS;
			size_t cnt = left < VBFS_RUN_BLOCKS ? (size_t)left : VBFS_RUN_BLOCKS;
			for (size_t i = 0; i < sizeof run; i++)
				run[i] = (uint8_t)((r * 131 + i * 7) >> 3);
			idx_be64(key, (uint64_t)1 << 60);
			idx_be64(key + 8, r);
			MDB_val k2 = { 16, key }, v2 = { cnt * VBFS_DIGEST_LEN, run };
			TRY(mdb_put(txn, db->blocks, &k2, &v2, MDB_APPEND));
		}
	} else {
		fprintf(stderr, "test_tamper: unknown action %s\n", action);
		goto out;
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

/* Open INDEX read-write, tamper, optionally reseal the root, commit. */
static int tamper_index(const char *dir, const char *action, int reseal)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	struct idx_dbs db;
	char why[VBFS_WHY_LEN] = "";
	int ok = -1;

	TRY(mdb_env_create(&env));
	mdb_env_set_maxdbs(env, 8);
	mdb_env_set_mapsize(env, IDX_MAPSIZE);
	TRY(mdb_env_open(env, dir, MDB_NOTLS, 0600));
	TRY(mdb_txn_begin(env, NULL, 0, &txn));
	if (idx_open_dbs(txn, false, &db, why)) {
		fprintf(stderr, "test_tamper: %s\n", why);
		goto out;
	}
	if (tamper(txn, &db, action))
		goto out;
	if (reseal) {
		uint8_t root[VBFS_DIGEST_LEN];
		if (idx_root_digest(txn, &db, false, root, why)) {
			fprintf(stderr, "test_tamper: root: %s\n", why);
			goto out;
		}
		MDB_val rk = { strlen(IDX_META_ROOT), IDX_META_ROOT }, rv = { VBFS_DIGEST_LEN, root };
		TRY(mdb_put(txn, db.meta, &rk, &rv, 0));
	}
	int rc = mdb_txn_commit(txn);
	txn = NULL;
	TRY(rc);
	ok = 0;
out:
	if (txn)
		mdb_txn_abort(txn);
	if (env)
		mdb_env_close(env);
	return ok;
}

/* ---- self-test ------------------------------------------------------------ */

static void write_file(const char *path, size_t size, unsigned seed)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	for (size_t i = 0; i < size; i++)
		fputc((int)((i * 2654435761u + seed) >> 7 & 0xff), f);
	fclose(f);
}

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int rc = in < 0 || out < 0 ? -1 : 0;
	while (!rc && (n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n)
			rc = -1;
	if (in >= 0) close(in);
	if (out >= 0) close(out);
	return rc;
}

/* A fresh copy of the pristine index in dst (data.mdb only: no lock file). */
static void fresh_copy(const char *src, const char *dst)
{
	char a[4200], b[4200];
	mkdir(dst, 0700);
	snprintf(a, sizeof a, "%s/data.mdb", src);
	snprintf(b, sizeof b, "%s/data.mdb", dst);
	if (copy_file(a, b)) {
		perror(b);
		exit(2);
	}
	snprintf(b, sizeof b, "%s/lock.mdb", dst);
	unlink(b);
}

static vbfs_err open_err(const char *dir, const char *key, char why[VBFS_WHY_LEN])
{
	vbfs_index *idx = NULL;
	vbfs_err err = vbfs_index_open(dir, key, &idx, why);
	vbfs_index_close(idx);
	return err;
}

static int self_test(void)
{
	const char *base = getenv("VBFS_TEST_TMP");
	char tmpl[4096], store[4200], index[4200], copy[4200], path[4300], why[VBFS_WHY_LEN];
	char sk[4200], pk[4200], sk2[4200], pk2[4200];
	struct vbfs_build_opts o = { 0 };
	struct vbfs_build_result r;

	if (base)
		mkdir(base, 0755);
	snprintf(tmpl, sizeof tmpl, "%s/tamper.XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(tmpl)) {
		perror(tmpl);
		return 2;
	}
	snprintf(store, sizeof store, "%s/store", tmpl);
	snprintf(index, sizeof index, "%s/index", tmpl);
	snprintf(copy, sizeof copy, "%s/copy", tmpl);
	mkdir(store, 0755);
	snprintf(path, sizeof path, "%s/sub", store);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/a.bin", store);
	write_file(path, 3 * 4096 + 100, 1);
	snprintf(path, sizeof path, "%s/sub/b.bin", store);
	write_file(path, 5000, 2);

	snprintf(sk, sizeof sk, "%s/k.sec", tmpl);
	snprintf(pk, sizeof pk, "%s/k.pub", tmpl);
	snprintf(sk2, sizeof sk2, "%s/k2.sec", tmpl);
	snprintf(pk2, sizeof pk2, "%s/k2.pub", tmpl);
	CHECK(vbfs_keygen(sk, pk, why) == VBFS_OK);
	CHECK(vbfs_keygen(sk2, pk2, why) == VBFS_OK);

	o.store = store;
	o.index = index;
	o.block_size = 4096;
	o.jobs = 1;
	o.sign_key = sk;
	if (vbfs_build(&o, &r, why)) {
		fprintf(stderr, "build: %s\n", why);
		return 2;
	}
	CHECK(open_err(index, NULL, why) == VBFS_OK);
	CHECK(open_err(index, pk, why) == VBFS_OK);
	CHECK(open_err(index, pk2, why) == VBFS_ERR_SIGNATURE);

	static const char *const actions[] = { "digest", "size", "path", "dirent", "meta", "signature" };
	for (size_t i = 0; i < sizeof actions / sizeof *actions; i++) {
		fresh_copy(index, copy);
		CHECK(tamper_index(copy, actions[i], 0) == 0);
		vbfs_err err = open_err(copy, NULL, why);
		/* The signature is outside the root: without a key the index opens;
		 * with the key it is refused. */
		if (!strcmp(actions[i], "signature")) {
			CHECK(err == VBFS_OK);
			CHECK(open_err(copy, pk, why) == VBFS_ERR_SIGNATURE);
			continue;
		}
		if (err != VBFS_ERR_ROOT || !strstr(why, "index damaged: root digest mismatch"))
			fprintf(stderr, "tamper %s: got %d (%s)\n", actions[i], err, why);
		CHECK(err == VBFS_ERR_ROOT);
		CHECK(strstr(why, "index damaged: root digest mismatch") != NULL);
		/* A forger who recomputes the root is caught by the signature. */
		fresh_copy(index, copy);
		CHECK(tamper_index(copy, actions[i], 1) == 0);
		CHECK(open_err(copy, NULL, why) == VBFS_OK);
		CHECK(open_err(copy, pk, why) == VBFS_ERR_SIGNATURE);
	}
	fresh_copy(index, copy);
	CHECK(tamper_index(copy, "version=99", 0) == 0);
	CHECK(open_err(copy, NULL, why) == VBFS_ERR_VERSION);
	fresh_copy(index, copy);
	CHECK(tamper_index(copy, "blocksize=3000", 1) == 0);
	CHECK(open_err(copy, NULL, why) == VBFS_ERR_FORMAT);

	char cmd[4300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
	if (system(cmd)) { /* leftovers in the test tmp dir are harmless */ }
	return check_done("test_tamper");
}

int main(int argc, char **argv)
{
	if (argc == 1)
		return self_test();
	if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "--reseal"))) {
		fprintf(stderr, "usage: test_tamper [INDEX ACTION [--reseal]]\n");
		return 2;
	}
	if (argc == 3 && !strcmp(argv[2], "open-time")) {
		char why[VBFS_WHY_LEN];
		vbfs_index *idx;
		double t0 = vbfs_monotonic();
		vbfs_err err = vbfs_index_open(argv[1], NULL, &idx, why);
		double t1 = vbfs_monotonic();
		if (err) {
			fprintf(stderr, "test_tamper: %s\n", why);
			return 2;
		}
		printf("%.3f\n", t1 - t0);
		vbfs_index_close(idx);
		return 0;
	}
	return tamper_index(argv[1], argv[2], argc == 4) ? 2 : 0;
}
