/*
 * test_formats.c - manifest loaders and the Python-exact JSON writer.
 *
 * The seed manifest's checksum is only right if our json.dumps equals
 * Python's byte for byte, so this test asks the real python3 (when present)
 * for the expected bytes instead of hard-coding what we think it prints.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "formats.h"

static char tmpdir[512];
static int have_python;

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, n, f) != n) {
		perror(path);
		exit(2);
	}
	fclose(f);
}

static char *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t cap = 0, len = 0;
	for (;;) {
		if (len + 65536 > cap) {
			cap = cap ? 2 * cap : 65536 * 2;
			buf = realloc(buf, cap);
		}
		size_t r = fread(buf + len, 1, cap - len - 1, f);
		len += r;
		if (r == 0)
			break;
	}
	fclose(f);
	buf[len] = '\0';
	*n = len;
	return buf;
}

static int run(const char *cmd)
{
	int rc = system(cmd);
	return rc == -1 ? -1 : WEXITSTATUS(rc);
}

static char *path_in(const char *name)
{
	static char buf[4][1024];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
	return buf[k];
}

/*
 * Python's json.dumps(json.load(f), sort_keys=True) vs ours.  All documents
 * go to Python in one run (interpreter start-up dominates otherwise):
 * doc<i>.json in, doc<i>.py out, or doc<i>.err when Python refuses it.
 */
static void check_dumps_vs_python(const char **labels, const char **docs, size_t n)
{
	char cmd[4096], name[64];
	for (size_t i = 0; i < n; i++) {
		snprintf(name, sizeof name, "doc%zu.json", i);
		write_file(path_in(name), docs[i], strlen(docs[i]));
	}
	snprintf(cmd, sizeof cmd,
		 "python3 -c 'import json,sys\n"
		 "for i in range(int(sys.argv[2])):\n"
		 "  p = \"%%s/doc%%d\" %% (sys.argv[1], i)\n"
		 "  try:\n"
		 "    out = json.dumps(json.load(open(p + \".json\")), sort_keys=True)\n"
		 "    open(p + \".py\", \"w\").write(out)\n"
		 "  except Exception:\n"
		 "    open(p + \".err\", \"w\").close()\n' %s %zu",
		 tmpdir, n);
	CHECK(run(cmd) == 0);
	for (size_t i = 0; i < n; i++) {
		char why[VBFS_WHY_LEN] = "";
		char *ours = NULL;
		size_t on = 0, pn = 0;
		vbfs_err e = vbfs_pyjson_dumps_sorted(docs[i], strlen(docs[i]), &ours, &on, why);
		snprintf(name, sizeof name, "doc%zu.err", i);
		if (access(path_in(name), F_OK) == 0) {
			/* Python refuses it: so must we. */
			CHECK_MSG(e == VBFS_ERR_FORMAT, "%s: python refused, we said %d", labels[i], e);
			free(ours);
			continue;
		}
		snprintf(name, sizeof name, "doc%zu.py", i);
		char *py = read_file(path_in(name), &pn);
		CHECK_MSG(py != NULL, "%s: no python output", labels[i]);
		CHECK_MSG(e == VBFS_OK, "%s: %s", labels[i], why);
		if (py && e == VBFS_OK)
			CHECK_MSG(on == pn && !memcmp(ours, py, pn),
				  "%s:\n  python: %s\n  ours:   %s", labels[i], py, ours);
		free(py);
		free(ours);
	}
}

