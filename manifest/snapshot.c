/*
 * snapshot.c - the private copy of an index that an opened vbfs_index
 * serves, and the probe that reads it first.
 *
 * Why a copy: LMDB maps data.mdb shared.  Whoever can write the index
 * directory could change a digest in place under a live mount after the
 * root digest and the signature were checked, and the mount would serve
 * bytes that never matched the signed index.  So an open takes ONE read
 * transaction of the index, copies it (mdb_env_copyfd2, MDB_CP_COMPACT:
 * only the pages of that snapshot) into an unnamed O_TMPFILE under $TMPDIR
 * (or, where that is not possible, a file in a fresh 0700 directory there,
 * unlinked as soon as it is mapped), checks the root digest on the copy,
 * and serves only the copy.  Nobody can open it by name, and the only
 * writable descriptor is closed once it is mapped.  The root digest,
 * the signature and every later lookup are about the same bytes.
 *
 * Why a probe: LMDB does not validate its pages.  A crafted data.mdb (a
 * node whose key size runs off its page, a page whose header is garbage)
 * makes LMDB read past the end of the mapped file: SIGBUS.  So the copy
 * and the first full walk of it (the root digest, which reads every key
 * and value of every database) run in a forked child.  A child killed by
 * a signal means "this index is malformed": one line, exit 2, in the
 * caller.  The parent then maps the same immutable file in the same way,
 * and its lookups only ever read what the walk read, plus branch keys,
 * which are at most 64 KiB from a node at most 64 KiB into its page: the
 * copy is padded with a zero tail (COPY_TAIL) and mapped exactly to its
 * end, so such a read finds zeros, not the end of the mapping.
 *
 * Cost: the copy is the index's live size (about 33 bytes per block
 * digest: 1 M blocks, 1 TB at 1 MiB blocks, is ~34 MB) in $TMPDIR, for as
 * long as the handle is open.  Figures in doc/trust.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "index_internal.h"

/* Zero pages after the copied data: covers any read an LMDB node header
 * can cause (offset and key size are both 16-bit). */
#define COPY_TAIL ((off_t)1 << 20)

/* What the probe child hands back through its pipe. */
struct probe_result {
	int32_t err;                        /* vbfs_err */
	uint64_t data_size;                 /* bytes of the copy before the tail */
	uint8_t root[VBFS_DIGEST_LEN];
	char why[VBFS_WHY_LEN];
};

vbfs_err idx_open_copy_env(const char *path, uint64_t data_size, MDB_env **out,
			   char why[VBFS_WHY_LEN])
{
	MDB_env *env;
	MDB_envinfo info;
	MDB_stat st;
	int rc;
	*out = NULL;
	if ((rc = mdb_env_create(&env)))
		return idx_lmdb_err(rc, "create LMDB environment", why);
	mdb_env_set_maxdbs(env, 8);
	mdb_env_set_maxreaders(env, 1024);
	/* Mapped exactly to the end of the file, tail included: nothing of
	 * the map lies past the file (SIGBUS) or belongs to anything else. */
	mdb_env_set_mapsize(env, (size_t)data_size + (size_t)COPY_TAIL);
	rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOTLS | MDB_NOLOCK | MDB_NOSUBDIR, 0600);
	if (rc) {
		mdb_env_close(env);
		vbfs_whyf(why, "index damaged: its copy does not open: %s", mdb_strerror(rc));
		return VBFS_ERR_NOTINDEX;
	}
	/* Every page a snapshot can name must lie in the copied data. */
	if (mdb_env_info(env, &info) || mdb_env_stat(env, &st) ||
	    ((uint64_t)info.me_last_pgno + 1) * st.ms_psize > data_size) {
		mdb_env_close(env);
		vbfs_whyf(why, "index damaged: its pages point past the end of the data");
		return VBFS_ERR_NOTINDEX;
	}
	*out = env;
	return VBFS_OK;
}

