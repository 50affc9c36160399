/*
 * json.c - one job: the JSON reader and writer with Python's semantics
 * (see json.h for why cJSON cannot do it).
 *
 * The seed article's manifest protects itself with
 *     sha256(json.dumps(manifest["files"], sort_keys=True).encode())
 * so the reader keeps number lexemes (Python keeps 1 and 1.0 apart and
 * ints exact), strings as WTF-8 so a lone surrogate survives, and the last
 * duplicate key; the writer uses Python's defaults (", " and ": ",
 * ensure_ascii, float repr).  The same reader parses PostgreSQL's
 * backup_manifest.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"
#include "json.h"

#define JSON_MAX_DEPTH 256      /* fuzzed input must not blow the stack */

/* ---- growable byte buffer ------------------------------------------------ */

void json_buf_put(struct json_buf *b, const void *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void json_buf_puts(struct json_buf *b, const char *s) { json_buf_put(b, s, strlen(s)); }
void json_buf_putc(struct json_buf *b, char c) { json_buf_put(b, &c, 1); }

/* ---- arena: the parsed tree is freed in one go --------------------------- */

struct json_chunk {
	struct json_chunk *next;
	size_t used, cap;
	_Alignas(16) unsigned char data[];
};

static void *arena_alloc(struct json_arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (!a->head || a->head->cap - a->head->used < n) {
		size_t cap = n > 65536 ? n : 65536;
		struct json_chunk *c = malloc(sizeof *c + cap);
		if (!c)
			return NULL;
		c->next = a->head;
		c->used = 0;
		c->cap = cap;
		a->head = c;
	}
	void *p = a->head->data + a->head->used;
	a->head->used += n;
	return p;
}

void json_arena_free(struct json_arena *a)
{
	while (a->head) {
		struct json_chunk *c = a->head;
		a->head = c->next;
		free(c);
	}
}


static size_t utf8_encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* ---- reader with Python's semantics ---------------------------------- */

struct jparser {
	const unsigned char *p, *start, *end;
	struct json_arena *a;
	int depth;
	char *why;
	bool failed;
};

static struct json_value *jfail(struct jparser *ps, const char *what)
{
	if (!ps->failed)
		vbfs_whyf(ps->why, "not valid JSON: %s at byte %zu", what,
		     (size_t)(ps->p - ps->start));
	ps->failed = true;
	return NULL;
}

static void jskip_ws(struct jparser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
				   *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static struct json_value *jnew(struct jparser *ps, enum json_type t)
{
	struct json_value *v = arena_alloc(ps->a, sizeof *v);
	if (!v)
		return jfail(ps, "out of memory");
	memset(v, 0, sizeof *v);
	v->t = t;
	return v;
}

static int jhex4(const unsigned char *p, const unsigned char *end, uint32_t *out)
{
	uint32_t v = 0;
	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int d = vbfs_hexval(p[i]);
		if (d < 0)
			return -1;
		v = v << 4 | (uint32_t)d;
	}
	*out = v;
	return 0;
}

/* A string after its opening quote; the result is WTF-8. */
static bool jstring(struct jparser *ps, const char **out, size_t *outlen)
{
	struct json_buf b = { 0 };
	for (;;) {
		if (ps->p >= ps->end) {
			jfail(ps, "unterminated string");
			break;
		}
		unsigned c = *ps->p;
		if (c == '"') {
			ps->p++;
			char *s = arena_alloc(ps->a, b.len + 1);
			if (!s || b.oom) {
				jfail(ps, "out of memory");
				break;
			}
			if (b.len)
				memcpy(s, b.p, b.len);
			s[b.len] = '\0';
			*out = s;
			*outlen = b.len;
			free(b.p);
			return true;
		}
		if (c < 0x20) {
			jfail(ps, "control character in string");
			break;
		}
		if (c != '\\') {
			const unsigned char *run = ps->p;
			while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\' && *ps->p >= 0x20)
				ps->p++;
			json_buf_put(&b, run, (size_t)(ps->p - run));
			continue;
		}
		if (ps->end - ps->p < 2) {
			jfail(ps, "unterminated string");
			break;
		}
		char e = (char)ps->p[1];
		ps->p += 2;
		switch (e) {
		case '"': json_buf_putc(&b, '"'); continue;
		case '\\': json_buf_putc(&b, '\\'); continue;
		case '/': json_buf_putc(&b, '/'); continue;
		case 'b': json_buf_putc(&b, '\b'); continue;
		case 'f': json_buf_putc(&b, '\f'); continue;
		case 'n': json_buf_putc(&b, '\n'); continue;
		case 'r': json_buf_putc(&b, '\r'); continue;
		case 't': json_buf_putc(&b, '\t'); continue;
		case 'u': break;
		default:
			ps->p -= 2;
			jfail(ps, "invalid escape in string");
			goto fail;
		}
		uint32_t cp, lo;
		if (jhex4(ps->p, ps->end, &cp) < 0) {
			jfail(ps, "invalid \\u escape");
			break;
		}
		ps->p += 4;
		/* Python pairs a high surrogate with a following low one and keeps
		 * any other surrogate alone; so do we. */
		if (cp >= 0xd800 && cp <= 0xdbff && ps->end - ps->p >= 6 &&
		    ps->p[0] == '\\' && ps->p[1] == 'u' &&
		    jhex4(ps->p + 2, ps->end, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			ps->p += 6;
		}
		char enc[4];
		json_buf_put(&b, enc, utf8_encode(cp, enc));
	}
fail:
	free(b.p);
	return false;
}

static bool jlit(struct jparser *ps, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n))
		return false;
	ps->p += n;
	return true;
}

