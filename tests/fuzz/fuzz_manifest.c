/*
 * fuzz_manifest.c - libFuzzer harness for vbfs_manifest_load: every input
 * must end in a manifest or a clean VBFS_ERR_FORMAT, never a crash, a leak
 * or a read outside the bytes.  The input goes through a real file because
 * that is the path `vbfsctl build --against` takes.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *     -Imanifest tests/fuzz/fuzz_manifest.c manifest/manifest.c manifest/json.c \
 *     manifest/util.c <the rest of libvbfs> -llmdb -lcjson -lcrypto -lpthread -lm -o fuzz_manifest
 *   ./fuzz_manifest tests/fuzz/corpus/manifest -max_total_time=60
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	if (!path[0]) {
		const char *dir = getenv("TMPDIR");
		snprintf(path, sizeof path, "%s/fuzz_manifest.%d", dir && strlen(dir) < 40 ? dir : "/tmp",
			 (int)getpid());
	}
	FILE *f = fopen(path, "wb");
	if (!f)
		return 0;
	if (size && fwrite(data, 1, size, f) != size) {
		fclose(f);
		return 0;
	}
	fclose(f);

	struct vbfs_manifest *m = NULL;
	char why[VBFS_WHY_LEN];
	vbfs_err e = vbfs_manifest_load(path, &m, why);
	if (e == VBFS_OK) {
		/* the invariants the build relies on */
		for (size_t i = 0; i < m->nfiles; i++) {
			const char *p = m->files[i].path;
			size_t n = strlen(p);
			if (!n || p[0] == '/' || vbfs_manifest_find(m, p, n) != &m->files[i])
				abort();
			if (i && strcmp(m->files[i - 1].path, p) >= 0)
				abort();
		}
		vbfs_manifest_free(m);
	} else if (e != VBFS_ERR_FORMAT && e != VBFS_ERR_NOMEM) {
		abort();
	} else if (!memchr(why, '\0', sizeof why)) {
		abort();
	}
	/* the Python-exact writer, on the same bytes */
	char *out = NULL;
	size_t outlen;
	if (vbfs_pyjson_dumps_sorted((const char *)data, size, &out, &outlen, why) == VBFS_OK) {
		if (strlen(out) != outlen)
			abort();
		free(out);
	}
	unlink(path);
	return 0;
}