static void test_pyjson(void)
{
	static const char *docs[] = {
		"{\"b\": 1, \"a\": [1, 2.5, -0, -0.0, 1e400, 1E-7, 0.0001, 0.00001, 123456789012345678901234567890]}",
		"[1.0, 10.0, 1e16, 1e15, 1234567890123456.0, 12345678901234567.0, 0.1, 0.3, 2.5e-300, -1.5e300, 5e-324]",
		"{\"path\": \"caf\\u00e9/\\u65e5\\u672c/\\ud83d\\ude00 x\", \"raw\": \"ca\xc3\xa9 \xf0\x9f\x98\x80\"}",
		"{\"lone\": \"\\udcff\\udc80abc\\ud800\", \"ctl\": \"\\u0001\\u001f\\u007f\\b\\f\\n\\r\\t\\\"\\\\/\"}",
		"{\"z\": 1, \"a\": 2, \"z\": 3, \"\\u00e9\": 4, \"e\": 5, \"\\ud83d\\ude00\": 6, \"\\uffff\": 7}",
		"{\"x\": [NaN, Infinity, -Infinity, true, false, null, {}, [], \"\"]}",
		"  [ {\"a\" : { \"c\":1 , \"b\" : [ ] } } ]  \n",
		"[1, 2,]", "{\"a\" 1}", "[01]", "[1.]", "[.5]", "[\"\\x\"]", "[\"tab\there\"]",
		"{\"a\": 1} x", "", "[", "\"\\ud83d\"", "[-]", "[1e]", "[1e+]", "[-0.0e-0]",
		"[\"\xff\"]", "[\"\xed\xa0\x80\"]", "[\"\xc0\xaf\"]",
	};
	enum { NDOCS = sizeof docs / sizeof docs[0] };
	const char *all[NDOCS + 1], *labels[NDOCS + 1];
	char names[NDOCS][16];
	for (size_t i = 0; i < NDOCS; i++) {
		snprintf(names[i], sizeof names[i], "doc %zu", i);
		labels[i] = names[i];
		all[i] = docs[i];
	}
	/* Random doubles through Python's repr: printed both shortest and long. */
	srand(7);
	size_t cap = 200000, n = 0;
	char *big = malloc(cap);
	n += (size_t)snprintf(big + n, cap - n, "[");
	for (int i = 0; i < 3000; i++) {
		union { uint64_t u; double d; } v;
		v.u = (uint64_t)rand() << 42 ^ (uint64_t)rand() << 21 ^ (uint64_t)rand();
		if (i % 3 == 0)
			v.d = (double)rand() / (rand() + 1) * (i % 2 ? 1e-7 : 1e12);
		if (v.d != v.d || v.d - v.d != 0)
			v.d = i;
		n += (size_t)snprintf(big + n, cap - n, "%s%.17g", i ? ", " : "", v.d);
		if (!strpbrk(big + n - 3, ".e"))   /* keep it a float in Python */
			n += (size_t)snprintf(big + n, cap - n, ".5");
	}
	snprintf(big + n, cap - n, "]");
	all[NDOCS] = big;
	labels[NDOCS] = "random floats";
	check_dumps_vs_python(labels, all, NDOCS + 1);
	free(big);
}

static void expect_refused(const char *label, const char *text, const char *why_has)
{
	struct vbfs_manifest *m = NULL;
	char why[VBFS_WHY_LEN] = "";
	vbfs_err e = vbfs_manifest_parse(text, strlen(text), &m, why);
	CHECK_MSG(e == VBFS_ERR_FORMAT && m == NULL, "%s: got %d", label, e);
	CHECK_MSG(!why_has || strstr(why, why_has), "%s: why='%s' lacks '%s'", label, why, why_has);
	vbfs_manifest_free(m);
}

static const char *HEX_A = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";

