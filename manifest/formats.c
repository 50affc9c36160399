/*
 * formats.c - backup-time manifests in (build --against) and exports out
 * (vbfsctl export).
 *
 * The seed article's manifest protects itself with
 *     sha256(json.dumps(manifest["files"], sort_keys=True).encode())
 * so checking it means reproducing Python's json.loads + json.dumps byte
 * for byte.  cJSON cannot do that: it turns every number into a double
 * (Python keeps 1 and 1.0 apart and ints exact), rejects the lone
 * surrogates Python writes for non-UTF-8 file names (surrogateescape) and
 * keeps duplicate keys.  So this file carries a small JSON reader with
 * Python's semantics (number lexemes kept, strings kept as WTF-8 so a lone
 * surrogate survives, last duplicate key wins) and a writer with Python's
 * defaults (", " and ": ", ensure_ascii, float repr).  The same reader
 * parses PostgreSQL's backup_manifest; its checksum covers raw bytes.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "formats.h"

#define MANIFEST_MAX_BYTES ((size_t)2 << 30)    /* refuse larger: not a manifest */
#define JSON_MAX_DEPTH     256                  /* fuzzed input must not blow the stack */

static void whyf(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void whyf(char *why, const char *fmt, ...)
{
	va_list ap;
	if (!why)
		return;
	va_start(ap, fmt);
	vsnprintf(why, VBFS_WHY_LEN, fmt, ap);
	va_end(ap);
}

/* ---- growable byte buffer ------------------------------------------------ */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_put(struct sbuf *b, const void *s, size_t n)
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

static void sb_puts(struct sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_putc(struct sbuf *b, char c) { sb_put(b, &c, 1); }

/* ---- arena: the parsed tree is freed in one go --------------------------- */

struct chunk {
	struct chunk *next;
	size_t used, cap;
	_Alignas(16) unsigned char data[];
};

struct arena {
	struct chunk *head;
};

static void *arena_alloc(struct arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (!a->head || a->head->cap - a->head->used < n) {
		size_t cap = n > 65536 ? n : 65536;
		struct chunk *c = malloc(sizeof *c + cap);
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

static void arena_free(struct arena *a)
{
	while (a->head) {
		struct chunk *c = a->head;
		a->head = c->next;
		free(c);
	}
}

/* ---- UTF-8 ---------------------------------------------------------------- */

/*
 * Decode one code point at s[0..n).  `wtf8`: also accept encoded surrogates
 * (our internal strings carry Python's lone surrogates that way).  Returns
 * the sequence length, or 0 when the bytes are not valid there.
 */
static size_t utf8_decode(const unsigned char *s, size_t n, bool wtf8, uint32_t *cp)
{
	if (n == 0)
		return 0;
	unsigned c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	size_t len;
	uint32_t v, min;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2; v = c & 0x1f; min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3; v = c & 0x0f; min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4; v = c & 0x07; min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff)
		return 0;
	if (v >= 0xd800 && v <= 0xdfff && !wtf8)
		return 0;
	*cp = v;
	return len;
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

/* ---- JSON reader with Python's semantics ---------------------------------- */

enum jtype { JT_NULL, JT_FALSE, JT_TRUE, JT_NUM, JT_STR, JT_ARR, JT_OBJ };

struct jv;
struct jmem {
	const char *key;        /* WTF-8, NUL-terminated */
	size_t klen;
	struct jv *val;
};

struct jv {
	enum jtype t;
	const char *s;          /* STR: WTF-8 (NUL-terminated); NUM: the lexeme */
	size_t n;
	size_t len;             /* ARR: items; OBJ: members, in document order */
	struct jv **items;
	struct jmem *mem;
};

struct jparser {
	const unsigned char *p, *start, *end;
	struct arena *a;
	int depth;
	char *why;
	bool failed;
};

static struct jv *jfail(struct jparser *ps, const char *what)
{
	if (!ps->failed)
		whyf(ps->why, "not valid JSON: %s at byte %zu", what,
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

static struct jv *jnew(struct jparser *ps, enum jtype t)
{
	struct jv *v = arena_alloc(ps->a, sizeof *v);
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
		int c = p[i], d;
		if (c >= '0' && c <= '9') d = c - '0';
		else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
		else return -1;
		v = v << 4 | (uint32_t)d;
	}
	*out = v;
	return 0;
}

/* A string after its opening quote; the result is WTF-8. */
static bool jstring(struct jparser *ps, const char **out, size_t *outlen)
{
	struct sbuf b = { 0 };
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
			sb_put(&b, run, (size_t)(ps->p - run));
			continue;
		}
		if (ps->end - ps->p < 2) {
			jfail(ps, "unterminated string");
			break;
		}
		char e = (char)ps->p[1];
		ps->p += 2;
		switch (e) {
		case '"': sb_putc(&b, '"'); continue;
		case '\\': sb_putc(&b, '\\'); continue;
		case '/': sb_putc(&b, '/'); continue;
		case 'b': sb_putc(&b, '\b'); continue;
		case 'f': sb_putc(&b, '\f'); continue;
		case 'n': sb_putc(&b, '\n'); continue;
		case 'r': sb_putc(&b, '\r'); continue;
		case 't': sb_putc(&b, '\t'); continue;
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
		sb_put(&b, enc, utf8_encode(cp, enc));
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
static struct jv *jnumber(struct jparser *ps)
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
	struct jv *v = jnew(ps, JT_NUM);
	char *lex = v ? arena_alloc(ps->a, (size_t)(ps->p - s) + 1) : NULL;
	if (!lex)
		return jfail(ps, "out of memory");
	memcpy(lex, s, (size_t)(ps->p - s));
	lex[ps->p - s] = '\0';
	v->s = lex;
	v->n = (size_t)(ps->p - s);
	return v;
}

static struct jv *jvalue(struct jparser *ps);

/* Items of an array or members of an object: collected in a heap vector,
 * then moved into the arena. */
static struct jv *jcontainer(struct jparser *ps, bool obj)
{
	struct jv *v = jnew(ps, obj ? JT_OBJ : JT_ARR);
	struct sbuf vec = { 0 };
	size_t elem = obj ? sizeof(struct jmem) : sizeof(struct jv *);
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
		struct jmem m = { 0 };
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
			sb_put(&vec, &m, sizeof m);
		else
			sb_put(&vec, &m.val, sizeof m.val);
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

static struct jv *jvalue(struct jparser *ps)
{
	jskip_ws(ps);
	if (ps->p >= ps->end)
		return jfail(ps, "unexpected end of input");
	if (++ps->depth > JSON_MAX_DEPTH)
		return jfail(ps, "nested too deeply");
	struct jv *v = NULL;
	switch (*ps->p) {
	case '{':
		v = jcontainer(ps, true);
		break;
	case '[':
		v = jcontainer(ps, false);
		break;
	case '"':
		ps->p++;
		v = jnew(ps, JT_STR);
		if (v && !jstring(ps, &v->s, &v->n))
			v = NULL;
		break;
	default:
		if (jlit(ps, "null"))
			v = jnew(ps, JT_NULL);
		else if (jlit(ps, "true"))
			v = jnew(ps, JT_TRUE);
		else if (jlit(ps, "false"))
			v = jnew(ps, JT_FALSE);
		else if (*ps->p == 'N' || *ps->p == 'I') {
			/* Python reads NaN and Infinity as floats. */
			const unsigned char *s = ps->p;
			if (jlit(ps, "NaN") || jlit(ps, "Infinity")) {
				v = jnew(ps, JT_NUM);
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
		size_t l = utf8_decode(s + i, n - i, false, &cp);
		if (!l)
			return i;
		i += l;
	}
	return (size_t)-1;
}

static struct jv *json_parse(const char *text, size_t len, struct arena *a, char *why)
{
	const unsigned char *s = (const unsigned char *)text;
	if (len >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) {     /* tolerate a BOM */
		s += 3;
		len -= 3;
	}
	size_t bad = utf8_invalid_at(s, len);
	if (bad != (size_t)-1) {
		whyf(why, "not valid JSON: invalid UTF-8 at byte %zu", bad);
		return NULL;
	}
	struct jparser ps = { .p = s, .start = s, .end = s + len, .a = a, .why = why };
	struct jv *v = jvalue(&ps);
	if (!v)
		return NULL;
	jskip_ws(&ps);
	if (ps.p != ps.end)
		return jfail(&ps, "extra data after the document");
	return v;
}

/* Last member named `key` (Python's dict keeps the last duplicate). */
static struct jv *jget(const struct jv *o, const char *key)
{
	if (!o || o->t != JT_OBJ)
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

static void py_put_cp(struct sbuf *b, uint32_t cp)
{
	static const char hex[] = "0123456789abcdef";
	char e[6] = { '\\', 'u' };
	switch (cp) {
	case '"': sb_puts(b, "\\\""); return;
	case '\\': sb_puts(b, "\\\\"); return;
	case '\n': sb_puts(b, "\\n"); return;
	case '\r': sb_puts(b, "\\r"); return;
	case '\t': sb_puts(b, "\\t"); return;
	case '\b': sb_puts(b, "\\b"); return;
	case '\f': sb_puts(b, "\\f"); return;
	}
	if (cp >= 0x20 && cp <= 0x7e) {
		sb_putc(b, (char)cp);
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
	sb_put(b, e, 6);
}

/*
 * A JSON string as Python writes str with ensure_ascii.  `fsbytes`: the
 * input is a file name (arbitrary bytes) and Python's surrogateescape
 * applies: each byte that does not start a valid UTF-8 sequence becomes
 * U+DC80..U+DCFF.  Otherwise the input is our WTF-8.
 */
static void py_put_str(struct sbuf *b, const char *s, size_t n, bool fsbytes)
{
	const unsigned char *u = (const unsigned char *)s;
	sb_putc(b, '"');
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t l = utf8_decode(u + i, n - i, !fsbytes, &cp);
		if (!l) {
			/* only reachable for fsbytes: our WTF-8 is always valid */
			cp = 0xdc00 + u[i];
			l = 1;
		}
		py_put_cp(b, cp);
		i += l;
	}
	sb_putc(b, '"');
}

struct memref {
	const struct jmem *m;
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
static bool py_dumps_sorted(struct sbuf *b, const struct jv *v)
{
	switch (v->t) {
	case JT_NULL: sb_puts(b, "null"); return true;
	case JT_TRUE: sb_puts(b, "true"); return true;
	case JT_FALSE: sb_puts(b, "false"); return true;
	case JT_STR: py_put_str(b, v->s, v->n, false); return true;
	case JT_NUM:
		if (strpbrk(v->s, ".eEIN")) {           /* a float in Python */
			char f[40];
			py_float_repr(strtod(v->s, NULL), f);
			sb_puts(b, f);
		} else {
			sb_puts(b, strcmp(v->s, "-0") ? v->s : "0");
		}
		return true;
	case JT_ARR:
		sb_putc(b, '[');
		for (size_t i = 0; i < v->len; i++) {
			if (i)
				sb_puts(b, ", ");
			if (!py_dumps_sorted(b, v->items[i]))
				return false;
		}
		sb_putc(b, ']');
		return true;
	case JT_OBJ:
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
	sb_putc(b, '{');
	bool first = true, ok = true;
	for (size_t i = 0; i < v->len && ok; i++) {
		if (i + 1 < v->len && r[i + 1].m->klen == r[i].m->klen &&
		    !memcmp(r[i + 1].m->key, r[i].m->key, r[i].m->klen))
			continue;
		if (!first)
			sb_puts(b, ", ");
		first = false;
		py_put_str(b, r[i].m->key, r[i].m->klen, false);
		sb_puts(b, ": ");
		ok = py_dumps_sorted(b, r[i].m->val);
	}
	sb_putc(b, '}');
	free(r);
	return ok;
}

vbfs_err vbfs_pyjson_dumps_sorted(const char *json, size_t len, char **out,
				  size_t *outlen, char why[VBFS_WHY_LEN])
{
	struct arena a = { 0 };
	struct sbuf b = { 0 };
	vbfs_err err = VBFS_ERR_FORMAT;
	struct jv *v = json_parse(json, len, &a, why);
	if (!v)
		goto out;
	if (!py_dumps_sorted(&b, v) || b.oom) {
		err = VBFS_ERR_NOMEM;
		whyf(why, "out of memory");
		goto out;
	}
	*out = b.p ? b.p : strdup("");
	*outlen = b.len;
	b.p = NULL;
	err = *out ? VBFS_OK : VBFS_ERR_NOMEM;
out:
	free(b.p);
	arena_free(&a);
	return err;
}

/* ---- small helpers ---------------------------------------------------------- */

static int hexdig(int c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Exactly 2*n hex digits in s[0..slen). */
static bool unhex_exact(const char *s, size_t slen, uint8_t *out, size_t n)
{
	if (slen != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int hi = hexdig((unsigned char)s[2 * i]), lo = hexdig((unsigned char)s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (hexdig((unsigned char)s[i]) < 0)
			return false;
	return n > 0;
}

static void sha256(const void *p, size_t n, uint8_t out[VBFS_DIGEST_LEN])
{
	unsigned len = VBFS_DIGEST_LEN;
	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

static vbfs_err read_whole(const char *path, char **out, size_t *outlen, char *why)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		whyf(why, "%s", strerror(errno));
		return VBFS_ERR_IO;
	}
	struct sbuf b = { 0 };
	char tmp[65536];
	for (;;) {
		ssize_t n = read(fd, tmp, sizeof tmp);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			whyf(why, "%s", strerror(errno));
			close(fd);
			free(b.p);
			return VBFS_ERR_IO;
		}
		if (n == 0)
			break;
		sb_put(&b, tmp, (size_t)n);
		if (b.oom || b.len > MANIFEST_MAX_BYTES) {
			whyf(why, b.oom ? "out of memory" : "larger than 2 GiB: not a manifest");
			close(fd);
			free(b.p);
			return b.oom ? VBFS_ERR_NOMEM : VBFS_ERR_FORMAT;
		}
	}
	close(fd);
	*out = b.p ? b.p : calloc(1, 1);
	*outlen = b.len;
	return *out ? VBFS_OK : VBFS_ERR_NOMEM;
}

/* ---- manifest entries ---------------------------------------------------------- */

struct mbuild {
	struct vbfs_manifest *m;
	size_t cap;
};

/*
 * Turn a manifest's path (raw bytes) into the store-relative form the index
 * uses: no leading "./", no empty or "." components (Python's Path and
 * `find .` differ only in those).  Absolute paths cannot be placed in the
 * store and are refused.
 */
static char *norm_path(const char *p, size_t n, const char **err)
{
	if (n == 0) {
		*err = "empty path";
		return NULL;
	}
	if (p[0] == '/') {
		*err = "absolute path (write the manifest relative to the backup's root)";
		return NULL;
	}
	if (memchr(p, '\0', n)) {
		*err = "NUL byte in path";
		return NULL;
	}
	char *out = malloc(n + 1);
	size_t o = 0;
	if (!out) {
		*err = "out of memory";
		return NULL;
	}
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && p[j] != '/')
			j++;
		size_t cl = j - i;
		if (cl && !(cl == 1 && p[i] == '.')) {
			if (o)
				out[o++] = '/';
			memcpy(out + o, p + i, cl);
			o += cl;
		}
		i = j + 1;
	}
	if (!o) {
		free(out);
		*err = "path names no file";
		return NULL;
	}
	out[o] = '\0';
	return out;
}

/* Our WTF-8 string back to file-name bytes: U+DC80..U+DCFF are the bytes
 * Python's surrogateescape stood in for. */
static bool wtf8_to_fs(const char *s, size_t n, char *out, size_t *outlen)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t l = utf8_decode(u + i, n - i, true, &cp);
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

static vbfs_err add_file(struct mbuild *mb, const char *path, size_t path_len,
			 int64_t size, const char *algorithm, const char *digest_hex,
			 size_t digest_len, const char *where, char *why)
{
	struct vbfs_manifest *m = mb->m;
	const char *err = NULL;
	char *np = norm_path(path, path_len, &err);
	if (!np) {
		whyf(why, "%s: %s", where, err);
		return VBFS_ERR_FORMAT;
	}
	if (m->nfiles == mb->cap) {
		size_t cap = mb->cap ? 2 * mb->cap : 64;
		struct vbfs_manifest_file *f = realloc(m->files, cap * sizeof *f);
		if (!f) {
			free(np);
			whyf(why, "out of memory");
			return VBFS_ERR_NOMEM;
		}
		m->files = f;
		mb->cap = cap;
	}
	struct vbfs_manifest_file *f = &m->files[m->nfiles];
	memset(f, 0, sizeof *f);
	f->path = np;
	f->size = size;
	snprintf(f->algorithm, sizeof f->algorithm, "%s", algorithm);
	bool sha = !strcasecmp(algorithm, "sha256") || !strcasecmp(algorithm, "sha-256");
	if (sha) {
		if (!unhex_exact(digest_hex, digest_len, f->sha256, VBFS_DIGEST_LEN)) {
			whyf(why, "%s: checksum is not a SHA-256 hex digest", where);
			free(np);
			return VBFS_ERR_FORMAT;
		}
		f->checkable = true;
	}
	m->nfiles++;
	return VBFS_OK;
}

static int file_cmp(const void *a, const void *b)
{
	const struct vbfs_manifest_file *x = a, *y = b;
	return strcmp(x->path, y->path);  /* paths hold no NUL: bytewise */
}

/* Sort for vbfs_manifest_find; a path listed twice must agree with itself. */
static vbfs_err finish_files(struct vbfs_manifest *m, char *why)
{
	if (m->nfiles)
		qsort(m->files, m->nfiles, sizeof *m->files, file_cmp);
	/* check every pair first, so an error leaves m whole for the caller */
	for (size_t i = 1; i < m->nfiles; i++) {
		const struct vbfs_manifest_file *g = &m->files[i - 1], *f = &m->files[i];
		if (strcmp(g->path, f->path))
			continue;
		if (g->checkable != f->checkable || g->size != f->size ||
		    memcmp(g->sha256, f->sha256, sizeof g->sha256)) {
			whyf(why, "'%s' is listed twice with different checksums", f->path);
			return VBFS_ERR_FORMAT;
		}
	}
	size_t o = 0;
	for (size_t i = 0; i < m->nfiles; i++) {
		if (o && !strcmp(m->files[o - 1].path, m->files[i].path)) {
			free(m->files[i].path);
			continue;
		}
		m->files[o++] = m->files[i];
	}
	m->nfiles = o;
	return VBFS_OK;
}

/* ---- format 1: the seed article's BackupChecksumManager JSON --------------------- */

static vbfs_err load_seed(struct mbuild *mb, const struct jv *top, char *why)
{
	const struct jv *files = jget(top, "files");
	const struct jv *alg = jget(top, "algorithm");
	const struct jv *mc = jget(top, "manifest_checksum");
	if (!files || files->t != JT_ARR) {
		whyf(why, "seed manifest: \"files\" is not a list");
		return VBFS_ERR_FORMAT;
	}
	if (alg && alg->t != JT_STR) {
		whyf(why, "seed manifest: \"algorithm\" is not a string");
		return VBFS_ERR_FORMAT;
	}
	if (!mc || mc->t != JT_STR) {
		whyf(why, "seed manifest: no manifest_checksum, so it cannot be trusted");
		return VBFS_ERR_FORMAT;
	}
	/* manifest_checksum = sha256(json.dumps(files, sort_keys=True).encode()) */
	struct sbuf b = { 0 };
	if (!py_dumps_sorted(&b, files) || b.oom) {
		free(b.p);
		whyf(why, "out of memory");
		return VBFS_ERR_NOMEM;
	}
	uint8_t want[VBFS_DIGEST_LEN], got[VBFS_DIGEST_LEN];
	sha256(b.p ? b.p : "", b.len, got);
	free(b.p);
	char gothex[VBFS_HEX_LEN];
	vbfs_hex(got, sizeof got, gothex);
	if (!unhex_exact(mc->s, mc->n, want, sizeof want) || memcmp(want, got, sizeof got)) {
		whyf(why, "manifest_checksum does not match its files list (recorded %.64s, "
		     "computed %s): the manifest was altered or damaged", mc->s, gothex);
		return VBFS_ERR_FORMAT;
	}
	const char *algorithm = alg ? alg->s : "sha256";
	for (size_t i = 0; i < files->len; i++) {
		const struct jv *f = files->items[i];
		const struct jv *p = jget(f, "path"), *c = jget(f, "checksum"), *s = jget(f, "size");
		char where[64];
		snprintf(where, sizeof where, "seed manifest files[%zu]", i);
		if (!p || p->t != JT_STR || !c || c->t != JT_STR) {
			whyf(why, "%s: needs a string \"path\" and \"checksum\"", where);
			return VBFS_ERR_FORMAT;
		}
		int64_t size = -1;
		if (s && s->t == JT_NUM && !strpbrk(s->s, ".eEIN-")) {
			errno = 0;
			long long v = strtoll(s->s, NULL, 10);
			if (!errno)
				size = v;
		}
		char *fs = malloc(p->n + 1);
		size_t fslen;
		if (!fs) {
			whyf(why, "out of memory");
			return VBFS_ERR_NOMEM;
		}
		if (!wtf8_to_fs(p->s, p->n, fs, &fslen)) {
			free(fs);
			whyf(why, "%s: path holds a character no file name can", where);
			return VBFS_ERR_FORMAT;
		}
		vbfs_err e = add_file(mb, fs, fslen, size, algorithm, c->s, c->n, where, why);
		free(fs);
		if (e)
			return e;
	}
	return VBFS_OK;
}

/* ---- format 3: PostgreSQL backup_manifest ------------------------------------------ */

/*
 * pg_verifybackup's rule: the file ends in a newline, has at least two
 * lines, and the checksum covers everything up to and including the
 * newline before the last line (the "Manifest-Checksum" line).
 */
static vbfs_err pg_check_checksum(const char *text, size_t len, const struct jv *top, char *why)
{
	const struct jv *mc = jget(top, "Manifest-Checksum");
	if (!mc || mc->t != JT_STR) {
		whyf(why, "backup_manifest has no Manifest-Checksum");
		return VBFS_ERR_FORMAT;
	}
	if (len == 0 || text[len - 1] != '\n') {
		whyf(why, "backup_manifest: last line not newline-terminated");
		return VBFS_ERR_FORMAT;
	}
	const char *nl = NULL;
	for (size_t i = len - 1; i-- > 0;)
		if (text[i] == '\n') {
			nl = text + i;
			break;
		}
	if (!nl) {
		whyf(why, "backup_manifest: expected at least 2 lines");
		return VBFS_ERR_FORMAT;
	}
	uint8_t want[VBFS_DIGEST_LEN], got[VBFS_DIGEST_LEN];
	char gothex[VBFS_HEX_LEN];
	sha256(text, (size_t)(nl + 1 - text), got);
	vbfs_hex(got, sizeof got, gothex);
	if (!unhex_exact(mc->s, mc->n, want, sizeof want) || memcmp(want, got, sizeof got)) {
		whyf(why, "backup_manifest: Manifest-Checksum does not match (recorded %.64s, "
		     "computed %s): the manifest was altered or damaged", mc->s, gothex);
		return VBFS_ERR_FORMAT;
	}
	return VBFS_OK;
}

static vbfs_err load_pg(struct mbuild *mb, const char *text, size_t len,
			const struct jv *top, char *why)
{
	const struct jv *ver = jget(top, "PostgreSQL-Backup-Manifest-Version");
	if (!ver || ver->t != JT_NUM || (strcmp(ver->s, "1") && strcmp(ver->s, "2"))) {
		whyf(why, "backup_manifest: unsupported PostgreSQL-Backup-Manifest-Version %s",
		     ver && ver->t == JT_NUM ? ver->s : "(not a number)");
		return VBFS_ERR_FORMAT;
	}
	vbfs_err e = pg_check_checksum(text, len, top, why);
	if (e)
		return e;
	const struct jv *files = jget(top, "Files");
	if (!files || files->t != JT_ARR) {
		whyf(why, "backup_manifest: \"Files\" is not a list");
		return VBFS_ERR_FORMAT;
	}
	for (size_t i = 0; i < files->len; i++) {
		const struct jv *f = files->items[i];
		const struct jv *p = jget(f, "Path"), *ep = jget(f, "Encoded-Path");
		const struct jv *sz = jget(f, "Size"), *alg = jget(f, "Checksum-Algorithm");
		const struct jv *ck = jget(f, "Checksum");
		char where[64];
		snprintf(where, sizeof where, "backup_manifest Files[%zu]", i);
		char *path = NULL;
		size_t plen = 0;
		if (p && p->t == JT_STR) {
			path = malloc(p->n + 1);
			if (path && !wtf8_to_fs(p->s, p->n, path, &plen)) {
				free(path);
				whyf(why, "%s: bad Path", where);
				return VBFS_ERR_FORMAT;
			}
		} else if (ep && ep->t == JT_STR) {
			plen = ep->n / 2;
			path = malloc(plen + 1);
			if (path && !unhex_exact(ep->s, ep->n, (uint8_t *)path, plen)) {
				free(path);
				whyf(why, "%s: Encoded-Path is not hex", where);
				return VBFS_ERR_FORMAT;
			}
		} else {
			whyf(why, "%s: needs \"Path\" or \"Encoded-Path\"", where);
			return VBFS_ERR_FORMAT;
		}
		if (!path) {
			whyf(why, "out of memory");
			return VBFS_ERR_NOMEM;
		}
		int64_t size = -1;
		if (sz && sz->t == JT_NUM && !strpbrk(sz->s, ".eEIN-")) {
			errno = 0;
			long long v = strtoll(sz->s, NULL, 10);
			if (!errno)
				size = v;
		}
		const char *algorithm = alg && alg->t == JT_STR ? alg->s : "NONE";
		const char *hex = ck && ck->t == JT_STR ? ck->s : "";
		size_t hexlen = ck && ck->t == JT_STR ? ck->n : 0;
		e = add_file(mb, path, plen, size, algorithm, hex, hexlen, where, why);
		free(path);
		if (e)
			return e;
	}
	return VBFS_OK;
}

/* ---- format 2: sha256sum output ----------------------------------------------------- */

static const char *algo_for_hexlen(size_t n)
{
	switch (n) {
	case 32: return "MD5";
	case 40: return "SHA1";
	case 56: return "SHA224";
	case 64: return "SHA256";
	case 96: return "SHA384";
	case 128: return "SHA512";
	}
	return NULL;
}

/* coreutils escapes names holding \, newline or CR and marks the line
 * with a leading backslash. */
static bool unescape_name(const char *s, size_t n, char *out, size_t *outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\') {
			out[o++] = s[i];
			continue;
		}
		if (++i == n)
			return false;
		switch (s[i]) {
		case '\\': out[o++] = '\\'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		default: return false;
		}
	}
	*outlen = o;
	return true;
}

static vbfs_err sum_line(struct mbuild *mb, const char *line, size_t n, size_t lineno, char *why)
{
	char where[64];
	snprintf(where, sizeof where, "line %zu", lineno);
	bool escaped = n && line[0] == '\\';
	if (escaped) {
		line++;
		n--;
	}
	const char *name, *hex, *algo;
	size_t name_len, hex_len;
	char tag[24];
	size_t h = 0;
	while (h < n && hexdig((unsigned char)line[h]) >= 0)
		h++;
	if (h < n && line[h] == ' ' && h + 1 < n && (line[h + 1] == ' ' || line[h + 1] == '*')) {
		/* GNU: HASH  name / HASH *name */
		hex = line;
		hex_len = h;
		algo = algo_for_hexlen(h);
		name = line + h + 2;
		name_len = n - h - 2;
	} else {
		/* BSD tag: ALGO (name) = HASH */
		const char *sp = memchr(line, ' ', n);
		const char *eq = NULL;
		for (size_t i = n; i >= 4; i--)
			if (!memcmp(line + i - 4, ") = ", 4)) {
				eq = line + i - 4;
				break;
			}
		if (!sp || sp + 1 >= line + n || sp[1] != '(' || !eq || eq < sp + 2) {
			whyf(why, "%s is not 'HASH  PATH' (sha256sum output), and the file "
			     "is neither a seed JSON manifest nor a PostgreSQL backup_manifest",
			     where);
			return VBFS_ERR_FORMAT;
		}
		snprintf(tag, sizeof tag, "%.*s", (int)(sp - line), line);
		algo = tag;
		name = sp + 2;
		name_len = (size_t)(eq - name);
		hex = eq + 4;
		hex_len = (size_t)(line + n - hex);
	}
	if (!algo || !all_hex(hex, hex_len)) {
		whyf(why, "%s: '%.*s' is not a hex digest of a known length", where,
		     (int)(hex_len > 140 ? 140 : hex_len), hex);
		return VBFS_ERR_FORMAT;
	}
	char *nm = malloc(name_len + 1);
	size_t nl = name_len;
	if (!nm) {
		whyf(why, "out of memory");
		return VBFS_ERR_NOMEM;
	}
	if (escaped) {
		if (!unescape_name(name, name_len, nm, &nl)) {
			free(nm);
			whyf(why, "%s: bad backslash escape in the file name", where);
			return VBFS_ERR_FORMAT;
		}
	} else {
		memcpy(nm, name, name_len);
	}
	vbfs_err e = add_file(mb, nm, nl, -1, algo, hex, hex_len, where, why);
	free(nm);
	return e;
}

static vbfs_err load_sums(struct mbuild *mb, const char *text, size_t len, char *why)
{
	size_t lineno = 0;
	for (size_t i = 0; i < len;) {
		const char *nlp = memchr(text + i, '\n', len - i);
		size_t end = nlp ? (size_t)(nlp - text) : len;
		size_t n = end - i;
		lineno++;
		if (n && text[i + n - 1] == '\r')
			n--;
		if (n && text[i] != '#') {
			vbfs_err e = sum_line(mb, text + i, n, lineno, why);
			if (e)
				return e;
		}
		i = end + 1;
	}
	if (mb->m->nfiles == 0) {
		whyf(why, "no checksum lines: not a manifest");
		return VBFS_ERR_FORMAT;
	}
	return VBFS_OK;
}

/* ---- public: load, find, free --------------------------------------------------------- */

vbfs_err vbfs_manifest_parse(const char *text, size_t len, struct vbfs_manifest **out,
			     char why[VBFS_WHY_LEN])
{
	struct vbfs_manifest *m = calloc(1, sizeof *m);
	struct mbuild mb = { .m = m };
	struct arena a = { 0 };
	vbfs_err e;
	if (!m) {
		whyf(why, "out of memory");
		return VBFS_ERR_NOMEM;
	}
	size_t i = 0;
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		i = 3;
	while (i < len && isspace((unsigned char)text[i]))
		i++;
	if (i < len && text[i] == '{') {
		struct jv *top = json_parse(text, len, &a, why);
		if (!top) {
			e = VBFS_ERR_FORMAT;
			goto out;
		}
		if (jget(top, "PostgreSQL-Backup-Manifest-Version")) {
			m->format = VBFS_MF_PGBACKUP;
			e = load_pg(&mb, text, len, top, why);
		} else if (jget(top, "files")) {
			m->format = VBFS_MF_SEED;
			e = load_seed(&mb, top, why);
		} else {
			whyf(why, "a JSON document that is neither a seed manifest (\"files\") "
			     "nor a PostgreSQL backup_manifest");
			e = VBFS_ERR_FORMAT;
		}
	} else {
		m->format = VBFS_MF_SHA256SUM;
		e = load_sums(&mb, text, len, why);
	}
	if (!e)
		e = finish_files(m, why);
out:
	arena_free(&a);
	if (e) {
		vbfs_manifest_free(m);
		return e;
	}
	*out = m;
	return VBFS_OK;
}

vbfs_err vbfs_manifest_load(const char *path, struct vbfs_manifest **out,
			    char why[VBFS_WHY_LEN])
{
	char *text, inner[VBFS_WHY_LEN] = "";
	size_t len;
	vbfs_err e = read_whole(path, &text, &len, inner);
	if (!e) {
		e = vbfs_manifest_parse(text, len, out, inner);
		free(text);
	}
	if (e)  /* name the manifest: the caller's message names the index */
		whyf(why, "manifest %s: %s", path, inner);
	return e;
}

struct vbfs_manifest_file *vbfs_manifest_find(struct vbfs_manifest *m,
					      const char *path, size_t path_len)
{
	size_t lo = 0, hi = m ? m->nfiles : 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *p = m->files[mid].path;
		size_t pl = strlen(p);
		int c = memcmp(p, path, pl < path_len ? pl : path_len);
		if (!c)
			c = pl < path_len ? -1 : pl > path_len;
		if (!c)
			return &m->files[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void vbfs_manifest_free(struct vbfs_manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nfiles; i++)
		free(m->files[i].path);
	free(m->files);
	free(m);
}

const char *vbfs_manifest_format_name(enum vbfs_manifest_format f)
{
	switch (f) {
	case VBFS_MF_SEED: return "seed-json";
	case VBFS_MF_SHA256SUM: return "sha256sum";
	case VBFS_MF_PGBACKUP: return "pg-backup-manifest";
	}
	return "unknown";
}

/* ---- exports ---------------------------------------------------------------------------- */

struct xfile {
	char *path;
	size_t path_len;
	uint64_t id, size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t flags;
	uint8_t digest[VBFS_DIGEST_LEN];
};

struct xcollect {
	struct xfile *v;
	size_t n, cap;
	bool oom;
};

static int xcollect_fn(void *ctx, const struct vbfs_entry *e)
{
	struct xcollect *c = ctx;
	if (e->type != VBFS_T_REG)
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 256;
		struct xfile *v = realloc(c->v, cap * sizeof *v);
		if (!v) {
			c->oom = true;
			return 1;
		}
		c->v = v;
		c->cap = cap;
	}
	struct xfile *x = &c->v[c->n];
	x->path = malloc(e->path_len + 1);
	if (!x->path) {
		c->oom = true;
		return 1;
	}
	memcpy(x->path, e->path, e->path_len);
	x->path[e->path_len] = '\0';
	x->path_len = e->path_len;
	x->id = e->id;
	x->size = e->size;
	x->mtime_sec = e->mtime_sec;
	x->mtime_nsec = e->mtime_nsec;
	x->flags = e->flags;
	memcpy(x->digest, e->file_digest, sizeof x->digest);
	c->n++;
	return 0;
}

static int xfile_cmp(const void *a, const void *b)
{
	const struct xfile *x = a, *y = b;
	size_t n = x->path_len < y->path_len ? x->path_len : y->path_len;
	int c = memcmp(x->path, y->path, n);
	return c ? c : (x->path_len > y->path_len) - (x->path_len < y->path_len);
}

/* datetime.isoformat(): microseconds only when non-zero. */
static void py_isoformat(const struct tm *tm, long usec, char out[40])
{
	int n = snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d", tm->tm_year + 1900,
			 tm->tm_mon + 1, tm->tm_mday, tm->tm_hour, tm->tm_min, tm->tm_sec);
	if (usec > 0 && usec < 1000000 && n > 0 && n < 32)
		snprintf(out + n, 40 - (size_t)n, ".%06d", (int)usec);
}

/* datetime.fromtimestamp(st_mtime).isoformat(): local time, and the float
 * st_mtime rounded half-even to microseconds as Python does. */
static void py_mtime(int64_t sec, uint32_t nsec, char out[40])
{
	double t = (double)sec + (double)nsec * 1e-9;
	/* no libm here: truncate, then round half to even by hand */
	double ip = (double)(int64_t)t;
	double x = (t - ip) * 1e6;
	long usec = (long)x;
	double rest = x - (double)usec;
	if (rest > 0.5 || (rest == 0.5 && (usec & 1)))
		usec++;
	else if (rest < -0.5 || (rest == -0.5 && (usec & 1)))
		usec--;
	time_t s = (time_t)ip;
	if (usec >= 1000000) {
		s++;
		usec -= 1000000;
	} else if (usec < 0) {
		s--;
		usec += 1000000;
	}
	struct tm tm;
	localtime_r(&s, &tm);
	py_isoformat(&tm, usec, out);
}

/* sha256sum's own escaping, so `sha256sum -c` reads the name back. */
static void sum_put_line(struct sbuf *b, const struct xfile *x)
{
	char hex[VBFS_HEX_LEN];
	bool esc = memchr(x->path, '\\', x->path_len) || memchr(x->path, '\n', x->path_len) ||
		   memchr(x->path, '\r', x->path_len);
	vbfs_hex(x->digest, VBFS_DIGEST_LEN, hex);
	if (esc)
		sb_putc(b, '\\');
	sb_puts(b, hex);
	sb_puts(b, "  ");
	for (size_t i = 0; i < x->path_len; i++) {
		char c = x->path[i];
		if (esc && c == '\\')
			sb_puts(b, "\\\\");
		else if (esc && c == '\n')
			sb_puts(b, "\\n");
		else if (esc && c == '\r')
			sb_puts(b, "\\r");
		else
			sb_putc(b, c);
	}
	sb_putc(b, '\n');
}

/* Flush the buffer when it grows: exports of big stores stream. */
static bool sb_flush(struct sbuf *b, FILE *out, bool force)
{
	if (b->oom)
		return false;
	if (b->len && (force || b->len >= (1u << 20))) {
		if (fwrite(b->p, 1, b->len, out) != b->len)
			return false;
		b->len = 0;
	}
	return true;
}

static vbfs_err export_sums(struct xcollect *c, FILE *out, char *why)
{
	struct sbuf b = { 0 };
	for (size_t i = 0; i < c->n; i++) {
		if (c->v[i].flags & (VBFS_F_DAMAGED | VBFS_F_UNREADABLE))
			continue;
		sum_put_line(&b, &c->v[i]);
		if (!sb_flush(&b, out, false))
			break;
	}
	bool ok = sb_flush(&b, out, true);
	free(b.p);
	if (!ok) {
		whyf(why, "write failed: %s", b.oom ? "out of memory" : strerror(errno));
		return b.oom ? VBFS_ERR_NOMEM : VBFS_ERR_IO;
	}
	return VBFS_OK;
}

/*
 * The seed's manifest as its generate_manifest writes it (json.dump with
 * indent=2, keys in its order), and manifest_checksum as
 * sha256(json.dumps(files, sort_keys=True)), so its Python accepts it.
 */
static vbfs_err export_seed(const struct vbfs_meta *meta, struct xcollect *c, FILE *out, char *why)
{
	struct sbuf b = { 0 }, canon = { 0 };
	char t[40], hex[VBFS_HEX_LEN];
	struct tm tm;
	time_t created = (time_t)(meta->updated ? meta->updated : meta->created);
	gmtime_r(&created, &tm);
	py_isoformat(&tm, 0, t);
	sb_puts(&b, "{\n  \"backup_id\": ");
	py_put_str(&b, meta->backup_id, strnlen(meta->backup_id, sizeof meta->backup_id), true);
	sb_puts(&b, ",\n  \"created_at\": \"");
	sb_puts(&b, t);
	sb_puts(&b, "\",\n  \"algorithm\": \"sha256\",\n  \"files\": [");
	sb_putc(&canon, '[');
	bool first = true;
	for (size_t i = 0; i < c->n; i++) {
		const struct xfile *x = &c->v[i];
		char size[24];
		if (x->flags & (VBFS_F_DAMAGED | VBFS_F_UNREADABLE))
			continue;
		vbfs_hex(x->digest, VBFS_DIGEST_LEN, hex);
		py_mtime(x->mtime_sec, x->mtime_nsec, t);
		snprintf(size, sizeof size, "%llu", (unsigned long long)x->size);
		/* pretty, in the seed's key order */
		sb_puts(&b, first ? "\n    {\n      \"path\": " : ",\n    {\n      \"path\": ");
		py_put_str(&b, x->path, x->path_len, true);
		sb_puts(&b, ",\n      \"checksum\": \"");
		sb_puts(&b, hex);
		sb_puts(&b, "\",\n      \"size\": ");
		sb_puts(&b, size);
		sb_puts(&b, ",\n      \"modified\": \"");
		sb_puts(&b, t);
		sb_puts(&b, "\"\n    }");
		/* canonical, as the checksum sees it */
		sb_puts(&canon, first ? "{\"checksum\": \"" : ", {\"checksum\": \"");
		sb_puts(&canon, hex);
		sb_puts(&canon, "\", \"modified\": \"");
		sb_puts(&canon, t);
		sb_puts(&canon, "\", \"path\": ");
		py_put_str(&canon, x->path, x->path_len, true);
		sb_puts(&canon, ", \"size\": ");
		sb_puts(&canon, size);
		sb_putc(&canon, '}');
		first = false;
	}
	sb_putc(&canon, ']');
	sb_puts(&b, first ? "],\n" : "\n  ],\n");
	vbfs_err err = VBFS_OK;
	if (b.oom || canon.oom) {
		whyf(why, "out of memory");
		err = VBFS_ERR_NOMEM;
		goto out;
	}
	uint8_t d[VBFS_DIGEST_LEN];
	sha256(canon.p, canon.len, d);
	vbfs_hex(d, sizeof d, hex);
	sb_puts(&b, "  \"manifest_checksum\": \"");
	sb_puts(&b, hex);
	sb_puts(&b, "\"\n}\n");
	if (!sb_flush(&b, out, true)) {
		whyf(why, "write failed: %s", b.oom ? "out of memory" : strerror(errno));
		err = b.oom ? VBFS_ERR_NOMEM : VBFS_ERR_IO;
	}
out:
	free(b.p);
	free(canon.p);
	return err;
}

/* The seed's BlockLevelVerifier list per file:
 * [{"block": n, "offset": o, "size": s, "checksum": hex}, ...]. */
static vbfs_err export_blocks(vbfs_index *idx, const struct vbfs_meta *meta,
			      struct xcollect *c, FILE *out, struct vbfs_export_result *r,
			      char *why)
{
	vbfs_txn *t;
	vbfs_err err = vbfs_txn_begin(idx, &t);
	if (err) {
		whyf(why, "cannot read the index: %s", vbfs_strerror(err));
		return err;
	}
	struct sbuf b = { 0 };
	char num[96], hex[VBFS_HEX_LEN];
	uint32_t bs = meta->block_size;
	sb_puts(&b, "{\n  \"backup_id\": ");
	py_put_str(&b, meta->backup_id, strnlen(meta->backup_id, sizeof meta->backup_id), true);
	snprintf(num, sizeof num, ",\n  \"block_size\": %u,\n", bs);
	sb_puts(&b, num);
	sb_puts(&b, "  \"algorithm\": \"sha256\",\n  \"files\": {");
	bool first = true;
	for (size_t i = 0; i < c->n && !err; i++) {
		const struct xfile *x = &c->v[i];
		if (x->flags & (VBFS_F_DAMAGED | VBFS_F_UNREADABLE))
			continue;
		sb_puts(&b, first ? "\n    " : ",\n    ");
		first = false;
		py_put_str(&b, x->path, x->path_len, true);
		sb_puts(&b, ": [");
		uint64_t nb = vbfs_nblocks(x->size, bs);
		for (uint64_t k = 0; k < nb; k++) {
			uint8_t d[VBFS_DIGEST_LEN];
			err = vbfs_txn_digest(t, x->id, k, d);
			if (err) {
				whyf(why, "%s: block %llu: %s", x->path, (unsigned long long)k,
				     vbfs_strerror(err));
				break;
			}
			vbfs_hex(d, sizeof d, hex);
			snprintf(num, sizeof num, "{\"block\": %llu, \"offset\": %llu, \"size\": %u, ",
				 (unsigned long long)k, (unsigned long long)(k * bs),
				 vbfs_block_len(x->size, bs, k));
			sb_puts(&b, k ? ",\n      " : "\n      ");
			sb_puts(&b, num);
			sb_puts(&b, "\"checksum\": \"");
			sb_puts(&b, hex);
			sb_puts(&b, "\"}");
			r->blocks++;
			if (!sb_flush(&b, out, false)) {
				err = VBFS_ERR_IO;
				whyf(why, "write failed: %s", b.oom ? "out of memory" : strerror(errno));
				break;
			}
		}
		sb_puts(&b, nb ? "\n    ]" : "]");
	}
	vbfs_txn_end(t);
	if (!err) {
		sb_puts(&b, first ? "}\n}\n" : "\n  }\n}\n");
		if (!sb_flush(&b, out, true)) {
			err = b.oom ? VBFS_ERR_NOMEM : VBFS_ERR_IO;
			whyf(why, "write failed: %s", b.oom ? "out of memory" : strerror(errno));
		}
	}
	free(b.p);
	return err;
}

vbfs_err vbfs_export(vbfs_index *idx, enum vbfs_export_format f, FILE *out,
		     vbfs_export_skip_fn skip, void *skip_ctx,
		     struct vbfs_export_result *r, char why[VBFS_WHY_LEN])
{
	struct vbfs_export_result dummy;
	struct xcollect c = { 0 };
	const struct vbfs_meta *meta = vbfs_index_meta(idx);
	vbfs_txn *t;
	if (!r)
		r = &dummy;
	memset(r, 0, sizeof *r);
	vbfs_err err = vbfs_txn_begin(idx, &t);
	if (err) {
		whyf(why, "cannot read the index: %s", vbfs_strerror(err));
		return err;
	}
	err = vbfs_txn_foreach(t, xcollect_fn, &c);
	vbfs_txn_end(t);
	if (!err && c.oom)
		err = VBFS_ERR_NOMEM;
	if (err) {
		whyf(why, "cannot read the index: %s", vbfs_strerror(err));
		goto out;
	}
	if (c.n)
		qsort(c.v, c.n, sizeof *c.v, xfile_cmp);
	for (size_t i = 0; i < c.n; i++) {
		const struct xfile *x = &c.v[i];
		if (x->flags & (VBFS_F_DAMAGED | VBFS_F_UNREADABLE)) {
			/* exporting these would certify damage as the backup */
			r->skipped++;
			if (skip)
				skip(skip_ctx, x->path, x->flags);
			continue;
		}
		r->files++;
		if (f != VBFS_EXPORT_BLOCKS && !(x->flags & VBFS_F_FILE_DIGEST)) {
			whyf(why, "index has no whole-file digests: rebuild with --file-digests");
			err = VBFS_ERR_NOTFOUND;
			goto out;
		}
	}
	switch (f) {
	case VBFS_EXPORT_MANIFEST:
		err = export_seed(meta, &c, out, why);
		break;
	case VBFS_EXPORT_SHA256SUM:
		err = export_sums(&c, out, why);
		break;
	case VBFS_EXPORT_BLOCKS:
		err = export_blocks(idx, meta, &c, out, r, why);
		break;
	default:
		whyf(why, "unknown export format");
		err = VBFS_ERR_USAGE;
	}
out:
	for (size_t i = 0; i < c.n; i++)
		free(c.v[i].path);
	free(c.v);
	return err;
}
