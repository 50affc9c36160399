/*
 * test_trust_index.c - an opened index serves the bytes it checked, and only
 * those (manifest/snapshot.c, index.c):
 *   - a digest overwritten in place in data.mdb after the open is not served;
 *   - a writer flipping a digest while indexes are opened never gets a
 *     tampered digest served behind a root that verified (the snapshot the
 *     root was computed on is the one served);
 *   - the backup id and the build time are covered by the signature, and
 *     an opener can require them (expect.backup_id, expect.max_age);
 *   - the private copy leaves nothing in TMPDIR.
 */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include "check.h"
#include "index_internal.h"

#define BS      4096u
#define NFILES  2000u     /* enough digest runs for the parallel root workers */

static char *dir, *store, *index_dir, *tmp, *sec, *pub;

static void make_store(void)
{
	uint8_t buf[3 * BS];
	mkdir(store, 0755);
	for (unsigned i = 0; i < NFILES; i++) {
		char name[32];
		snprintf(name, sizeof name, "f%04u", i);
		check_fill(buf, sizeof buf, i + 1);
		check_write(check_path(store, name), buf, i == 0 ? sizeof buf : 100);
	}
}

static void build(const char *idx, const char *backup_id)
{
	char why[VBFS_WHY_LEN] = "";
	struct vbfs_build_result r;
	struct vbfs_build_opts o = { .store = store, .index = idx, .block_size = BS,
				     .jobs = 2, .backup_id = backup_id, .sign_key = sec };
	if (vbfs_build(&o, &r, why))
		CHECK_DIE("vbfs_build: %s", why);
}

/* f0000's entry id and the digest of its block 0, from an open handle. */
static void first_digest(vbfs_index *idx, uint64_t *id, uint8_t d[VBFS_DIGEST_LEN])
{
	vbfs_txn *t;
	struct vbfs_entry e;
	if (vbfs_txn_begin(idx, &t) || vbfs_txn_lookup_path(t, "f0000", &e) ||
	    vbfs_txn_digest(t, e.id, 0, d))
		CHECK_DIE("lookup f0000");
	*id = e.id;
	vbfs_txn_end(t);
}

static void digest_now(vbfs_index *idx, uint64_t id, uint8_t d[VBFS_DIGEST_LEN])
{
	vbfs_txn *t;
	memset(d, 0, VBFS_DIGEST_LEN);
	if (vbfs_txn_begin(idx, &t) == VBFS_OK) {
		vbfs_txn_digest(t, id, 0, d);
		vbfs_txn_end(t);
	}
}

/* ---- writing the original index as an attacker would ---------------------- */

struct writer {
	MDB_env *env;
	MDB_txn *txn;
	struct idx_dbs db;
};

static void writer_begin(struct writer *w, const char *idx)
{
	char why[VBFS_WHY_LEN];
	if (mdb_env_create(&w->env) || mdb_env_set_maxdbs(w->env, 8) ||
	    mdb_env_set_mapsize(w->env, IDX_MAPSIZE) ||
	    mdb_env_open(w->env, idx, MDB_NOTLS | MDB_NOSYNC, 0600) ||
	    mdb_txn_begin(w->env, NULL, 0, &w->txn) ||
	    idx_open_dbs(w->txn, false, &w->db, why))
		CHECK_DIE("open %s for writing", idx);
}

static void writer_put(struct writer *w, MDB_dbi dbi, const char *key, size_t klen,
		       const void *val, size_t vlen)
{
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
	if (mdb_put(w->txn, dbi, &k, &v, 0))
		CHECK_DIE("mdb_put");
}

/* Recompute the root (a forger can); with `resign`, sign it too (only the
 * key's holder can: a legitimate older build). */
static void writer_commit(struct writer *w, bool reseal, bool resign)
{
	char why[VBFS_WHY_LEN];
	uint8_t root[VBFS_DIGEST_LEN], sig[64];
	if (reseal) {
		if (idx_root_digest(w->txn, &w->db, false, root, why))
			CHECK_DIE("root: %s", why);
		writer_put(w, w->db.meta, IDX_META_ROOT, strlen(IDX_META_ROOT), root, sizeof root);
	}
	if (resign) {
		if (idx_sign(sec, root, sig, why))
			CHECK_DIE("sign: %s", why);
		writer_put(w, w->db.meta, IDX_META_SIG, strlen(IDX_META_SIG), sig, sizeof sig);
	}
	if (mdb_txn_commit(w->txn))
		CHECK_DIE("commit");
	mdb_env_close(w->env);
}

static void put_u64le(struct writer *w, const char *key, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
	writer_put(w, w->db.meta, key, strlen(key), b, 8);
}

/* ---- 1. an in-place overwrite after the open is not served ------------------- */