/* A seed manifest written by the seed article's own code path. */
static void test_seed(void)
{
	if (!have_python)
		return;
	/* generate_manifest's tail, verbatim: json.dumps(files, sort_keys=True). */
	const char *py =
		"import hashlib, json, sys\n"
		"files = [\n"
		" {'path': 'db/app.dump', 'checksum': 'ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb', 'size': 1, 'modified': '2026-11-26T14:00:00.123456'},\n"
		" {'path': 'caf\\u00e9/\\U0001f600', 'checksum': '3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d', 'size': 1, 'modified': '2026-11-26T14:00:00'},\n"
		" {'path': 'raw\\udcff', 'checksum': '2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6', 'size': 2**40, 'modified': '2026-11-26T14:00:00'},\n"
		" {'path': 'a\\\\b\\n\"q\"', 'checksum': '18AC3E7343F016890C510E93F935261169D9E3F565436429830FAF0934F4F8E4', 'size': 0, 'modified': 'x'},\n"
		"]\n"
		"m = {'backup_id': 'b1', 'created_at': '2026-11-26T14:00:00', 'algorithm': 'sha256', 'files': files}\n"
		"m['manifest_checksum'] = hashlib.sha256(json.dumps(m['files'], sort_keys=True).encode()).hexdigest()\n"
		"json.dump(m, open(sys.argv[1], 'w'), indent=2)\n";
	char cmd[4096];
	write_file(path_in("gen.py"), py, strlen(py));
	snprintf(cmd, sizeof cmd, "python3 %s %s", path_in("gen.py"), path_in("seed.json"));
	CHECK(run(cmd) == 0);

	struct vbfs_manifest *m = NULL;
	char why[VBFS_WHY_LEN] = "";
	vbfs_err e = vbfs_manifest_load(path_in("seed.json"), &m, why);
	CHECK_MSG(e == VBFS_OK, "seed load: %s", why);
	if (e)
		return;
	CHECK(m->format == VBFS_MF_SEED);
	CHECK(m->nfiles == 4);
	/* sorted bytewise: "a\\b..." < "caf..." < "db/..." < "raw\xff" */
	CHECK(!strcmp(m->files[0].path, "a\\b\n\"q\""));
	CHECK(!strcmp(m->files[1].path, "caf\xc3\xa9/\xf0\x9f\x98\x80"));
	CHECK(!strcmp(m->files[2].path, "db/app.dump"));
	CHECK(!strcmp(m->files[3].path, "raw\xff"));   /* surrogateescape undone */
	CHECK(m->files[3].size == (int64_t)1 << 40);
	CHECK(m->files[2].checkable && m->files[2].sha256[0] == 0xca && m->files[2].sha256[31] == 0xbb);
	CHECK(m->files[0].checkable && m->files[0].sha256[0] == 0x18);   /* upper-case hex */
	CHECK(!strcmp(m->files[2].algorithm, "sha256"));
	struct vbfs_manifest_file *f = vbfs_manifest_find(m, "db/app.dumpXX", 11);
	CHECK(f == &m->files[2]);
	CHECK(vbfs_manifest_find(m, "db/app.dum", 10) == NULL);
	CHECK(vbfs_manifest_find(m, "zzz", 3) == NULL);
	CHECK(!strcmp(vbfs_manifest_format_name(m->format), "seed-json"));
	vbfs_manifest_free(m);

	/* Tampering: change one size, keep the recorded checksum. */
	size_t n = 0;
	char *text = read_file(path_in("seed.json"), &n);
	char *p = text ? strstr(text, "\"size\": 1,") : NULL;
	CHECK(p != NULL);
	if (p) {
		p[8] = '2';
		expect_refused("tampered seed", text, "manifest_checksum does not match");
	}
	free(text);

	/* Another algorithm: loaded, but not checkable. */
	const char *md5 =
		"import hashlib, json, sys\n"
		"files = [{'path': 'x', 'checksum': '0cc175b9c0f1b6a831c399e269772661', 'size': 1, 'modified': 'y'}]\n"
		"m = {'backup_id': 'b', 'created_at': 'c', 'algorithm': 'md5', 'files': files,\n"
		"     'manifest_checksum': hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()}\n"
		"json.dump(m, open(sys.argv[1], 'w'))\n";
	write_file(path_in("gen2.py"), md5, strlen(md5));
	snprintf(cmd, sizeof cmd, "python3 %s %s", path_in("gen2.py"), path_in("md5.json"));
	CHECK(run(cmd) == 0);
	e = vbfs_manifest_load(path_in("md5.json"), &m, why);
	CHECK_MSG(e == VBFS_OK, "md5 seed: %s", why);
	if (!e) {
		CHECK(m->nfiles == 1 && !m->files[0].checkable && !strcmp(m->files[0].algorithm, "md5"));
		vbfs_manifest_free(m);
	}
}

static void test_seed_errors(void)
{
	expect_refused("no checksum", "{\"files\": []}", "no manifest_checksum");
	expect_refused("files not list", "{\"files\": 3, \"manifest_checksum\": \"x\"}", "not a list");
	expect_refused("neither", "{\"x\": 1}", "neither");
	expect_refused("bad json", "{\"files\": [", "not valid JSON");
	/* sha256("[]") */
	expect_refused("abs path",
		"{\"files\": [{\"path\": \"/etc/x\", \"checksum\": \"00\"}], \"manifest_checksum\": "
		"\"0000000000000000000000000000000000000000000000000000000000000000\"}",
		"manifest_checksum does not match");
	struct vbfs_manifest *m = NULL;
	char why[VBFS_WHY_LEN];
	const char *empty = "{\"files\": [], \"manifest_checksum\": "
		"\"4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945\"}";
	vbfs_err e = vbfs_manifest_parse(empty, strlen(empty), &m, why);
	CHECK_MSG(e == VBFS_OK && m && m->nfiles == 0, "empty seed: %s", why);
	vbfs_manifest_free(m);
}

