/*
 * trust.c - why an index can be believed: its root digest and signature.
 *
 * root = SHA-256("vbfs-root-v1" || H(meta) || H(inodes) || H(dirents) || H(blocks))
 * where each H(db) is SHA-256 over every (key, value) in LMDB key order,
 * each as u32le length + bytes, and H(meta) skips the root and signature
 * keys themselves.  Key order is canonical for free (LMDB sorts), so the
 * same tree always gives the same root.
 *
 * Cost: one pass over the index, dominated by the block digests (32 bytes
 * per block: a 10 TB store at 1 MiB blocks is 320 MB).  So H(blocks) is
 * defined over segments of SEG_RECORDS records -- SHA-256 of the segment
 * digests in order -- which lets an open hash the segments on every core
 * (each thread walks the keys, hashing only its own segments).  The result
 * does not depend on the thread count; the build computes it on one
 * thread inside its write transaction.  The other threads take their own
 * read transactions, so they must see the caller's bytes: an open hashes
 * in parallel only the private copy of the index (snapshot.c), one
 * snapshot that nobody writes, never the shared index itself.  A worker
 * that counts other records than the caller's snapshot fails the digest.
 * Measured figures are in doc/reliability.md ("Cost of the root check")
 * and doc/trust.md (the private copy).
 *
 * The signature is Ed25519 (OpenSSL EVP, PEM keys) over
 * "vbfs-index-signature-v1" || root: the verifying host cannot forge an
 * index the backup host did not sign.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include "index_internal.h"

#define SEG_RECORDS 64u

static const char ROOT_TAG[] = "vbfs-root-v1";
static const char SIG_TAG[] = "vbfs-index-signature-v1";

static void put_len(EVP_MD_CTX *ctx, size_t n)
{
	uint8_t b[4] = { (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24) };
	EVP_DigestUpdate(ctx, b, 4);
}

static bool is_unsigned_meta(const MDB_val *k)
{
	return (k->mv_size == strlen(IDX_META_ROOT) && !memcmp(k->mv_data, IDX_META_ROOT, k->mv_size)) ||
	       (k->mv_size == strlen(IDX_META_SIG) && !memcmp(k->mv_data, IDX_META_SIG, k->mv_size));
}

static vbfs_err hash_db(MDB_txn *txn, MDB_dbi dbi, bool is_meta, uint8_t out[VBFS_DIGEST_LEN],
			char why[VBFS_WHY_LEN])
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(ctx);
		return VBFS_ERR_NOMEM;
	}
	if ((rc = mdb_cursor_open(txn, dbi, &cur))) {
		EVP_MD_CTX_free(ctx);
		return idx_lmdb_err(rc, "open cursor", why);
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (is_meta && is_unsigned_meta(&k))
			continue;
		put_len(ctx, k.mv_size);
		EVP_DigestUpdate(ctx, k.mv_data, k.mv_size);
		put_len(ctx, v.mv_size);
		EVP_DigestUpdate(ctx, v.mv_data, v.mv_size);
	}
	mdb_cursor_close(cur);
	EVP_DigestFinal_ex(ctx, out, NULL);
	EVP_MD_CTX_free(ctx);
	if (rc != MDB_NOTFOUND)
		return idx_lmdb_err(rc, "index damaged: reading records", why);
	return VBFS_OK;
}

/* Hash this stripe's segments (segment s belongs to stripe s % nstripes). */
static int hash_segments(MDB_txn *txn, MDB_dbi dbi, unsigned stripe, unsigned nstripes,
			 uint8_t (*segs)[VBFS_DIGEST_LEN], size_t entries)
{
	size_t nsegs = (entries + SEG_RECORDS - 1) / SEG_RECORDS;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;
	size_t i = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return ENOMEM;
	if ((rc = mdb_cursor_open(txn, dbi, &cur))) {
		EVP_MD_CTX_free(ctx);
		return rc;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), i++) {
		size_t seg = i / SEG_RECORDS;
		if (seg >= nsegs) {
			rc = MDB_BAD_TXN;   /* more records than counted: snapshots differ */
			break;
		}
		if (seg % nstripes != stripe)
			continue;
		if (i % SEG_RECORDS == 0)
			EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
		put_len(ctx, k.mv_size);
		EVP_DigestUpdate(ctx, k.mv_data, k.mv_size);
		put_len(ctx, v.mv_size);
		EVP_DigestUpdate(ctx, v.mv_data, v.mv_size);
		if (i % SEG_RECORDS == SEG_RECORDS - 1)
			EVP_DigestFinal_ex(ctx, segs[seg], NULL);
	}
	if (rc == MDB_NOTFOUND) {
		rc = i == entries ? 0 : MDB_BAD_TXN;   /* fewer records: snapshots differ */
		/* The last, partial segment. */
		if (!rc && i % SEG_RECORDS && ((i - 1) / SEG_RECORDS) % nstripes == stripe)
			EVP_DigestFinal_ex(ctx, segs[(i - 1) / SEG_RECORDS], NULL);
	}
	mdb_cursor_close(cur);
	EVP_MD_CTX_free(ctx);
	return rc;
}