static void check_in_place_overwrite(void)
{
	char why[VBFS_WHY_LEN] = "";
	vbfs_index *idx = NULL;
	uint8_t good[VBFS_DIGEST_LEN], bad[VBFS_DIGEST_LEN], now[VBFS_DIGEST_LEN];
	uint64_t id;
	CHECK_ERR(vbfs_index_open(index_dir, pub, &idx, why), VBFS_OK);
	if (!idx)
		return;
	first_digest(idx, &id, good);
	memset(bad, 0xA5, sizeof bad);

	/* The same file, the same inode: no rename, no LMDB. */
	int fd = open(check_path(index_dir, "data.mdb"), O_RDWR);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		CHECK_DIE("open data.mdb");
	uint8_t *all = malloc((size_t)st.st_size);
	if (!all || pread(fd, all, (size_t)st.st_size, 0) != st.st_size)
		CHECK_DIE("read data.mdb");
	size_t hits = 0;
	for (off_t at = 0; at + VBFS_DIGEST_LEN <= st.st_size; at++)
		if (!memcmp(all + at, good, VBFS_DIGEST_LEN)) {
			if (pwrite(fd, bad, sizeof bad, at) != (ssize_t)sizeof bad)
				CHECK_DIE("pwrite");
			hits++;
		}
	CHECK(hits >= 1);
	digest_now(idx, id, now);
	CHECK_MSG(!memcmp(now, good, VBFS_DIGEST_LEN),
		  "the open handle serves a digest written into data.mdb after it was checked");
	vbfs_index_close(idx);

	/* Put it back for the tests after this one. */
	for (off_t at = 0; at + VBFS_DIGEST_LEN <= st.st_size; at++)
		if (!memcmp(all + at, good, VBFS_DIGEST_LEN) &&
		    pwrite(fd, good, sizeof good, at) != (ssize_t)sizeof good)
			CHECK_DIE("pwrite");
	free(all);
	close(fd);
	CHECK_ERR(vbfs_index_open(index_dir, pub, &idx, why), VBFS_OK);
	vbfs_index_close(idx);
}

/* ---- 2. a writer flipping a digest while indexes are opened -------------------- */

/* Commit the tampered digest and the good one in turn, as fast as LMDB
 * commits, until killed. */
static void flipper(uint64_t id, const uint8_t *good, size_t run_len)
{
	uint8_t *run = malloc(run_len), key[16];
	idx_be64(key, id);
	idx_be64(key + 8, 0);
	for (unsigned n = 0;; n++) {
		struct writer w;
		writer_begin(&w, index_dir);
		memcpy(run, good, run_len);
		if (n % 2 == 0)
			memset(run, 0xA5, VBFS_DIGEST_LEN);
		writer_put(&w, w.db.blocks, (const char *)key, sizeof key, run, run_len);
		writer_commit(&w, false, false);
	}
}

