/*
 * fuzz_event_json.c - libFuzzer harness for the JSON (and JSON-like) readers
 * that take files a user or another host hands us:
 *   first byte % 3 == 0  a drill history line  (tools/history.c, history_parse_line)
 *                  == 1  an imported backup-time manifest: seed JSON,
 *                        sha256sum, PostgreSQL backup_manifest (vbfs_manifest_parse)
 *                  == 2  the Python-exact JSON re-encoder (vbfs_pyjson_dumps_sorted)
 * The rest of the input is the text, in an exact-size heap buffer without a
 * terminating NUL, so ASan catches a reader that runs past `len`.
 * history.c depends only on libc, cJSON and vbfs.h, so it is linked in
 * (as it is into tests/unit/test_history.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "history.h"
#include "formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[VBFS_WHY_LEN];
	if (size < 1)
		return 0;
	unsigned which = data[0] % 3;
	size_t len = size - 1;
	char *text = malloc(len ? len : 1);
	if (!text)
		return 0;
	memcpy(text, data + 1, len);
	switch (which) {
	case 0: {
		struct hist_run r;
		memset(&r, 0, sizeof r);
		if (history_parse_line(text, len, &r) == VBFS_OK)
			hist_run_free(&r);
		break;
	}
	case 1: {
		struct vbfs_manifest *m = NULL;
		if (vbfs_manifest_parse(text, len, &m, why) == VBFS_OK && m) {
			/* every listed path can be found again */
			for (size_t i = 0; i < m->nfiles; i++)
				if (vbfs_manifest_find(m, m->files[i].path, strlen(m->files[i].path)) == NULL)
					abort();
		}
		vbfs_manifest_free(m);
		break;
	}
	case 2: {
		char *out = NULL;
		size_t outlen = 0;
		if (vbfs_pyjson_dumps_sorted(text, len, &out, &outlen, why) == VBFS_OK) {
			/* idempotent: re-encoding the output gives the same bytes */
			char *again = NULL;
			size_t againlen = 0;
			if (vbfs_pyjson_dumps_sorted(out, outlen, &again, &againlen, why) != VBFS_OK ||
			    againlen != outlen || memcmp(again, out, outlen))
				abort();
			free(again);
		}
		free(out);
		break;
	}
	}
	free(text);
	return 0;
}