static bool isdig(const unsigned char *p, const unsigned char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

/* Python's NUMBER_RE: -?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?, plus -Infinity. */
static struct json_value *jnumber(struct jparser *ps)
{
	const unsigned char *s = ps->p;
	if (ps->p < ps->end && *ps->p == '-') {
		ps->p++;
		if (jlit(ps, "Infinity"))
			goto done;
	}
	if (!isdig(ps->p, ps->end))
		return jfail(ps, "unexpected character");
	if (*ps->p == '0')
		ps->p++;
	else
		while (isdig(ps->p, ps->end))
			ps->p++;
	if (ps->p < ps->end && *ps->p == '.' && isdig(ps->p + 1, ps->end)) {
		ps->p++;
		while (isdig(ps->p, ps->end))
			ps->p++;
	}
	if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
		const unsigned char *q = ps->p + 1;
		if (q < ps->end && (*q == '+' || *q == '-'))
			q++;
		if (isdig(q, ps->end)) {
			ps->p = q;
			while (isdig(ps->p, ps->end))
				ps->p++;
		}
	}
done:;
	struct json_value *v = jnew(ps, JSON_NUM);
	char *lex = v ? arena_alloc(ps->a, (size_t)(ps->p - s) + 1) : NULL;
	if (!lex)
		return jfail(ps, "out of memory");
	memcpy(lex, s, (size_t)(ps->p - s));
	lex[ps->p - s] = '\0';
	v->s = lex;
	v->n = (size_t)(ps->p - s);
	return v;
}

static struct json_value *jvalue(struct jparser *ps);

/* Items of an array or members of an object: collected in a heap vector,
 * then moved into the arena. */
static struct json_value *jcontainer(struct jparser *ps, bool obj)
{
	struct json_value *v = jnew(ps, obj ? JSON_OBJ : JSON_ARR);
	struct json_buf vec = { 0 };
	size_t elem = obj ? sizeof(struct json_member) : sizeof(struct json_value *);
	if (!v)
		return NULL;
	ps->p++;
	jskip_ws(ps);
	if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) {
		ps->p++;
		return v;
	}
	for (;;) {
		jskip_ws(ps);
		struct json_member m = { 0 };
		if (obj) {
			if (ps->p >= ps->end || *ps->p != '"') {
				jfail(ps, "expecting a property name in double quotes");
				goto fail;
			}
			ps->p++;
			if (!jstring(ps, &m.key, &m.klen))
				goto fail;
			jskip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':') {
				jfail(ps, "expecting ':'");
				goto fail;
			}
			ps->p++;
		}
		m.val = jvalue(ps);
		if (!m.val)
			goto fail;
		if (obj)
			json_buf_put(&vec, &m, sizeof m);
		else
			json_buf_put(&vec, &m.val, sizeof m.val);
		v->len++;
		jskip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) {
			ps->p++;
			break;
		}
		jfail(ps, "expecting ',' delimiter");
		goto fail;
	}
	void *dst = arena_alloc(ps->a, v->len * elem);
	if (!dst || vec.oom) {
		jfail(ps, "out of memory");
		goto fail;
	}
	memcpy(dst, vec.p, v->len * elem);
	if (obj)
		v->mem = dst;
	else
		v->items = dst;
	free(vec.p);
	return v;