struct seg_job {
	MDB_env *env;
	MDB_dbi dbi;
	unsigned stripe, nstripes;
	uint8_t (*segs)[VBFS_DIGEST_LEN];
	size_t entries;
	int rc;
};

static void *seg_thread(void *arg)
{
	struct seg_job *j = arg;
	MDB_txn *txn;
	if ((j->rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return NULL;
	j->rc = hash_segments(txn, j->dbi, j->stripe, j->nstripes, j->segs, j->entries);
	mdb_txn_abort(txn);
	return NULL;
}

/* H(blocks): segments hashed on up to 8 threads when the environment is
 * read-only -- the private copy, whose every txn sees the same bytes. */
static vbfs_err hash_blocks(MDB_txn *txn, MDB_dbi dbi, bool parallel,
			    uint8_t out[VBFS_DIGEST_LEN], char why[VBFS_WHY_LEN])
{
	MDB_stat st;
	int rc = mdb_stat(txn, dbi, &st);
	if (rc)
		return idx_lmdb_err(rc, "index damaged: reading digests", why);
	size_t nsegs = (st.ms_entries + SEG_RECORDS - 1) / SEG_RECORDS;
	uint8_t (*segs)[VBFS_DIGEST_LEN] = calloc(nsegs ? nsegs : 1, VBFS_DIGEST_LEN);
	if (!segs)
		return VBFS_ERR_NOMEM;
	/* Only a read-only environment can be read by other threads' txns and
	 * see the same data: a build hashes its own uncommitted txn here. */
	unsigned flags = 0;
	mdb_env_get_flags(mdb_txn_env(txn), &flags);
	bool readonly = flags & MDB_RDONLY;
	unsigned n = vbfs_ncpu();
	if (n > 8) n = 8;
	rc = -1;
	if (parallel && readonly && n > 1 && nsegs >= 2 * n) {
		struct seg_job jobs[8];
		pthread_t th[8];
		unsigned started = 0;
		for (unsigned i = 0; i < n; i++) {
			jobs[i] = (struct seg_job){ mdb_txn_env(txn), dbi, i, n, segs, st.ms_entries, 0 };
			if (pthread_create(&th[i], NULL, seg_thread, &jobs[i]))
				break;
			started++;
		}
		rc = started == n ? 0 : -1;
		for (unsigned i = 0; i < started; i++) {
			pthread_join(th[i], NULL);
			if (jobs[i].rc)
				rc = jobs[i].rc;
		}
	}
	if (rc == -1)   /* no threads: one, on the caller's own txn */
		rc = hash_segments(txn, dbi, 0, 1, segs, st.ms_entries);
	if (rc) {
		free(segs);
		return idx_lmdb_err(rc, "index damaged: reading digests", why);
	}
	unsigned int dl = VBFS_DIGEST_LEN;
	EVP_Digest(segs, nsegs * VBFS_DIGEST_LEN, out, &dl, EVP_sha256(), NULL);
	free(segs);
	return VBFS_OK;
}

vbfs_err idx_root_digest(MDB_txn *txn, const struct idx_dbs *db, bool parallel,
			 uint8_t out[VBFS_DIGEST_LEN], char why[VBFS_WHY_LEN])
{
	uint8_t parts[4][VBFS_DIGEST_LEN];
	const MDB_dbi dbis[3] = { db->meta, db->inodes, db->dirents };
	vbfs_err err;
	for (int i = 0; i < 3; i++)
		if ((err = hash_db(txn, dbis[i], i == 0, parts[i], why)))
			return err;
	if ((err = hash_blocks(txn, db->blocks, parallel, parts[3], why)))
		return err;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return VBFS_ERR_NOMEM;
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, ROOT_TAG, sizeof ROOT_TAG - 1);
	EVP_DigestUpdate(ctx, parts, sizeof parts);
	EVP_DigestFinal_ex(ctx, out, NULL);
	EVP_MD_CTX_free(ctx);
	return VBFS_OK;
}

static EVP_PKEY *read_key(const char *path, bool secret, char why[VBFS_WHY_LEN])
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *key;
	if (!f) {
		vbfs_whyf(why, "%s: %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (secret && fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO))) {
		/* A key others can read signs nothing only its owner vouches for. */
		vbfs_whyf(why, "%s: secret key is accessible to group or others "
			 "(mode %04o): chmod 600 it", path, (unsigned)(st.st_mode & 07777));
		fclose(f);
		return NULL;
	}
	key = secret ? PEM_read_PrivateKey(f, NULL, NULL, NULL)
		     : PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (!key || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
		vbfs_whyf(why, "%s: not a PEM Ed25519 %s key", path,
			 secret ? "secret" : "public");
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

vbfs_err idx_check_secret_key(const char *secret_key_path, char why[VBFS_WHY_LEN])
{
	EVP_PKEY *key = read_key(secret_key_path, true, why);
	EVP_PKEY_free(key);
	return key ? VBFS_OK : VBFS_ERR_SIGNATURE;
}

/* The index root is signed as a tagged digest: SIG_TAG || root. */
vbfs_err idx_sign(const char *secret_key_path, const uint8_t root[VBFS_DIGEST_LEN],
		  uint8_t sig[64], char why[VBFS_WHY_LEN])
{
	return trust_sign_digest(secret_key_path, SIG_TAG, root, sig, why);
}

static vbfs_err verify_tagged(const char *public_key_path, const char *tag,
			      const uint8_t digest[VBFS_DIGEST_LEN], const uint8_t sig[64],
			      const char *what, const char *hint, char why[VBFS_WHY_LEN]);

vbfs_err idx_verify_signature(const char *public_key_path,
			      const uint8_t root[VBFS_DIGEST_LEN],
			      const uint8_t sig[64], char why[VBFS_WHY_LEN])
{
	return verify_tagged(public_key_path, SIG_TAG, root, sig, "index signature",
			     " (wrong key, or the index was changed after signing)", why);
}

/* Write a PEM file atomically (atomic_file.c): the key appears whole or
 * not at all. */
static vbfs_err write_pem(const char *path, EVP_PKEY *key, bool secret, char why[VBFS_WHY_LEN])
{
	struct vbfs_atomic_file af;
	char ignore[VBFS_WHY_LEN];
	if (vbfs_atomic_open(&af, path, secret ? 0600 : 0644, ignore) != VBFS_OK) {
		vbfs_whyf(why, "%s: cannot write key: %s", path, strerror(errno));
		return VBFS_ERR_IO;
	}
	int fd = dup(af.fd);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	int ok = f && (secret ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
			      : PEM_write_PUBKEY(f, key));
	if (f)
		ok = (fclose(f) == 0) && ok;
	else if (fd >= 0)
		close(fd);
	if (!ok || vbfs_atomic_commit(&af, ignore) != VBFS_OK) {
		vbfs_whyf(why, "%s: cannot write key: %s", path, strerror(errno));
		vbfs_atomic_abort(&af);
		return VBFS_ERR_IO;
	}
	return VBFS_OK;
}

vbfs_err vbfs_keygen(const char *secret_path, const char *public_path,
		     char why[VBFS_WHY_LEN])
{
	struct stat st;
	vbfs_err err;
	if (!stat(secret_path, &st) || !stat(public_path, &st)) {
		vbfs_whyf(why, "%s: already exists (refusing to overwrite a key)",
			 !stat(secret_path, &st) ? secret_path : public_path);
		return VBFS_ERR_USAGE;
	}
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!key) {
		vbfs_whyf(why, "Ed25519 key generation failed");
		return VBFS_ERR_SIGNATURE;
	}
	err = write_pem(secret_path, key, true, why);
	if (!err && (err = write_pem(public_path, key, false, why)))
		unlink(secret_path);
	EVP_PKEY_free(key);
	return err;
}

/* tag || digest, the message of a tagged signature. */
static size_t tagged_message(const char *tag, const uint8_t digest[VBFS_DIGEST_LEN],
			     uint8_t msg[128])
{
	size_t n = strlen(tag);
	if (n > 128 - VBFS_DIGEST_LEN)
		n = 128 - VBFS_DIGEST_LEN;
	memcpy(msg, tag, n);
	memcpy(msg + n, digest, VBFS_DIGEST_LEN);
	return n + VBFS_DIGEST_LEN;
}

vbfs_err trust_sign_digest(const char *secret_key_path, const char *tag,
			   const uint8_t digest[VBFS_DIGEST_LEN], uint8_t sig[64],
			   char why[VBFS_WHY_LEN])
{
	uint8_t msg[128];
	size_t len = tagged_message(tag, digest, msg), siglen = 64;
	vbfs_err err = VBFS_ERR_SIGNATURE;
	EVP_PKEY *key = read_key(secret_key_path, true, why);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!key || !ctx)
		goto out;
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, msg, len) != 1 || siglen != 64) {
		vbfs_whyf(why, "%s: signing failed", secret_key_path);
		goto out;
	}
	err = VBFS_OK;