static void check_flipping_writer(void)
{
	char why[VBFS_WHY_LEN] = "";
	vbfs_index *idx = NULL;
	uint8_t good[VBFS_DIGEST_LEN], now[VBFS_DIGEST_LEN], run[VBFS_RUN_BLOCKS * VBFS_DIGEST_LEN];
	uint64_t id;
	size_t run_len;
	CHECK_ERR(vbfs_index_open(index_dir, pub, &idx, why), VBFS_OK);
	if (!idx)
		return;
	first_digest(idx, &id, good);
	{
		vbfs_txn *t;
		uint8_t key[16];
		MDB_val k = { 16, key }, v;
		idx_be64(key, id);
		idx_be64(key + 8, 0);
		vbfs_txn_begin(idx, &t);
		if (mdb_get(t->txn, idx->db.blocks, &k, &v) || v.mv_size > sizeof run)
			CHECK_DIE("run 0 of f0000");
		memcpy(run, v.mv_data, v.mv_size);
		run_len = v.mv_size;
		vbfs_txn_end(t);
	}
	vbfs_index_close(idx);

	pid_t pid = fork();
	if (pid < 0)
		CHECK_DIE("fork");
	if (pid == 0)
		flipper(id, run, run_len);
	unsigned opened = 0, refused = 0, tampered = 0, other = 0;
	for (unsigned i = 0; i < 150; i++) {
		vbfs_err err = vbfs_index_open(index_dir, pub, &idx, why);
		if (err == VBFS_ERR_ROOT) {
			refused++;
			continue;
		}
		if (err) {
			other++;
			fprintf(stderr, "open during flips: %s: %s\n", vbfs_strerror(err), why);
			continue;
		}
		opened++;
		digest_now(idx, id, now);
		if (memcmp(now, good, VBFS_DIGEST_LEN))
			tampered++;
		vbfs_index_close(idx);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	printf("# flipping writer: %u opened, %u refused (root mismatch), %u other\n",
	       opened, refused, other);
	CHECK_MSG(tampered == 0, "%u opens served a tampered digest behind a verified root",
		  tampered);
	CHECK_EQ(other, 0);
	CHECK(opened > 0);

	/* Leave the good digest in place. */
	struct writer w;
	uint8_t key[16];
	idx_be64(key, id);
	idx_be64(key + 8, 0);
	writer_begin(&w, index_dir);
	writer_put(&w, w.db.blocks, (const char *)key, sizeof key, run, run_len);
	writer_commit(&w, false, false);
	CHECK_ERR(vbfs_index_open(index_dir, pub, &idx, why), VBFS_OK);
	vbfs_index_close(idx);
}

/* ---- 4. backup id and build time: signed, and required on demand ------------------ */

static void check_expectations(void)
{
	char why[VBFS_WHY_LEN] = "", copy[1200];
	vbfs_index *idx = NULL;
	struct vbfs_index_expect x = { .verify_key = pub, .backup_id = "nightly-1", .max_age = 3600 };
	CHECK_ERR(vbfs_index_open_expect(index_dir, &x, &idx, why), VBFS_OK);
	vbfs_index_close(idx);
	x.backup_id = "nightly-2";
	CHECK_ERR(vbfs_index_open_expect(index_dir, &x, &idx, why), VBFS_ERR_EXPECT);
	CHECK_MSG(strstr(why, "index is for backup id 'nightly-1', expected 'nightly-2'"), "%s", why);
	CHECK(idx == NULL);

	/* A forger relabels the index and reseals the root: the signature no
	 * longer verifies (backup id and time are inside the root). */
	const char *relabel[] = { "backup_id", "updated" };
	for (int i = 0; i < 2; i++) {
		snprintf(copy, sizeof copy, "%s/relabel%d", dir, i);
		build(copy, "nightly-1");
		struct writer w;
		writer_begin(&w, copy);
		if (i == 0)
			writer_put(&w, w.db.meta, "backup_id", 9, "nightly-2", 9);
		else
			put_u64le(&w, "updated", (uint64_t)vbfs_now() + 5);
		writer_commit(&w, true, false);
		CHECK_ERR(vbfs_index_open(copy, NULL, &idx, why), VBFS_OK);   /* unsigned check only */
		vbfs_index_close(idx);
		CHECK_ERR(vbfs_index_open(copy, pub, &idx, why), VBFS_ERR_SIGNATURE);
		CHECK_MSG(strstr(why, "signature does not verify"), "%s: %s", relabel[i], why);
	}

	/* A genuine older index (signed with the key): refused by max_age. */
	snprintf(copy, sizeof copy, "%s/old", dir);
	build(copy, "nightly-1");
	struct writer w;
	writer_begin(&w, copy);
	put_u64le(&w, "updated", (uint64_t)vbfs_now() - 7200);
	writer_commit(&w, true, true);
	x.backup_id = "nightly-1";
	x.max_age = 3600;
	CHECK_ERR(vbfs_index_open_expect(copy, &x, &idx, why), VBFS_ERR_EXPECT);
	CHECK_MSG(strstr(why, "older than the maximum age of 3600 s"), "%s", why);
	x.max_age = 3 * 3600;
	CHECK_ERR(vbfs_index_open_expect(copy, &x, &idx, why), VBFS_OK);
	vbfs_index_close(idx);
}

/* ---- the private copy leaves nothing behind ------------------------------------ */

static void check_tmpdir_clean(void)
{
	char why[VBFS_WHY_LEN] = "";
	vbfs_index *idx = NULL;
	CHECK_ERR(vbfs_index_open(index_dir, pub, &idx, why), VBFS_OK);
	int entries = 0;
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", tmp);
	FILE *p = popen(cmd, "r");
	if (!p || fscanf(p, "%d", &entries) != 1)
		CHECK_DIE("ls %s", tmp);
	pclose(p);
	CHECK_EQ(entries, 0);
	vbfs_index_close(idx);
}

int main(void)
{
	char why[VBFS_WHY_LEN];
	dir = check_tmpdir("trust_index");
	store = strdup(check_path(dir, "store"));
	index_dir = strdup(check_path(dir, "idx"));
	tmp = strdup(check_path(dir, "tmp"));
	sec = strdup(check_path(dir, "k.sec"));
	pub = strdup(check_path(dir, "k.pub"));
	mkdir(tmp, 0700);
	setenv("TMPDIR", tmp, 1);   /* where the private copies go */
	if (vbfs_keygen(sec, pub, why))
		CHECK_DIE("keygen: %s", why);
	make_store();
	build(index_dir, "nightly-1");

	check_in_place_overwrite();
	check_flipping_writer();
	check_expectations();
	check_tmpdir_clean();

	check_rmtree(dir);
	free(dir); free(store); free(index_dir); free(tmp); free(sec); free(pub);
	return check_done("test_trust_index");
}
