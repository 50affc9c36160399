/*
 * fuzz_record.c - libFuzzer harness for the index record decoder
 * (vbfs_record_decode), the one place that trusts bytes read from LMDB.
 *
 * Properties checked on every input, beyond "no crash, no overread" (ASan):
 *   - a record that decodes re-encodes to exactly the same bytes, and its
 *     vbfs_record_size() is the input length;
 *   - path and target lie inside the input;
 *   - the event JSON of a decoded path is valid JSON, with path_hex giving
 *     back the raw bytes when the path is not UTF-8.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "vbfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vbfs_entry e;
	/* An exact-size heap copy: ASan sees any read past the end. */
	uint8_t *rec = malloc(size ? size : 1);
	if (!rec)
		return 0;
	memcpy(rec, data, size);
	if (vbfs_record_decode(rec, size, &e) != VBFS_OK) {
		free(rec);
		return 0;
	}
	/* A version-1 record (still read) re-encodes as version 2, whose header
	 * is 24 bytes longer: same fields at the same offsets, the v2 fields
	 * after them, then the same path and target. */
	const size_t V1_HEADER = 128, V2_GROWTH = 24;
	bool v1 = rec[0] == 1;
	size_t want = v1 ? size + V2_GROWTH : size;
	if (vbfs_record_size(&e) != want)
		abort();
	if ((const uint8_t *)e.path < rec || (const uint8_t *)e.path + e.path_len > rec + size ||
	    (const uint8_t *)e.target < rec || (const uint8_t *)e.target + e.target_len > rec + size)
		abort();
	uint8_t *again = malloc(want);
	if (!again)
		abort();
	vbfs_record_encode(&e, again);
	if (v1 ? memcmp(again + 4, rec + 4, V1_HEADER - 4) ||
		 memcmp(again + V1_HEADER + V2_GROWTH, rec + V1_HEADER, size - V1_HEADER)
	       : memcmp(again, rec, size) != 0)
		abort();                        /* decode/encode must round-trip */
	free(again);

	size_t n;
	const char *name = vbfs_entry_name(&e, &n);
	if (name < e.path || name + n > e.path + e.path_len)
		abort();

	struct vbfs_event ev = { .kind = VBFS_EV_CORRUPT, .path = e.path, .path_len = e.path_len,
				 .block = 3, .offset = 3 * 4096, .length = 4096, .has_expected = true };
	char *json = vbfs_event_json(&ev);
	if (json) {
		cJSON *o = cJSON_Parse(json);
		if (!o)
			abort();                /* the encoder wrote invalid JSON */
		cJSON *hex = cJSON_GetObjectItem(o, "path_hex");
		if (hex) {
			uint8_t *raw = malloc(e.path_len + 1);
			if (!raw || !cJSON_IsString(hex) || strlen(hex->valuestring) != 2 * e.path_len ||
			    vbfs_unhex(hex->valuestring, raw, e.path_len) ||
			    memcmp(raw, e.path, e.path_len))
				abort();
			free(raw);
		}
		cJSON_Delete(o);
		free(json);
	}
	free(rec);
	return 0;
}
