/*
 * formats.h - backup-time manifests in (for `vbfsctl build --against`,
 * manifest.c) and exports out (`vbfsctl export`, export.c).  Part of
 * libvbfs; never FUSE.
 * exports out (`vbfsctl export`).  Part of libvbfs; never FUSE.
 *
 * Three input formats, detected from content:
 *   VBFS_MF_SEED       the seed article's BackupChecksumManager JSON
 *   VBFS_MF_SHA256SUM  `sha256sum` output ("HASH  path" / "HASH *path")
 *   VBFS_MF_PGBACKUP   PostgreSQL's backup_manifest (pg_basebackup)
 */
#ifndef VBFS_FORMATS_H
#define VBFS_FORMATS_H

#include <stdio.h>
#include "vbfs.h"

enum vbfs_manifest_format { VBFS_MF_SEED = 1, VBFS_MF_SHA256SUM, VBFS_MF_PGBACKUP };

struct vbfs_manifest_file {
	char    *path;          /* relative to the store root, decoded */
	int64_t  size;          /* -1: the manifest gives none */
	bool     checkable;     /* false: algorithm is not SHA-256 */
	char     algorithm[24]; /* as the manifest names it, e.g. "SHA256", "CRC32C" */
	uint8_t  sha256[VBFS_DIGEST_LEN];  /* valid when checkable */
	bool     seen;          /* set by the build when the store has it */
};

struct vbfs_manifest {
	enum vbfs_manifest_format format;
	size_t nfiles;
	struct vbfs_manifest_file *files;   /* sorted by path (bytewise) */
};

/*
 * Load and validate a manifest.  A manifest whose own checksum
 * (manifest_checksum, Manifest-Checksum) does not match is refused with
 * VBFS_ERR_FORMAT and a `why` that says so.
 */
vbfs_err vbfs_manifest_load(const char *path, struct vbfs_manifest **out,
			    char why[VBFS_WHY_LEN]);
/* Binary search by path; NULL when not listed. */
struct vbfs_manifest_file *vbfs_manifest_find(struct vbfs_manifest *m,
					      const char *path, size_t path_len);
void vbfs_manifest_free(struct vbfs_manifest *m);
const char *vbfs_manifest_format_name(enum vbfs_manifest_format f);

/* vbfs_manifest_load on bytes in memory (tests, fuzzing). */
vbfs_err vbfs_manifest_parse(const char *text, size_t len, struct vbfs_manifest **out,
			     char why[VBFS_WHY_LEN]);

/*
 * Python's json.dumps(json.loads(text), sort_keys=True), byte for byte
 * (default separators, ensure_ascii, float repr, last duplicate key wins).
 * The seed manifest's checksum is SHA-256 of this for its "files" list.
 * *out is malloc'd and NUL-terminated.
 */
vbfs_err vbfs_pyjson_dumps_sorted(const char *json, size_t len, char **out,
				  size_t *outlen, char why[VBFS_WHY_LEN]);

/* ---- exports: vbfsctl export ---------------------------------------------- */

enum vbfs_export_format {
	VBFS_EXPORT_MANIFEST = 1,   /* the seed's JSON manifest (needs file digests) */
	VBFS_EXPORT_SHA256SUM,      /* `sha256sum -c` lines (needs file digests) */
	VBFS_EXPORT_BLOCKS,         /* the seed's per-file block lists */
};

struct vbfs_export_result {
	uint64_t files;             /* regular files written */
	uint64_t blocks;            /* block entries written (blocks format) */
	uint64_t skipped;           /* damaged or unreadable files left out */
};

/* Called for each regular file left out because the index marks it
 * damaged or unreadable: exporting it would certify the damage. */
typedef void (*vbfs_export_skip_fn)(void *ctx, const char *path, uint32_t flags);

/*
 * Write the index's regular files, sorted by path, in format `f` to `out`.
 * Manifest and sha256sum need the whole-file digests (build
 * --file-digests): without them VBFS_ERR_NOTFOUND with
 * "index has no whole-file digests: rebuild with --file-digests".
 */
vbfs_err vbfs_export(vbfs_index *idx, enum vbfs_export_format f, FILE *out,
		     vbfs_export_skip_fn skip, void *skip_ctx,
		     struct vbfs_export_result *r, char why[VBFS_WHY_LEN]);

#endif
