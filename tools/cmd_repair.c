/*
 * cmd_repair.c - `vbfsctl repair STORE INDEX (--replica DIR | --parity DIR)...
 *                (--dry-run | --output DIR | --apply) [--json]`
 *
 * Finds the damaged blocks (the scrub, manifest/scrub.c, with the sources
 * judging each one), then:
 *   --dry-run  (the default) lists what can be repaired and from where;
 *   --output   writes whole repaired copies of the damaged files under a
 *              directory, never replacing a file there (a file that cannot
 *              be made whole is not written);
 *   --apply    writes each repairable block back into the store: the only
 *              place in vbfs that writes a store.
 * Every block written was verified against the index digest just before
 * (vbfs_heal_block), is written at its own offset, fsync'd, dropped from
 * the page cache and verified again from the disk.  A crash mid-write can
 * only leave that one block damaged again: a rerun repairs it from the same
 * source (sources are never written).  Mode and mtime are put back as the
 * index has them, so the index stays valid for the repaired files.
 *
 * Exit: 0 nothing to repair or everything repaired (dry run: everything
 * repairable), 1 some damage could not be repaired, 2 usage/operational.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include "heal.h"

static const char usage_text[] =
	"usage: vbfsctl repair STORE INDEX (--replica DIR | --parity DIR)...\n"
	"                      [--dry-run | --output DIR | --apply]\n"
	"                      [--verify-key PUB] [--expect-backup-id ID]\n"
	"                      [--max-age DURATION] [--allow-store-mismatch] [--json]\n"
	"\n"
	"Find the damaged blocks of STORE and repair them from replicas (other\n"
	"copies of the store) or parity ('vbfsctl build --parity').  Only bytes\n"
	"whose SHA-256 matches INDEX are ever written.\n"
	"\n"
	"  --replica DIR   another copy of the store (repeatable, tried in order)\n"
	"  --parity DIR    parity written by 'vbfsctl build --parity'\n"
	"  --dry-run       list what can be repaired and from where (the default)\n"
	"  --output DIR    write repaired copies of the damaged files under DIR\n"
	"                  (made if missing; the store is not touched); a name\n"
	"                  already taken in DIR, or a symlink on the way, is\n"
	"                  refused (exit 2) before anything is written\n"
	"  --apply         write the verified blocks back into the store, each at\n"
	"                  its offset, fsync'd and verified again; mode and mtime\n"
	"                  are kept as indexed\n"
	"  --verify-key PUB    refuse an index not signed by this Ed25519 key\n"
	TOOL_EXPECT_HELP
	"  --allow-store-mismatch  repair even when fewer than half of the\n"
	"                  index's top-level entries are in STORE (normally\n"
	"                  refused: the index is not for this store)\n"
	"  --json          one JSON document on stdout\n"
	"\n"
	"Exit status: 0 nothing to repair or everything repaired, 1 some damage\n"
	"could not be repaired, 2 usage or operational error.\n";

enum mode { DRY_RUN, OUTPUT, APPLY };

/* One finding of the scrub. */
struct item {
	char *path;
	int64_t block;              /* -1: about the whole file */
	uint64_t offset, length;
	enum vbfs_event_kind kind;
	bool judged, repairable;
	const char *source;         /* who can repair it (owned by the heal handle) */
	bool repaired;
	const char *reason;         /* why it was not repaired */
};

struct repair {
	struct item *v;
	size_t n, cap;
	enum mode mode;
	const char *store, *output;
	int store_fd;
	int output_fd;              /* --output: the directory, opened once */
	vbfs_index *idx;
	vbfs_heal *heal;
	uint32_t bs;
	void *buf, *check;          /* block buffers */
	uint64_t repaired, unrepaired;
};

static void on_event(void *ctx, const struct vbfs_event *ev)
{
	struct repair *r = ctx;
	if (!vbfs_event_is_damage(ev->kind) || vbfs_event_is_refusal(ev))
		return;   /* notes, and a refused candidate (the source's damage, not ours) */
	struct item *nv = vbfs_grow(r->v, &r->cap, r->n, sizeof *nv, 64);
	if (!nv) tool_die("out of memory");
	r->v = nv;
	struct item *it = &r->v[r->n++];
	memset(it, 0, sizeof *it);
	it->path = strndup(ev->path, ev->path_len);
	if (!it->path) tool_die("out of memory");
	it->block = ev->block;
	it->offset = ev->offset;
	it->length = ev->length;
	it->kind = ev->kind;
	it->judged = ev->repair != VBFS_REPAIR_UNJUDGED;
	it->repairable = ev->repair == VBFS_REPAIR_YES;
	it->source = ev->source;
}