/* The child: copy one snapshot of `dir` into `fd` (named `path`), then
 * walk the copy once, computing the root digest.  With fd < 0, walk the
 * index in `dir` itself (a build's old index: see idx_probe_in_place). */
static void probe(const char *dir, int fd, const char *path, struct probe_result *res)
{
	MDB_env *orig = NULL, *env = NULL;
	MDB_txn *txn = NULL;
	struct idx_dbs db;
	struct stat st;
	vbfs_err err;
	int rc;

	if ((err = idx_env_open_readonly(dir, &orig, res->why)))
		goto out;
	if (fd < 0) {
		env = orig;
		goto walk;
	}
	rc = mdb_env_copyfd2(orig, fd, MDB_CP_COMPACT);
	mdb_env_close(orig);
	if (rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE) {   /* LMDB's own: the pages */
		err = VBFS_ERR_NOTINDEX;
		vbfs_whyf(res->why, "%s: index damaged: %s", dir, mdb_strerror(rc));
		goto out;
	}
	if (rc) {   /* errno: writing the copy ($TMPDIR full, ...) */
		err = VBFS_ERR_IO;
		vbfs_whyf(res->why, "%s: cannot write a private copy of the index in %s: %s",
			  dir, idx_tmpdir(), mdb_strerror(rc));
		goto out;
	}
	if (fstat(fd, &st) < 0 || ftruncate(fd, st.st_size + COPY_TAIL) < 0) {
		err = VBFS_ERR_IO;
		vbfs_whyf(res->why, "%s: private copy in %s: %s", dir, idx_tmpdir(), strerror(errno));
		goto out;
	}
	res->data_size = (uint64_t)st.st_size;
	if ((err = idx_open_copy_env(path, res->data_size, &env, res->why)))
		goto out;
walk:
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))) {
		err = idx_lmdb_err(rc, "begin read transaction", res->why);
		goto out;
	}
	if ((err = idx_open_dbs(txn, false, &db, res->why)))
		goto out;
	/* Commit: the handles then serve the hashing threads' txns too. */
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc) {
		err = idx_lmdb_err(rc, "commit read transaction", res->why);
		goto out;
	}
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))) {
		err = idx_lmdb_err(rc, "begin read transaction", res->why);
		goto out;
	}
	err = idx_root_digest(txn, &db, true, res->root, res->why);
out:
	if (txn)
		mdb_txn_abort(txn);
	if (env)
		mdb_env_close(env);
	res->err = (int32_t)err;
}

const char *idx_tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	return t && *t ? t : "/tmp";
}