/* Real sha256sum output for awkward names, in every form coreutils writes. */
static void test_sha256sum(void)
{
	char cmd[4096];
	char *d = path_in("sums");
	snprintf(cmd, sizeof cmd,
		 "set -e; rm -rf %s; mkdir -p %s/sub; cd %s; printf a > 'x\ny'; printf b > 'b\\c'; "
		 "printf c > \"$(printf 'r\\rz')\"; printf d > plain; printf e > sub/f; "
		 "{ echo '# comment'; sha256sum [!s]* sub/f; sha256sum -b plain | sed 's/plain/.\\/sub\\/..\\/plain2/'; "
		 "sha256sum --tag sub/f | sed 's/sub/.\\/sub2/'; printf '\\n'; } > ../sums.txt",
		 d, d, d);
	if (run(cmd) != 0) {
		fprintf(stderr, "sha256sum not usable; skipping\n");
		return;
	}
	struct vbfs_manifest *m = NULL;
	char why[VBFS_WHY_LEN] = "";
	vbfs_err e = vbfs_manifest_load(path_in("sums.txt"), &m, why);
	CHECK_MSG(e == VBFS_OK, "sums: %s", why);
	if (e)
		return;
	CHECK(m->format == VBFS_MF_SHA256SUM);
	CHECK_MSG(m->nfiles == 7, "nfiles %zu", m->nfiles);
	const char *want[] = { "b\\c", "plain", "r\rz", "sub/../plain2", "sub/f", "sub2/f", "x\ny" };
	for (size_t i = 0; i < 7 && i < m->nfiles; i++)
		CHECK_MSG(!strcmp(m->files[i].path, want[i]), "file %zu: '%s'", i, m->files[i].path);
	struct vbfs_manifest_file *f = vbfs_manifest_find(m, "x\ny", 3);
	CHECK(f && f->checkable && f->size == -1 && !strcmp(f->algorithm, "SHA256"));
	if (f) {
		char hex[VBFS_HEX_LEN];
		vbfs_hex(f->sha256, VBFS_DIGEST_LEN, hex);
		CHECK(!strcmp(hex, HEX_A));
	}
	vbfs_manifest_free(m);

	/* CRLF, md5-length digests (loaded, not checkable) */
	const char *crlf = "0cc175b9c0f1b6a831c399e269772661  a\r\n";
	e = vbfs_manifest_parse(crlf, strlen(crlf), &m, why);
	CHECK_MSG(e == VBFS_OK, "crlf: %s", why);
	if (!e) {
		CHECK(m->nfiles == 1 && !strcmp(m->files[0].path, "a") && !m->files[0].checkable &&
		      !strcmp(m->files[0].algorithm, "MD5"));
		vbfs_manifest_free(m);
	}
	expect_refused("garbage", "hello world\n", "line 1");
	expect_refused("short hash", "abc  x\n", "line 1");
	expect_refused("bad escape", "\\ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb  a\\qb\n",
		       "escape");
	expect_refused("absolute", "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb  /x\n",
		       "absolute");
	expect_refused("empty", "# nothing\n\n", "no checksum lines");
	expect_refused("conflict",
		"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb  a\n"
		"3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d  ./a\n", "twice");
	/* found by fuzz_manifest: a merged duplicate before a conflicting one
	 * used to leave two slots owning one path (double free) */
	expect_refused("conflict after a merge",
		"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb  a\n"
		"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb  ./a\n"
		"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb  b\n"
		"3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d  b\n", "twice");
}

