/*
 * json.h - libvbfs internal: a JSON reader and writer with Python's
 * semantics, for the manifests that Python and PostgreSQL write (used by
 * manifest.c and export.c; not part of the public API in vbfs.h/formats.h).
 *
 * Why not cJSON: checking the seed manifest's checksum means reproducing
 * json.dumps(json.loads(text), sort_keys=True) byte for byte, and cJSON
 * turns every number into a double, rejects the lone surrogates Python
 * writes for non-UTF-8 file names and keeps duplicate keys.  Here numbers
 * keep their lexeme, strings are WTF-8 (a lone surrogate survives), and
 * the last duplicate key wins, as in Python's dict.
 *
 * Not thread-safe per object; no global state.
 */
#ifndef VBFS_JSON_H
#define VBFS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vbfs.h"

/* ---- growable byte buffer (the writer's output) --------------------------- */

/* A zeroed json_buf is empty.  On allocation failure `oom` is set and
 * later puts do nothing; p is NUL-terminated whenever len > 0.  The
 * owner frees p. */
struct json_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

void json_buf_put(struct json_buf *b, const void *s, size_t n);
void json_buf_puts(struct json_buf *b, const char *s);
void json_buf_putc(struct json_buf *b, char c);

/* ---- the parsed tree: every node lives in one arena ----------------------- */

struct json_chunk;
struct json_arena {             /* zeroed: empty */
	struct json_chunk *head;
};
void json_arena_free(struct json_arena *a);

enum json_type { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ };

struct json_value;
struct json_member {
	const char *key;        /* WTF-8, NUL-terminated */
	size_t klen;
	struct json_value *val;
};

struct json_value {
	enum json_type t;
	const char *s;          /* STR: WTF-8 (NUL-terminated); NUM: the lexeme */
	size_t n;
	size_t len;             /* ARR: items; OBJ: members, in document order */
	struct json_value **items;
	struct json_member *mem;
};

/*
 * Parse one document (strict UTF-8, an optional BOM, Python's json.loads
 * grammar including NaN and Infinity).  The tree lives in `a` until
 * json_arena_free.  NULL on error, with "not valid JSON: ... at byte N"
 * (or "out of memory") in `why` (may be NULL).
 */
struct json_value *json_parse(const char *text, size_t len, struct json_arena *a,
			      char *why);

/* The member named `key` (the last one when duplicated); NULL when `o` is
 * not an object or has none. */
struct json_value *json_get(const struct json_value *o, const char *key);

/* ---- the writer: Python's json.dumps defaults ----------------------------- */

/* json.dumps(v, sort_keys=True) appended to b.  false: out of memory. */
bool json_dumps_sorted(struct json_buf *b, const struct json_value *v);

/*
 * A JSON string as Python writes str with ensure_ascii.  `fsbytes`: s is a
 * file name (any bytes) and Python's surrogateescape applies; otherwise s
 * is WTF-8 from json_parse.
 */
void json_put_str(struct json_buf *b, const char *s, size_t n, bool fsbytes);

/*
 * The mirror of json_put_str(fsbytes): a WTF-8 string back to file-name
 * bytes (U+DC80..U+DCFF are the bytes surrogateescape stood in for).
 * out needs n bytes.  false: a code point no file name can hold.
 */
bool json_wtf8_to_fs(const char *s, size_t n, char *out, size_t *outlen);

#endif