/* Fork the probe and take its answer; *crashed: it died of a signal. */
static vbfs_err run_probe(const char *dir, int fd, const char *path, struct probe_result *res,
			  bool *crashed)
{
	int p[2];
	pid_t pid;
	if (pipe2(p, O_CLOEXEC) < 0) {
		vbfs_whyf(res->why, "%s: pipe: %s", dir, strerror(errno));
		return VBFS_ERR_IO;
	}
	fflush(NULL);   /* nothing buffered is written twice */
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		vbfs_whyf(res->why, "%s: fork: %s", dir, strerror(errno));
		return VBFS_ERR_IO;
	}
	if (pid == 0) {
		/* A malformed page must kill this child plainly: no sanitizer's
		 * or LMDB's report on the caller's stderr, no handler of theirs. */
		static const int deadly[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL };
		for (size_t i = 0; i < sizeof deadly / sizeof deadly[0]; i++)
			signal(deadly[i], SIG_DFL);
		int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (devnull >= 0)
			dup2(devnull, STDERR_FILENO);
		close(p[0]);
		memset(res, 0, sizeof *res);
		probe(dir, fd, path, res);
		ssize_t n = write(p[1], res, sizeof *res);
		_exit(n == (ssize_t)sizeof *res ? 0 : 1);   /* no atexit, no leak report */
	}
	close(p[1]);
	size_t got = 0;
	while (got < sizeof *res) {
		ssize_t n = read(p[0], (char *)res + got, sizeof *res - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(p[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	*crashed = WIFSIGNALED(status);
	if (WIFSIGNALED(status)) {
		const char *sig = sigabbrev_np(WTERMSIG(status));
		vbfs_whyf(res->why, "%s: index damaged: its LMDB pages are malformed "
			  "(reading them raised SIG%s)", dir, sig ? sig : "?");
		return VBFS_ERR_NOTINDEX;
	}
	if (got != sizeof *res) {
		vbfs_whyf(res->why, "%s: the index probe ended without an answer", dir);
		return VBFS_ERR_IO;
	}
	res->why[VBFS_WHY_LEN - 1] = '\0';
	return (vbfs_err)res->err;
}

/* A file for the copy that nobody else can open: an unnamed O_TMPFILE in
 * $TMPDIR (LMDB opens it as /proc/self/fd/N), so that even a process killed
 * in the middle leaves nothing behind; where the filesystem or /proc does
 * not allow that, a file in a fresh 0700 directory, unlinked once mapped
 * (`tmpdir` then names the directory, else it is empty). */
static int copy_file(char path[PATH_MAX], char tmpdir[PATH_MAX])
{
	int fd = open(idx_tmpdir(), O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	tmpdir[0] = '\0';
	if (fd >= 0) {
		snprintf(path, PATH_MAX, "/proc/self/fd/%d", fd);
		if (access(path, R_OK) == 0)
			return fd;
		close(fd);
	}
	if (snprintf(tmpdir, PATH_MAX, "%s/vbfs-index.XXXXXX", idx_tmpdir()) >= PATH_MAX ||
	    !mkdtemp(tmpdir)) {   /* mode 0700 */
		tmpdir[0] = '\0';
		return -1;
	}
	snprintf(path, PATH_MAX, "%s/data.mdb", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		rmdir(tmpdir);
		tmpdir[0] = '\0';
		errno = e;
	}
	return fd;
}

vbfs_err idx_snapshot_open(const char *dir, MDB_env **out, uint8_t root[VBFS_DIGEST_LEN],
			   char why[VBFS_WHY_LEN])
{
	char tmpdir[PATH_MAX], path[PATH_MAX];
	struct probe_result res;
	vbfs_err err;
	bool crashed;
	int fd;

	*out = NULL;
	if ((fd = copy_file(path, tmpdir)) < 0) {
		vbfs_whyf(why, "%s: cannot make a private copy of the index in %s: %s", dir,
			  idx_tmpdir(), strerror(errno));
		return VBFS_ERR_IO;
	}
	memset(&res, 0, sizeof res);
	err = run_probe(dir, fd, path, &res, &crashed);
	if (!err)
		err = idx_open_copy_env(path, res.data_size, out, res.why);
	if (!err)
		memcpy(root, res.root, VBFS_DIGEST_LEN);
	else
		vbfs_whyf(why, "%s", res.why[0] ? res.why : vbfs_strerror(err));
	/* Mapped (or failed): the writable descriptor and any name go now;
	 * the file lives as long as the map. */
	close(fd);
	if (tmpdir[0]) {
		unlink(path);
		rmdir(tmpdir);
	}
	return err;
}

vbfs_err idx_probe_in_place(const char *dir, char why[VBFS_WHY_LEN])
{
	char data[PATH_MAX];
	struct probe_result res;
	struct stat st;
	snprintf(data, sizeof data, "%s/data.mdb", dir);
	if (stat(data, &st) < 0)
		return VBFS_OK;   /* nothing there yet */
	bool crashed = false;
	memset(&res, 0, sizeof res);
	vbfs_err err = run_probe(dir, -1, NULL, &res, &crashed);
	if (err && crashed) {
		vbfs_whyf(why, "%s (move it away and build a new index)", res.why);
		return err;
	}
	return VBFS_OK;   /* anything else: the build reports it, or mends it */
}
