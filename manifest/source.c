/*
 * source.c - where a damaged block's bytes can come from besides the
 * store: replicas (other copies of the same tree) and parity (parity.c).
 *
 * One rule for every source: a candidate is judged by the same verdict as
 * the store (vbfs_block_verify on a replica's file, vbfs_block_verify_bytes
 * on bytes rebuilt from parity) against the digest in the index.  Nothing a
 * source says is believed; only bytes whose SHA-256 matches come back.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "parity.h"

struct replica {
	int root_fd;
	char *name;             /* "replica:/abs/dir", the event's source */
};

struct vbfs_heal {
	vbfs_index *idx;
	uint32_t block_size;
	struct replica *replicas;
	size_t nreplicas;
	struct vbfs_parity *parity;
};

vbfs_err vbfs_heal_open(vbfs_index *idx, const struct vbfs_heal_opts *o,
			vbfs_heal **out, char why[VBFS_WHY_LEN])
{
	vbfs_heal *h = calloc(1, sizeof *h);
	vbfs_err err = VBFS_OK;
	*out = NULL;
	if (!h || (o->nreplicas && !(h->replicas = calloc(o->nreplicas, sizeof *h->replicas)))) {
		free(h);
		return VBFS_ERR_NOMEM;
	}
	h->idx = idx;
	h->block_size = vbfs_index_meta(idx)->block_size;
	struct stat store_st;   /* a replica that is the store heals nothing */
	bool have_store = o->store && stat(o->store, &store_st) == 0;
	for (size_t i = 0; i < o->nreplicas; i++) {
		struct replica *r = &h->replicas[h->nreplicas];
		char *abs = realpath(o->replicas[i], NULL);
		struct stat st;
		if (!abs || stat(abs, &st) < 0 || !S_ISDIR(st.st_mode)) {
			vbfs_whyf(why, "replica %s: %s", o->replicas[i],
				  abs ? "not a directory" : strerror(errno));
			free(abs);
			err = VBFS_ERR_IO;
			goto fail;
		}
		if (have_store && st.st_dev == store_st.st_dev && st.st_ino == store_st.st_ino) {
			vbfs_whyf(why, "replica %s: is the store itself", o->replicas[i]);
			free(abs);
			err = VBFS_ERR_IO;
			goto fail;
		}
		r->root_fd = vbfs_store_open_root(abs);
		r->name = malloc(strlen(abs) + sizeof "replica:");
		if (r->root_fd < 0 || !r->name) {
			vbfs_whyf(why, "replica %s: %s", abs, r->name ? strerror(errno) : "out of memory");
			if (r->root_fd >= 0)
				close(r->root_fd);
			free(r->name);
			free(abs);
			err = VBFS_ERR_IO;
			goto fail;
		}
		sprintf(r->name, "replica:%s", abs);
		free(abs);
		h->nreplicas++;
	}
	if (o->parity && ((err = vbfs_parity_open(idx, o->parity, &h->parity, why)) ||
			  (err = vbfs_parity_set_store(h->parity, o->store ? o->store : ".", why))))
		goto fail;
	*out = h;
	return VBFS_OK;
fail:
	vbfs_heal_close(h);
	return err;
}

void vbfs_heal_close(vbfs_heal *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->nreplicas; i++) {
		close(h->replicas[i].root_fd);
		free(h->replicas[i].name);
	}
	free(h->replicas);
	vbfs_parity_close(h->parity);
	free(h);
}

/* Tell the caller about a refused candidate. */
static void refuse(const struct vbfs_entry *e, uint64_t block, uint32_t bs,
		   const uint8_t expected[VBFS_DIGEST_LEN], const struct vbfs_block_check *chk,
		   const char *source, const char *detail, vbfs_event_fn refused, void *ctx)
{
	struct vbfs_event ev;
	if (!refused)
		return;
	vbfs_event_from_check(&ev, e, block, bs, expected, chk);
	ev.source = source;
	if (detail)
		ev.detail = detail;
	refused(ctx, &ev);
}

/* One replica's copy of the block, judged like the store's. */
static bool from_replica(const struct vbfs_heal *h, const struct replica *r,
			 const struct vbfs_entry *e, const char *path, uint64_t block,
			 const uint8_t expected[VBFS_DIGEST_LEN], void *buf,
			 vbfs_event_fn refused, void *ctx)
{
	struct vbfs_block_check chk = { .verdict = VBFS_BLOCK_MISSING };
	struct stat st;
	const char *detail = NULL;
	size_t len = vbfs_block_len(e->size, h->block_size, block);
	/* Type first: a FIFO or a device in a replica is never opened. */
	int fd = vbfs_store_open_reg(r->root_fd, path, &st);
	if (fd < 0 && st.st_mode) {
		chk.verdict = VBFS_BLOCK_UNREADABLE;
		chk.err = EINVAL;
		detail = "not a regular file in the replica (not opened)";
	} else if (fd < 0) {
		int err = errno;
		chk.verdict = err == ENOENT ? VBFS_BLOCK_MISSING : VBFS_BLOCK_UNREADABLE;
		chk.err = err;
		detail = err == ENOENT ? "file is absent from the replica"
		       : err == ELOOP || err == ENOTDIR ? "a symlink in the replica: not followed"
		       : NULL;
	} else if (vbfs_block_verify(fd, block * h->block_size, len, expected, buf, &chk)
		   <= VBFS_BLOCK_TRANSIENT) {
		close(fd);
		return true;
	}
	if (fd >= 0)
		close(fd);
	refuse(e, block, h->block_size, expected, &chk, r->name, detail, refused, ctx);
	return false;
}

const char *vbfs_heal_block(vbfs_heal *h, const struct vbfs_entry *e, uint64_t block,
			    const uint8_t expected[VBFS_DIGEST_LEN], void *buf,
			    vbfs_event_fn refused, void *ctx)
{
	const char *source = NULL;
	char *path;
	if (!h || e->type != VBFS_T_REG || block >= vbfs_nblocks(e->size, h->block_size))
		return NULL;
	if (!(path = strndup(e->path, e->path_len)))
		return NULL;
	for (size_t i = 0; i < h->nreplicas && !source; i++)
		if (from_replica(h, &h->replicas[i], e, path, block, expected, buf, refused, ctx))
			source = h->replicas[i].name;
	free(path);
	if (!source && h->parity &&
	    vbfs_parity_heal(h->parity, e, block, expected, buf, refused, ctx))
		source = VBFS_PARITY_SOURCE;
	return source;
}