out:
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(key);
	return err;
}

/* Verify sig over tag || digest; a mismatch says "WHAT does not verify
 * with KEY" and the hint (a key that cannot be read says so itself).  The
 * mirror of trust_sign_digest: same message, same key handling. */
static vbfs_err verify_tagged(const char *public_key_path, const char *tag,
			      const uint8_t digest[VBFS_DIGEST_LEN], const uint8_t sig[64],
			      const char *what, const char *hint, char why[VBFS_WHY_LEN])
{
	uint8_t msg[128];
	size_t len = tagged_message(tag, digest, msg);
	vbfs_err err = VBFS_ERR_SIGNATURE;
	EVP_PKEY *key = read_key(public_key_path, false, why);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!key || !ctx)
		goto out;
	if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) != 1 ||
	    EVP_DigestVerify(ctx, sig, 64, msg, len) != 1) {
		vbfs_whyf(why, "%s does not verify with %s%s", what,
			 public_key_path, hint);
		goto out;
	}
	err = VBFS_OK;
out:
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(key);
	return err;
}

vbfs_err idx_signed_by_secret(const char *secret_key_path, const uint8_t root[VBFS_DIGEST_LEN],
			     const uint8_t sig[64], char why[VBFS_WHY_LEN])
{
	uint8_t msg[128];
	size_t len = tagged_message(SIG_TAG, root, msg);
	EVP_PKEY *key = read_key(secret_key_path, true, why);   /* holds its public half */
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = key && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
		  EVP_DigestVerify(ctx, sig, 64, msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(key);
	return ok ? VBFS_OK : VBFS_ERR_SIGNATURE;
}

vbfs_err trust_verify_digest(const char *public_key_path, const char *tag,
			     const uint8_t digest[VBFS_DIGEST_LEN], const uint8_t sig[64],
			     char why[VBFS_WHY_LEN])
{
	return verify_tagged(public_key_path, tag, digest, sig, "signature", "", why);
}