fail:
	free(vec.p);
	return NULL;
}

static struct json_value *jvalue(struct jparser *ps)
{
	jskip_ws(ps);
	if (ps->p >= ps->end)
		return jfail(ps, "unexpected end of input");
	if (++ps->depth > JSON_MAX_DEPTH)
		return jfail(ps, "nested too deeply");
	struct json_value *v = NULL;
	switch (*ps->p) {
	case '{':
		v = jcontainer(ps, true);
		break;
	case '[':
		v = jcontainer(ps, false);
		break;
	case '"':
		ps->p++;
		v = jnew(ps, JSON_STR);
		if (v && !jstring(ps, &v->s, &v->n))
			v = NULL;
		break;
	default:
		if (jlit(ps, "null"))
			v = jnew(ps, JSON_NULL);
		else if (jlit(ps, "true"))
			v = jnew(ps, JSON_TRUE);
		else if (jlit(ps, "false"))
			v = jnew(ps, JSON_FALSE);
		else if (*ps->p == 'N' || *ps->p == 'I') {
			/* Python reads NaN and Infinity as floats. */
			const unsigned char *s = ps->p;
			if (jlit(ps, "NaN") || jlit(ps, "Infinity")) {
				v = jnew(ps, JSON_NUM);
				if (v) {
					v->s = *s == 'N' ? "NaN" : "Infinity";
					v->n = strlen(v->s);
				}
			} else {
				v = jfail(ps, "unexpected character");
			}
		} else {
			v = jnumber(ps);
		}
	}
	ps->depth--;
	return v;
}

/* Strict UTF-8 (as Python's text-mode open() requires). */
static size_t utf8_invalid_at(const unsigned char *s, size_t n)
{
	size_t i = 0;
	uint32_t cp;
	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		size_t l = vbfs_utf8_decode(s + i, n - i, false, &cp);
		if (!l)
			return i;
		i += l;
	}
	return (size_t)-1;
}

struct json_value *json_parse(const char *text, size_t len, struct json_arena *a, char *why)
{
	const unsigned char *s = (const unsigned char *)text;
	if (len >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) {     /* tolerate a BOM */
		s += 3;
		len -= 3;
	}
	size_t bad = utf8_invalid_at(s, len);
	if (bad != (size_t)-1) {
		vbfs_whyf(why, "not valid JSON: invalid UTF-8 at byte %zu", bad);
		return NULL;
	}
	struct jparser ps = { .p = s, .start = s, .end = s + len, .a = a, .why = why };
	struct json_value *v = jvalue(&ps);
	if (!v)
		return NULL;
	jskip_ws(&ps);
	if (ps.p != ps.end)
		return jfail(&ps, "extra data after the document");
	return v;
}

/* Last member named `key` (Python's dict keeps the last duplicate). */
struct json_value *json_get(const struct json_value *o, const char *key)
{
	if (!o || o->t != JSON_OBJ)
		return NULL;
	size_t kl = strlen(key);
	for (size_t i = o->len; i-- > 0;)
		if (o->mem[i].klen == kl && !memcmp(o->mem[i].key, key, kl))
			return o->mem[i].val;
	return NULL;
}

/* ---- JSON writer with Python's json.dumps defaults ------------------------- */

/* repr(float): the shortest string that reads back as the same double,
 * positional when -4 < decimal exponent <= 16, else d.ddde+XX. */
