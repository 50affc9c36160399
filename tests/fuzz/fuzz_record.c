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
	if (vbfs_record_size(&e) != size)
		abort();
	if ((const uint8_t *)e.path < rec || (const uint8_t *)e.path + e.path_len > rec + size ||
	    (const uint8_t *)e.target < rec || (const uint8_t *)e.target + e.target_len > rec + size)
		abort();
	uint8_t *again = malloc(size);
	if (!again)
		abort();
	vbfs_record_encode(&e, again);
	if (memcmp(again, rec, size))
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