static int by_path_block(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	int c = strcmp(x->path, y->path);
	return c ? c : (x->block > y->block) - (x->block < y->block);
}

/* A whole-file event is answered when its blocks were judged one by one
 * (the file is gone from the store: every block is an item of its own). */
static bool answered_by_blocks(const struct repair *r, size_t i)
{
	for (size_t j = i + 1; j < r->n && !strcmp(r->v[j].path, r->v[i].path); j++)
		if (r->v[j].judged)
			return true;
	return false;
}

/* The entry and one block's digest, copied out of the index. */
static bool lookup(struct repair *r, const char *path, struct vbfs_entry *e, char **epath,
		   uint64_t block, uint8_t expected[VBFS_DIGEST_LEN])
{
	vbfs_txn *t;
	bool ok = false;
	if (vbfs_txn_begin(r->idx, &t))
		return false;
	if (!vbfs_txn_lookup_path(t, path, e) && e->type == VBFS_T_REG &&
	    !vbfs_txn_digest(t, vbfs_entry_data_id(e), block, expected) &&
	    (*epath = strndup(e->path, e->path_len))) {
		e->path = *epath;
		e->target = NULL;
		e->target_len = 0;
		ok = true;
	}
	vbfs_txn_end(t);
	return ok;
}

/* Creating a file moved its directory's mtime: put back the indexed one. */
static void restore_dir_mtime(struct repair *r, int dfd, const char *dir)
{
	struct vbfs_entry d;
	vbfs_txn *t;
	if (vbfs_txn_begin(r->idx, &t))
		return;
	if (!vbfs_txn_lookup_path(t, dir, &d) && d.type == VBFS_T_DIR) {
		struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
					  { .tv_sec = d.mtime_sec, .tv_nsec = d.mtime_nsec } };
		futimens(dfd, ts);
	}
	vbfs_txn_end(t);
}

/* Open the store's file for writing, creating it when it is gone.  Never
 * through a symlink, never outside the store. */
static int open_for_repair(struct repair *r, const struct vbfs_entry *e, bool *created)
{
	struct stat st;
	int fd = vbfs_store_open(r->store_fd, e->path, O_RDWR);
	*created = false;
	if (fd < 0 && errno == ENOENT) {
		char *dir = strdup(e->path), *slash = dir ? strrchr(dir, '/') : NULL;
		const char *name = slash ? slash + 1 : e->path;
		int dfd = !dir ? -1 : slash ? (*slash = '\0', vbfs_store_open(r->store_fd, dir, O_DIRECTORY))
					    : dup(r->store_fd);
		if (dfd >= 0) {
			fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
			*created = fd >= 0;
			if (*created) {
				restore_dir_mtime(r, dfd, slash ? dir : "");
				fsync(dfd);
			}
			close(dfd);
		}
		free(dir);
	}
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	return fd;
}

/* Mode and mtime back as indexed (a write clears setuid bits and moves
 * mtime; the index's incremental reuse keys on them). */
static void restore_attrs(int fd, const struct vbfs_entry *e, bool created)
{
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
				  { .tv_sec = e->mtime_sec, .tv_nsec = e->mtime_nsec } };
	if (created && geteuid() == 0 && fchown(fd, e->uid, e->gid) < 0) {
		/* keep going: the bytes are what the index vouches for */
	}
	fchmod(fd, e->mode & 07777);
	futimens(fd, ts);
	fsync(fd);
}