static void py_float_repr(double x, char out[40])
{
	if (isnan(x)) {
		strcpy(out, "NaN");
		return;
	}
	if (isinf(x)) {
		strcpy(out, x > 0 ? "Infinity" : "-Infinity");
		return;
	}
	if (x == 0) {
		strcpy(out, signbit(x) ? "-0.0" : "0.0");
		return;
	}
	char buf[48];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*e", prec - 1, x);
		if (strtod(buf, NULL) == x)
			break;
	}
	/* buf = [-]d[.ddd]e[+-]XX */
	char digits[24];
	size_t nd = 0;
	const char *p = buf;
	bool neg = *p == '-';
	if (neg)
		p++;
	for (; *p && *p != 'e'; p++)
		if (*p != '.' && nd < sizeof digits - 1)
			digits[nd++] = *p;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	int decpt = atoi(p + 1) + 1;
	char *o = out;
	if (neg)
		*o++ = '-';
	if (decpt <= -4 || decpt > 16) {
		*o++ = digits[0];
		if (nd > 1) {
			*o++ = '.';
			memcpy(o, digits + 1, nd - 1);
			o += nd - 1;
		}
		int e = decpt - 1;
		sprintf(o, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
		return;
	}
	if (decpt <= 0) {
		*o++ = '0';
		*o++ = '.';
		for (int i = 0; i < -decpt; i++)
			*o++ = '0';
		memcpy(o, digits, nd);
		o += nd;
	} else if ((size_t)decpt >= nd) {
		memcpy(o, digits, nd);
		o += nd;
		for (size_t i = nd; i < (size_t)decpt; i++)
			*o++ = '0';
		*o++ = '.';
		*o++ = '0';
	} else {
		memcpy(o, digits, (size_t)decpt);
		o += decpt;
		*o++ = '.';
		memcpy(o, digits + decpt, nd - (size_t)decpt);
		o += nd - (size_t)decpt;
	}
	*o = '\0';
}

static void py_put_cp(struct json_buf *b, uint32_t cp)
{
	static const char hex[] = "0123456789abcdef";
	char e[6] = { '\\', 'u' };
	switch (cp) {
	case '"': json_buf_puts(b, "\\\""); return;
	case '\\': json_buf_puts(b, "\\\\"); return;
	case '\n': json_buf_puts(b, "\\n"); return;
	case '\r': json_buf_puts(b, "\\r"); return;
	case '\t': json_buf_puts(b, "\\t"); return;
	case '\b': json_buf_puts(b, "\\b"); return;
	case '\f': json_buf_puts(b, "\\f"); return;
	}
	if (cp >= 0x20 && cp <= 0x7e) {
		json_buf_putc(b, (char)cp);
		return;
	}
	if (cp >= 0x10000) {
		uint32_t v = cp - 0x10000;
		py_put_cp(b, 0xd800 | (v >> 10));
		py_put_cp(b, 0xdc00 | (v & 0x3ff));
		return;
	}
	for (int i = 0; i < 4; i++)
		e[2 + i] = hex[(cp >> (12 - 4 * i)) & 0xf];
	json_buf_put(b, e, 6);
}

/*
 * A JSON string as Python writes str with ensure_ascii.  `fsbytes`: the
 * input is a file name (arbitrary bytes) and Python's surrogateescape
 * applies: each byte that does not start a valid UTF-8 sequence becomes
 * U+DC80..U+DCFF.  Otherwise the input is our WTF-8.
 */
void json_put_str(struct json_buf *b, const char *s, size_t n, bool fsbytes)
{
	const unsigned char *u = (const unsigned char *)s;
	json_buf_putc(b, '"');
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t l = vbfs_utf8_decode(u + i, n - i, !fsbytes, &cp);
		if (!l) {
			/* only reachable for fsbytes: our WTF-8 is always valid */
			cp = 0xdc00 + u[i];
			l = 1;
		}
		py_put_cp(b, cp);
		i += l;
	}
	json_buf_putc(b, '"');
}

struct memref {
	const struct json_member *m;
	size_t ord;
};

