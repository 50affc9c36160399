/*
 * report.h - verify reports: the `vbfsctl verify --json` document written
 * to a file (`--report`), read back (`merge`, `--errors-only`), merged
 * from shards, and signed.
 *
 * A report is a JSON object with at least
 *   format    "vbfs-verify-report-1"
 *   ok, files, blocks, bytes, seconds, events   (as `verify --json`)
 *   shard     {"k":K,"n":N}  (an unsharded scrub is 0/1)
 *   root      the index root digest, hex
 *   complete  false when a time budget stopped the scrub early
 * and optionally `signature`: {"algorithm":"ed25519","value":HEX}, an
 * Ed25519 signature over "vbfs-report-signature-v1" || SHA-256(C), where C
 * is the report without `signature` printed compactly by cJSON after one
 * parse (the signer signs that same normalised text, so a reader that
 * parses the file and prints it again gets the bytes that were signed).
 *
 * Depends on cJSON; nothing here exits or prints.
 */
#ifndef VBFS_REPORT_H
#define VBFS_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "vbfs.h"

#define VBFS_REPORT_FORMAT "vbfs-verify-report-1"

/*
 * An event from its JSON object (vbfs_event_json's form).  The raw path
 * (from `path_hex` when the name was not UTF-8) is malloc'd into *path,
 * which ev->path points at; ev->detail points into `o`.  VBFS_ERR_FORMAT
 * when `o` is not an event, or a number in it is out of range (`block`,
 * `offset`: whole numbers; `length`: up to VBFS_BLOCK_MAX; cjson_num.h),
 * with the member named in `why` (may be NULL).
 */
vbfs_err vbfs_event_from_json(const cJSON *o, struct vbfs_event *ev, char **path,
			      char why[VBFS_WHY_LEN]);

/* Order of events in every report: path bytes, then block (file-level
 * findings, block -1, first).  For qsort over cJSON * items. */
int vbfs_report_event_cmp(const cJSON *a, const cJSON *b);

/*
 * The text of a report: `doc` (which gains `signature` when sign_key is
 * given) printed with a trailing newline, malloc'd.  NULL with `why` on
 * failure (bad key, out of memory).
 */
char *vbfs_report_text(cJSON *doc, const char *sign_key, char why[VBFS_WHY_LEN]);

/* Is `sign_key` a readable Ed25519 secret key?  (Check before a long scrub.) */
vbfs_err vbfs_report_check_key(const char *sign_key, char why[VBFS_WHY_LEN]);

/*
 * Read a report file.  Checks the shape (VBFS_ERR_FORMAT: "not a vbfs
 * verify report") and, with `verify_key`, that it is signed by that key
 * (VBFS_ERR_SIGNATURE).  *signed_ tells whether it carried a signature.
 */
vbfs_err vbfs_report_load(const char *path, const char *verify_key, cJSON **doc,
			  bool *signed_, char why[VBFS_WHY_LEN]);

/*
 * Merge n shard reports (loaded, in any order) into one unsharded report
 * (shard 0/1, `merged` = n shards).  VBFS_ERR_USAGE, with one line naming
 * the culprit by names[i], when a shard is missing, given twice, of
 * another index (root) or of another N, or is an --errors-only report.
 * An incomplete shard makes the merged report incomplete.
 */
vbfs_err vbfs_report_merge(cJSON *const *docs, const char *const *names, size_t n,
			   cJSON **out, char why[VBFS_WHY_LEN]);

#endif