/* A backup_manifest shaped like pg_basebackup's, with its checksum rule. */
static void test_pg(void)
{
	if (!have_python)
		return;
	const char *py =
		"import hashlib, sys\n"
		"body = ('{ \"PostgreSQL-Backup-Manifest-Version\": 1,\\n\"Files\": [\\n'\n"
		" '{ \"Path\": \"backup_label\", \"Size\": 1, \"Last-Modified\": \"2026-11-26 14:00:00 GMT\", \"Checksum-Algorithm\": \"SHA256\", \"Checksum\": \"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb\" },\\n'\n"
		" '{ \"Encoded-Path\": \"6261645cff\", \"Size\": 1, \"Last-Modified\": \"2026-11-26 14:00:00 GMT\", \"Checksum-Algorithm\": \"SHA256\", \"Checksum\": \"3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d\" },\\n'\n"
		" '{ \"Path\": \"base/1/1259\", \"Size\": 8192, \"Last-Modified\": \"2026-11-26 14:00:00 GMT\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"0badf00d\" },\\n'\n"
		" '{ \"Path\": \"global/pg_control\", \"Size\": 8192, \"Last-Modified\": \"2026-11-26 14:00:00 GMT\" }\\n'\n"
		" '],\\n\"WAL-Ranges\": [\\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": \"0/2000100\" }\\n],\\n')\n"
		"open(sys.argv[1], 'w').write(body + '\"Manifest-Checksum\": \"' + hashlib.sha256(body.encode()).hexdigest() + '\"}\\n')\n";
	char cmd[4096];
	write_file(path_in("genpg.py"), py, strlen(py));
	snprintf(cmd, sizeof cmd, "python3 %s %s", path_in("genpg.py"), path_in("backup_manifest"));
	CHECK(run(cmd) == 0);
	struct vbfs_manifest *m = NULL;
	char why[VBFS_WHY_LEN] = "";
	vbfs_err e = vbfs_manifest_load(path_in("backup_manifest"), &m, why);
	CHECK_MSG(e == VBFS_OK, "pg: %s", why);
	if (!e) {
		CHECK(m->format == VBFS_MF_PGBACKUP && m->nfiles == 4);
		CHECK(!strcmp(m->files[0].path, "backup_label") && m->files[0].checkable && m->files[0].size == 1);
		CHECK(!strcmp(m->files[1].path, "bad\\\xff") && m->files[1].checkable);
		CHECK(!strcmp(m->files[2].path, "base/1/1259") && !m->files[2].checkable &&
		      !strcmp(m->files[2].algorithm, "CRC32C") && m->files[2].size == 8192);
		CHECK(!strcmp(m->files[3].path, "global/pg_control") && !m->files[3].checkable &&
		      !strcmp(m->files[3].algorithm, "NONE"));
		vbfs_manifest_free(m);
	}
	size_t n = 0;
	char *text = read_file(path_in("backup_manifest"), &n);
	if (!text || n == 0) {
		CHECK(text != NULL);
		free(text);
		return;
	}
	char *p = strstr(text, "8192");
	if (p) {
		p[0] = '9';
		expect_refused("tampered pg", text, "Manifest-Checksum does not match");
		p[0] = '8';
	}
	text[n - 1] = ' ';
	expect_refused("pg no final newline", text, "newline");
	free(text);
	expect_refused("pg version", "{\"PostgreSQL-Backup-Manifest-Version\": 9}\n", "Version 9");
}

/* Whatever the bytes, a clean refusal or a manifest: never a crash. */
static void test_garbage(void)
{
	srand(11);
	static const char alphabet[] = "{}[]\",:0123456789.eE-+ \\uNaIfyltrs\n*/\xc3\xa9\xff";
	char buf[256];
	const char *prefixes[] = { "{\"files\": [", "{\"PostgreSQL-Backup-Manifest-Version\": 1, \"Files\": [",
				   "\\", "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb " };
	for (int i = 0; i < 5000; i++) {
		size_t k = (size_t)(rand() % 4), pl = strlen(prefixes[k]);
		size_t n = pl + (size_t)(rand() % 64);
		memcpy(buf, prefixes[k], pl);
		for (size_t j = pl; j < n; j++)
			buf[j] = alphabet[rand() % (sizeof alphabet - 1)];
		struct vbfs_manifest *m = NULL;
		char why[VBFS_WHY_LEN];
		vbfs_err e = vbfs_manifest_parse(buf, n, &m, why);
		CHECK(e == VBFS_OK || e == VBFS_ERR_FORMAT);
		vbfs_manifest_free(m);
	}
	/* deep nesting */
	static char deep[20011];
	memcpy(deep, "{\"files\": ", 10);
	memset(deep + 10, '[', 20000);
	expect_refused("deep", deep, "nested too deeply");
}

int main(void)
{
	const char *base = getenv("VBFS_TEST_TMP");
	if (!base)
		base = "/tmp";
	mkdir(base, 0700);
	snprintf(tmpdir, sizeof tmpdir, "%s/test_formats.XXXXXX", base);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	have_python = run("python3 -c 'import json, hashlib' >/dev/null 2>&1") == 0;
	if (!have_python)
		fprintf(stderr, "python3 not found: Python comparisons skipped\n");
	if (have_python)
		test_pyjson();
	test_seed();
	test_seed_errors();
	test_sha256sum();
	test_pg();
	test_garbage();
	char cmd[1100];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	run(cmd);
	return check_done("test_formats");
}