static int memref_cmp(const void *a, const void *b)
{
	const struct memref *x = a, *y = b;
	size_t n = x->m->klen < y->m->klen ? x->m->klen : y->m->klen;
	int c = memcmp(x->m->key, y->m->key, n);
	if (c)
		return c;
	if (x->m->klen != y->m->klen)
		return x->m->klen < y->m->klen ? -1 : 1;
	return x->ord < y->ord ? -1 : x->ord > y->ord;
}

/* json.dumps(value, sort_keys=True): separators ", " and ": ". */
bool json_dumps_sorted(struct json_buf *b, const struct json_value *v)
{
	switch (v->t) {
	case JSON_NULL: json_buf_puts(b, "null"); return true;
	case JSON_TRUE: json_buf_puts(b, "true"); return true;
	case JSON_FALSE: json_buf_puts(b, "false"); return true;
	case JSON_STR: json_put_str(b, v->s, v->n, false); return true;
	case JSON_NUM:
		if (strpbrk(v->s, ".eEIN")) {           /* a float in Python */
			char f[40];
			py_float_repr(strtod(v->s, NULL), f);
			json_buf_puts(b, f);
		} else {
			json_buf_puts(b, strcmp(v->s, "-0") ? v->s : "0");
		}
		return true;
	case JSON_ARR:
		json_buf_putc(b, '[');
		for (size_t i = 0; i < v->len; i++) {
			if (i)
				json_buf_puts(b, ", ");
			if (!json_dumps_sorted(b, v->items[i]))
				return false;
		}
		json_buf_putc(b, ']');
		return true;
	case JSON_OBJ:
		break;
	}
	/* UTF-8 byte order is code point order, which is Python's str order;
	 * the stable sort puts duplicates in document order, the last wins. */
	struct memref *r = malloc((v->len ? v->len : 1) * sizeof *r);
	if (!r)
		return false;
	for (size_t i = 0; i < v->len; i++)
		r[i] = (struct memref){ &v->mem[i], i };
	if (v->len)
		qsort(r, v->len, sizeof *r, memref_cmp);
	json_buf_putc(b, '{');
	bool first = true, ok = true;
	for (size_t i = 0; i < v->len && ok; i++) {
		if (i + 1 < v->len && r[i + 1].m->klen == r[i].m->klen &&
		    !memcmp(r[i + 1].m->key, r[i].m->key, r[i].m->klen))
			continue;
		if (!first)
			json_buf_puts(b, ", ");
		first = false;
		json_put_str(b, r[i].m->key, r[i].m->klen, false);
		json_buf_puts(b, ": ");
		ok = json_dumps_sorted(b, r[i].m->val);
	}
	json_buf_putc(b, '}');
	free(r);
	return ok;
}

vbfs_err vbfs_pyjson_dumps_sorted(const char *json, size_t len, char **out,
				  size_t *outlen, char why[VBFS_WHY_LEN])
{
	struct json_arena a = { 0 };
	struct json_buf b = { 0 };
	vbfs_err err = VBFS_ERR_FORMAT;
	struct json_value *v = json_parse(json, len, &a, why);
	if (!v)
		goto out;
	if (!json_dumps_sorted(&b, v) || b.oom) {
		err = VBFS_ERR_NOMEM;
		vbfs_whyf(why, "out of memory");
		goto out;
	}
	*out = b.p ? b.p : strdup("");
	*outlen = b.len;
	b.p = NULL;
	err = *out ? VBFS_OK : VBFS_ERR_NOMEM;
out:
	free(b.p);
	json_arena_free(&a);
	return err;
}

/* Our WTF-8 string back to file-name bytes: U+DC80..U+DCFF are the bytes
 * Python's surrogateescape stood in for. */
bool json_wtf8_to_fs(const char *s, size_t n, char *out, size_t *outlen)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t l = vbfs_utf8_decode(u + i, n - i, true, &cp);
		if (!l)
			return false;
		if (cp >= 0xd800 && cp <= 0xdfff) {
			if (cp < 0xdc80 || cp > 0xdcff)
				return false;
			out[o++] = (char)(cp - 0xdc00);
		} else {
			memcpy(out + o, u + i, l);
			o += l;
		}
		i += l;
	}
	*outlen = o;
	return true;
}