/* --apply: one block, verified from its source, written, verified again. */
static void apply_one(struct repair *r, struct item *it)
{
	struct vbfs_entry e;
	struct vbfs_block_check chk;
	uint8_t expected[VBFS_DIGEST_LEN];
	char *epath = NULL;
	bool created;
	int fd = -1;
	it->reason = "the index has no such block";
	if (!lookup(r, it->path, &e, &epath, (uint64_t)it->block, expected))
		goto out;
	size_t len = vbfs_block_len(e.size, r->bs, (uint64_t)it->block);
	uint64_t off = (uint64_t)it->block * r->bs;
	it->reason = "no source has bytes that match the index now";
	if (!(it->source = vbfs_heal_block(r->heal, &e, (uint64_t)it->block, expected, r->buf,
					   NULL, NULL)))
		goto out;
	it->reason = "cannot open the store's file for writing (or it is no longer a regular file)";
	if ((fd = open_for_repair(r, &e, &created)) < 0)
		goto out;
	it->reason = "write failed";
	ssize_t done = 0;
	while ((size_t)done < len) {
		ssize_t n = pwrite(fd, (char *)r->buf + done, len - (size_t)done, (off_t)(off + (uint64_t)done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		done += n;
	}
	if (fsync(fd) < 0)
		goto out;
	restore_attrs(fd, &e, created);
	/* Read it back from the disk, not from what we just put in the cache. */
	posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
	it->reason = "written, but does not verify when read back";
	if (vbfs_block_verify(fd, off, len, expected, r->check, &chk) > VBFS_BLOCK_TRANSIENT)
		goto out;
	it->repaired = true;
	it->reason = NULL;
out:
	if (fd >= 0)
		close(fd);
	free(epath);
}

/*
 * --output never replaces what it did not write.  Every name is resolved
 * beneath the output directory one component at a time, with O_NOFOLLOW:
 * a symlink planted in the tree (DIR/db -> /etc) is refused, never
 * followed out of DIR.  Before anything is written every target is
 * looked up (output_check), and each copy is put in place with
 * RENAME_NOREPLACE (or a hard link where the file system has no such
 * rename), so a file that appears meanwhile is not replaced either.
 */

/* The directory that holds `path` beneath the output, made (0700) when
 * `create`; *name points at the last component.  -1 with errno: ENOENT
 * (not there, !create), ELOOP (a symlink), ENOTDIR (not a directory). */
/* "", "." and ".." are not names a store file can have: an index that
 * says so was crafted, and following it would write outside DIR (the
 * store side refuses ".." the same way, with EXDEV). */
static bool dot_component(const char *c, size_t n)
{
	return n == 0 || (c[0] == '.' && (n == 1 || (n == 2 && c[1] == '.')));
}

static int output_parent(const struct repair *r, const char *path, bool create, const char **name)
{
	int dfd = dup(r->output_fd);
	const char *p = path, *slash;
	while (dfd >= 0 && (slash = strchr(p, '/'))) {
		char comp[NAME_MAX + 1];
		size_t n = (size_t)(slash - p);
		if (dot_component(p, n) || n > NAME_MAX) {
			close(dfd);
			errno = n > NAME_MAX ? ENAMETOOLONG : EXDEV;
			return -1;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		if (create && mkdirat(dfd, comp, 0700) < 0 && errno != EEXIST) {
			int e = errno;
			close(dfd);
			errno = e;
			return -1;
		}
		int next = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		struct stat st;     /* O_DIRECTORY says ENOTDIR for a symlink too */
		if (next < 0 && e == ENOTDIR && fstatat(dfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode))
			e = ELOOP;
		close(dfd);
		errno = e;
		dfd = next;
		p = slash + 1;
	}
	if (dfd >= 0 && dot_component(p, strlen(p))) {
		close(dfd);
		errno = EXDEV;
		return -1;
	}
	*name = p;
	return dfd;
}

/* Refuse (exit 2, before anything is written) when a name the copies
 * would take is held already, or a directory on the way is a symlink or
 * a file. */
static void output_check(const struct repair *r)
{
	for (size_t i = 0; i < r->n; i++) {
		const char *path = r->v[i].path, *name;
		struct stat st;
		if (i > 0 && !strcmp(path, r->v[i - 1].path))
			continue;
		int dfd = output_parent(r, path, false, &name);
		if (dfd < 0 && errno == ENOENT)
			continue;       /* its directory is new: nothing to replace */
		if (dfd < 0)
			tool_die("repair: output %s/%s: %s (not followed, nothing written)",
				 r->output, path,
				 errno == ELOOP ? "a symbolic link on the way" :
				 errno == EXDEV ? "a '.' or '..' component: the index is not one vbfs built" :
				 strerror(errno));
		int found = fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW);
		close(dfd);
		if (found == 0)
			tool_die("repair: output %s/%s: exists (repair --output never replaces a file; "
				 "remove it or choose a new directory; nothing written)", r->output, path);
	}
}

/* Put the finished temporary in place under `name` without replacing
 * anything that is there. */
static int place_noreplace(int dfd, const char *tmp, const char *name)
{
	if (renameat2(dfd, tmp, dfd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* No RENAME_NOREPLACE on this file system: a link fails on EEXIST too. */
	if (linkat(dfd, tmp, dfd, name, 0) < 0)
		return -1;
	unlinkat(dfd, tmp, 0);
	return 0;
}

/* --output: a whole repaired copy of one damaged file, or nothing (written
 * to a temp name and put in place only when every block verified).  A
 * name taken meanwhile, or a symlink on the way, is exit 2. */
static bool output_file(struct repair *r, const char *path)
{
	struct vbfs_entry e;
	struct vbfs_event fev;
	uint8_t expected[VBFS_DIGEST_LEN];
	char *epath = NULL, tmp[NAME_MAX + 1];
	const char *name;
	int in = -1, out = -1, dfd = -1, refused = 0;
	bool ok = false;
	if (!lookup(r, path, &e, &epath, 0, expected))
		return false;
	if ((dfd = output_parent(r, path, true, &name)) < 0) {
		refused = errno;
		goto out;
	}
	for (unsigned try = 0; out < 0 && try < 100; try++) {
		snprintf(tmp, sizeof tmp, ".vbfs-repair.%ld.%u", (long)getpid(), try);
		out = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (out < 0 && errno != EEXIST)
			goto out;
	}
	if (out < 0)
		goto out;
	vbfs_file_open(r->store_fd, &e, &in, &fev);
	for (uint64_t b = 0; b < vbfs_nblocks(e.size, r->bs); b++) {
		struct vbfs_block_check chk;
		vbfs_txn *t;
		size_t len = vbfs_block_len(e.size, r->bs, b);
		if (vbfs_txn_begin(r->idx, &t))
			goto out;
		vbfs_err err = vbfs_txn_digest(t, vbfs_entry_data_id(&e), b, expected);
		vbfs_txn_end(t);
		if (err)
			goto out;
		if ((in < 0 || vbfs_block_verify(in, b * r->bs, len, expected, r->buf, &chk)
			       > VBFS_BLOCK_TRANSIENT) &&
		    !vbfs_heal_block(r->heal, &e, b, expected, r->buf, NULL, NULL))
			goto out;
		if (pwrite(out, r->buf, len, (off_t)(b * r->bs)) != (ssize_t)len)
			goto out;
	}
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
				  { .tv_sec = e.mtime_sec, .tv_nsec = e.mtime_nsec } };
	if (fchmod(out, e.mode & 07777) < 0 || futimens(out, ts) < 0 || fsync(out) < 0)
		goto out;
	if (place_noreplace(dfd, tmp, name) == 0)
		ok = true;
	else if (errno == EEXIST)
		refused = EEXIST;
out:
	if (in >= 0)
		close(in);
	if (out >= 0) {
		close(out);
		if (!ok)
			unlinkat(dfd, tmp, 0);
	}
	if (dfd >= 0)
		close(dfd);
	free(epath);
	if (refused)
		tool_die("repair: output %s/%s: %s (not replaced; the files written before it are "
			 "complete)", r->output, path, refused == EEXIST ? "appeared during the repair"
			 : refused == ELOOP ? "a symbolic link on the way" : strerror(refused));
	return ok;
}

static void print_item(const struct item *it, enum mode mode)
{
	if (it->block < 0)
		fprintf(stderr, "%s: %s: not repairable block by block\n", it->path,
			vbfs_event_kind_name(it->kind));
	else if (mode == DRY_RUN || !it->repairable)
		fprintf(stderr, "%s: block %lld at offset %llu (%s): %s%s\n", it->path,
			(long long)it->block, (unsigned long long)it->offset,
			vbfs_event_kind_name(it->kind),
			it->repairable ? "repairable from " : "NOT repairable",
			it->repairable ? it->source : "");
	else
		fprintf(stderr, "%s: block %lld at offset %llu: %s%s\n", it->path,
			(long long)it->block, (unsigned long long)it->offset,
			!it->repaired ? "NOT repaired: " : mode == APPLY ? "repaired from "
					: "in the output copy, from ",
			it->repaired ? it->source : it->reason);
}

/* --output must be outside the store: checked before anything is created,
 * then made (an existing directory is fine: output_check keeps its files). */
static int check_output(const char *store, const char *output)
{
	tool_require_outside("repair", "output", output, store);
	if (mkdir(output, 0700) < 0 && errno != EEXIST)
		tool_die("repair: output %s: %s", output, strerror(errno));
	tool_require_dir("output", output);
	int fd = open(output, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		tool_die("repair: output %s: %s", output, strerror(errno));
	return fd;
}

int cmd_repair(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "replica", required_argument, NULL, 'r' },
		{ "parity", required_argument, NULL, 'p' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "output", required_argument, NULL, 'o' },
		{ "apply", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'J' },
		{ "allow-store-mismatch", no_argument, NULL, 'X' },
		{ "verify-key", required_argument, NULL, 'k' },
		TOOL_EXPECT_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct tool_heal heal = { 0 };
	struct repair r = { .store_fd = -1, .output_fd = -1 };
	struct vbfs_scrub_opts so = { 0 };
	struct vbfs_index_expect expect = { 0 };   /* --verify-key, --expect-backup-id, --max-age */
	struct vbfs_scrub_result sr;
	char why[VBFS_WHY_LEN];
	bool json = false, allow_mismatch = false;
	int modes = 0, c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (tool_expect_option("repair", c, optarg, &expect))
			continue;
		switch (c) {
		case 'k': expect.verify_key = optarg; break;
		case 'r': tool_heal_add_replica(&heal, "repair", optarg); break;
		case 'p': tool_heal_set_parity(&heal, "repair", optarg); break;
		case 'n': r.mode = DRY_RUN; modes++; break;
		case 'o': r.mode = OUTPUT; r.output = optarg; modes++; break;
		case 'a': r.mode = APPLY; modes++; break;
		case 'J': json = true; break;
		case 'X': allow_mismatch = true; break;
		case 'h': fputs(usage_text, stdout); return VBFS_EXIT_OK;
		default: tool_getopt_error("repair", c, argv);
		}
	}
	if (argc - optind != 2)
		tool_usage_error("repair", "needs STORE and INDEX");
	if (!tool_heal_given(&heal))
		tool_usage_error("repair", "needs a source: --replica DIR or --parity DIR");
	if (modes > 1)
		tool_usage_error("repair", "--dry-run, --output and --apply: choose one");
	r.store = argv[optind];
	tool_require_dir("store", r.store);
	tool_require_dir("index", argv[optind + 1]);
	if (r.mode == OUTPUT)
		r.output_fd = check_output(r.store, r.output);
	struct statvfs vfs;   /* --apply on a read-only store: one line, not one per block */
	if (r.mode == APPLY && statvfs(r.store, &vfs) == 0 && (vfs.f_flag & ST_RDONLY))
		tool_die("repair: store %s: %s (--apply writes the repaired blocks into it)",
			 r.store, strerror(EROFS));
	if (vbfs_index_open_expect(argv[optind + 1], &expect, &r.idx, why))
		tool_die("repair: %s", why);
	r.bs = vbfs_index_meta(r.idx)->block_size;
	r.heal = tool_heal_open(&heal, "repair", r.idx, r.store);
	if ((r.store_fd = vbfs_store_open_root(r.store)) < 0)
		tool_die("repair: store %s: %s", r.store, strerror(errno));
	/* Another store's index would "repair" it into a copy of the replica. */
	if (!allow_mismatch && vbfs_store_check_index(r.store_fd, r.store, r.idx, why))
		tool_die("repair: %s (--allow-store-mismatch repairs it anyway)", why);
	if (!(r.buf = vbfs_block_buf(r.bs)) || !(r.check = vbfs_block_buf(r.bs)))
		tool_die("out of memory");

	tool_install_signals();
	so.store = r.store;
	so.index = r.idx;
	so.heal = r.heal;
	so.event = on_event;
	so.event_ctx = &r;
	so.stop = &tool_stop;
	if (vbfs_scrub(&so, &sr, why))
		tool_die("repair: %s", why[0] ? why : "scrub failed");
	if (r.n)
		qsort(r.v, r.n, sizeof *r.v, by_path_block);

	if (r.mode == OUTPUT)
		output_check(&r);
	const char *written = NULL;   /* --output: the file last copied */
	for (size_t i = 0; i < r.n && !tool_stop; i++) {
		struct item *it = &r.v[i];
		if (it->block < 0 && answered_by_blocks(&r, i))
			continue;
		if (r.mode == APPLY && it->repairable && it->block >= 0)
			apply_one(&r, it);
		else if (r.mode == APPLY)
			it->reason = "no source has bytes that match the index";
		else if (r.mode == OUTPUT && (!written || strcmp(written, it->path))) {
			bool whole = output_file(&r, it->path);
			for (size_t j = i; j < r.n && !strcmp(r.v[j].path, it->path); j++) {
				r.v[j].repaired = whole;
				r.v[j].reason = whole ? NULL : "the file cannot be made whole";
			}
			written = it->path;
		}
		print_item(it, r.mode);
	}
	uint64_t damaged = 0, repairable = 0;
	for (size_t i = 0; i < r.n; i++) {
		struct item *it = &r.v[i];
		if (it->block < 0 && answered_by_blocks(&r, i))
			continue;
		damaged++;
		repairable += it->repairable && it->block >= 0;
		if (r.mode == DRY_RUN ? !(it->repairable && it->block >= 0) : !it->repaired)
			r.unrepaired++;
		else if (r.mode != DRY_RUN)
			r.repaired++;
	}
	if (tool_stop)
		tool_die("repair: interrupted (every block written so far was verified; rerun to finish)");
	fprintf(stderr, "%llu damaged, %llu repairable, %llu %s, %llu %s\n",
		(unsigned long long)damaged, (unsigned long long)repairable,
		(unsigned long long)r.repaired,
		r.mode == APPLY ? "repaired in the store" : r.mode == OUTPUT ? "written to the output"
								      : "repaired (dry run)",
		(unsigned long long)r.unrepaired,
		r.mode == DRY_RUN ? "unrecoverable" : "not repaired");
	if (json) {
		cJSON *doc = cJSON_CreateObject(), *items = cJSON_CreateArray();
		cJSON_AddBoolToObject(doc, "ok", r.unrepaired == 0);
		cJSON_AddStringToObject(doc, "mode", r.mode == APPLY ? "apply" : r.mode == OUTPUT ? "output"
										      : "dry-run");
		cJSON_AddNumberToObject(doc, "damaged", (double)damaged);
		cJSON_AddNumberToObject(doc, "repairable", (double)repairable);
		cJSON_AddNumberToObject(doc, "repaired", (double)r.repaired);
		cJSON_AddNumberToObject(doc, "unrepaired", (double)r.unrepaired);
		for (size_t i = 0; i < r.n; i++) {
			struct item *it = &r.v[i];
			if (it->block < 0 && answered_by_blocks(&r, i))
				continue;
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "path", it->path);
			cJSON_AddStringToObject(o, "event", vbfs_event_kind_name(it->kind));
			if (it->block >= 0) {
				cJSON_AddNumberToObject(o, "block", (double)it->block);
				cJSON_AddNumberToObject(o, "offset", (double)it->offset);
				cJSON_AddNumberToObject(o, "length", (double)it->length);
			}
			cJSON_AddBoolToObject(o, "repairable", it->repairable && it->block >= 0);
			if (it->source)
				cJSON_AddStringToObject(o, "source", it->source);
			if (r.mode != DRY_RUN)
				cJSON_AddBoolToObject(o, "repaired", it->repaired);
			if (r.mode != DRY_RUN && it->reason)
				cJSON_AddStringToObject(o, "reason", it->reason);
			cJSON_AddItemToArray(items, o);
		}
		cJSON_AddItemToObject(doc, "blocks", items);
		tool_print_json(doc);
	}
	for (size_t i = 0; i < r.n; i++)
		free(r.v[i].path);
	free(r.v);
	free(r.buf);
	free(r.check);
	close(r.store_fd);
	if (r.output_fd >= 0)
		close(r.output_fd);
	tool_heal_close(&heal);
	vbfs_index_close(r.idx);
	return r.unrepaired ? VBFS_EXIT_DAMAGE : VBFS_EXIT_OK;
}
