/*
 * formats.h - backup-time manifests in (for `vbfsctl build --against`) and
 * exports out (`vbfsctl export`).  Part of libvbfs; never FUSE.
 *
 * Three input formats, detected from content:
 *   VBFS_MF_SEED       the seed article's BackupChecksumManager JSON
 *   VBFS_MF_SHA256SUM  `sha256sum` output ("HASH  path" / "HASH *path")
 *   VBFS_MF_PGBACKUP   PostgreSQL's backup_manifest (pg_basebackup)
 */
#ifndef VBFS_FORMATS_H
#define VBFS_FORMATS_H

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

#endif
