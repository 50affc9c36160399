/*
 * test_shard.c - the shard split (shard.c), the resume state (resume.c)
 * and verify reports (report.c): every block in exactly one shard for
 * N = 1..16, bytes balanced, bad K/N refused; a state that survives a
 * kill -9 and refuses another index; signed reports and the strict merge.
 */
#include <signal.h>
#include <sys/wait.h>
#include "check.h"
#include "report.h"
#include "resume.h"
#include "shard.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
	return rng;
}

/* A layout: file sizes laid end to end, as the scrub lays them. */
struct layout { size_t n; uint64_t *size, *pos, total; };

static void make_layout(struct layout *l, size_t n, uint64_t max_size, unsigned zero_every)
{
	l->n = n;
	l->size = calloc(n, sizeof *l->size);
	l->pos = calloc(n, sizeof *l->pos);
	l->total = 0;
	for (size_t i = 0; i < n; i++) {
		l->size[i] = zero_every && i % zero_every == 0 ? 0 : next_rand() % max_size + 1;
		l->pos[i] = l->total;
		l->total += l->size[i];
	}
}

/* Every block of every file in exactly one of N shards, and the one whose
 * range holds its first byte; whole-entry findings in exactly one shard. */
static void check_exactly_once(const struct layout *l, uint32_t bs, uint32_t n)
{
	uint64_t blocks = 0, counted = 0, bad = 0, leads = 0;
	for (size_t i = 0; i < l->n; i++) {
		uint64_t nb = vbfs_nblocks(l->size[i], bs);
		uint8_t *seen = calloc(nb ? nb : 1, 1);
		blocks += nb;
		for (uint32_t k = 0; k < n; k++) {
			uint64_t first, end;
			vbfs_shard_blocks((struct vbfs_shard){ k, n }, l->total, l->pos[i], nb, bs, &first, &end);
			for (uint64_t b = first; b < end; b++) {
				seen[b]++;
				counted++;
				if (vbfs_shard_owner(l->pos[i] + b * bs, l->total, n) != k)
					bad++;
			}
			leads += vbfs_shard_owner(l->pos[i], l->total, n) == k;
			/* The shard that reports the file as a whole holds its block 0. */
			if (nb && first == 0 && end > 0 && vbfs_shard_owner(l->pos[i], l->total, n) != k)
				bad++;
		}
		for (uint64_t b = 0; b < nb; b++)
			if (seen[b] != 1)
				bad++;
		free(seen);
	}
	CHECK_EQ(counted, blocks);
	CHECK_EQ(leads, l->n);
	CHECK_MSG(bad == 0, "N=%u bs=%u: %llu blocks not in exactly their one shard", n, bs,
		  (unsigned long long)bad);
}

/* Bytes per shard within `tolerance` of total/N. */
static void check_balance(const struct layout *l, uint32_t bs, uint32_t n, double tolerance)
{
	uint64_t *bytes = calloc(n, sizeof *bytes);
	for (size_t i = 0; i < l->n; i++) {
		uint64_t nb = vbfs_nblocks(l->size[i], bs);
		for (uint64_t b = 0; b < nb; b++)
			bytes[vbfs_shard_owner(l->pos[i] + b * bs, l->total, n)] +=
				vbfs_block_len(l->size[i], bs, b);
	}
	double fair = (double)l->total / n, worst = 0;
	uint64_t sum = 0;
	for (uint32_t k = 0; k < n; k++) {
		double off = bytes[k] > fair ? bytes[k] - fair : fair - bytes[k];
		if (off / fair > worst)
			worst = off / fair;
		sum += bytes[k];
	}
	CHECK_EQ(sum, l->total);
	CHECK_MSG(worst <= tolerance, "N=%u: a shard is %.2f%% off total/N", n, worst * 100);
	free(bytes);
}

static void test_split(void)
{
	struct layout small, gib;
	make_layout(&small, 300, 5u << 20, 7);          /* empty files every 7th */
	/* ~1 GiB in 10,000 files (as the integration test's store), 1 MiB blocks. */
	make_layout(&gib, 10000, 214748, 0);
	for (uint32_t n = 1; n <= 16; n++) {
		check_exactly_once(&small, 4096, n);
		check_exactly_once(&small, 1u << 20, n);
		check_exactly_once(&gib, 1u << 20, n);
		check_balance(&gib, 1u << 20, n, 0.05);
	}
	/* One big file split at block boundaries: each shard within a block. */
	struct layout one = { 1, (uint64_t[]){ 1ull << 30 }, (uint64_t[]){ 0 }, 1ull << 30 };
	for (uint32_t n = 1; n <= 16; n++) {
		check_exactly_once(&one, 1u << 20, n);
		check_balance(&one, 1u << 20, n, (double)(1u << 20) / ((1ull << 30) / n));
	}
	/* Nothing to split: every entry goes to the last shard. */
	CHECK_EQ(vbfs_shard_owner(0, 0, 5), 4);
	/* 100 TiB in 100,000 shards: exact, monotone, no overflow. */
	uint64_t total = 100ull << 40, prev = 0;
	bool mono = true;
	for (uint32_t k = 0; k <= VBFS_SHARDS_MAX; k++) {
		uint64_t b = vbfs_shard_begin(total, k, VBFS_SHARDS_MAX);
		mono &= b >= prev && (k == VBFS_SHARDS_MAX || vbfs_shard_owner(b, total, VBFS_SHARDS_MAX) == k);
		prev = b;
	}
	CHECK(mono);
	CHECK_EQ(vbfs_shard_begin(total, VBFS_SHARDS_MAX, VBFS_SHARDS_MAX), total);
	free(small.size); free(small.pos); free(gib.size); free(gib.pos);
}

static void test_parse(void)
{
	static const char *const bad[] = { "", "3", "3/3", "0/0", "/0", "4/3", "x/3", "1/x",
		"-1/3", "1/-3", " 1/3", "1/3 ", "1/3/", "1//3", "0/100001", "1234567890/2", NULL };
	struct vbfs_shard s;
	bool has_k;
	char why[VBFS_WHY_LEN];
	for (int i = 0; bad[i]; i++) {
		CHECK_ERR(vbfs_shard_parse(bad[i], &s, &has_k, why), VBFS_ERR_USAGE);
		CHECK_MSG(why[0] && !strchr(why, '\n'), "one line for '%s'", bad[i]);
	}
	CHECK_ERR(vbfs_shard_parse("3/8", &s, &has_k, why), VBFS_OK);
	CHECK(has_k && s.k == 3 && s.n == 8);
	CHECK_ERR(vbfs_shard_parse("/16", &s, &has_k, why), VBFS_OK);
	CHECK(!has_k && s.n == 16);
	CHECK_ERR(vbfs_shard_parse("99999/100000", &s, &has_k, why), VBFS_OK);
}

static struct vbfs_event corrupt(const char *path, int64_t block)
{
	struct vbfs_event ev = { .kind = VBFS_EV_CORRUPT, .path = path, .path_len = strlen(path),
				 .block = block, .offset = (uint64_t)block * 4096, .length = 4096,
				 .has_expected = true, .has_actual = true };
	ev.actual[0] = 1;
	return ev;
}

static void test_resume(const char *dir)
{
	const char *path = check_path(dir, "state");
	uint8_t root[VBFS_DIGEST_LEN] = { 1, 2, 3 }, other[VBFS_DIGEST_LEN] = { 9 };
	struct vbfs_shard sh = { 2, 5 };
	struct vbfs_resume *r, *r2;
	char why[VBFS_WHY_LEN];

	CHECK_ERR(vbfs_resume_open(path, root, sh, 10000, 4096, &r, why), VBFS_OK);
	if (!r)
		return;
	CHECK_EQ(vbfs_resume_pass(r), 1);
	CHECK_EQ(vbfs_resume_runs(r), 1);
	/* A second run on the same state at the same time is refused. */
	CHECK_ERR(vbfs_resume_open(path, root, sh, 10000, 4096, &r2, why), VBFS_ERR_USAGE);
	CHECK(strstr(why, "in use") != NULL);
	for (uint64_t i = 0; i < 10000; i += 3)
		vbfs_resume_mark(r, i);
	struct vbfs_event ev = corrupt("a/b", 7);
	CHECK_ERR(vbfs_resume_log(r, &ev, why), VBFS_OK);
	vbfs_resume_close(r);           /* no finish: as if stopped */

	/* Other index, shard, plan; not a state: refused, and left alone. */
	CHECK_ERR(vbfs_resume_open(path, other, sh, 10000, 4096, &r, why), VBFS_ERR_USAGE);
	CHECK(strstr(why, "another index") != NULL);
	CHECK_ERR(vbfs_resume_open(path, root, (struct vbfs_shard){ 1, 5 }, 10000, 4096, &r, why),
		  VBFS_ERR_USAGE);
	CHECK(strstr(why, "shard 2/5, not shard 1/5") != NULL);
	CHECK_ERR(vbfs_resume_open(path, root, sh, 10001, 4096, &r, why), VBFS_ERR_USAGE);
	const char *junk = check_path(dir, "junk");
	check_write(junk, "{\"ok\":true}\n", 12);
	CHECK_ERR(vbfs_resume_open(junk, root, sh, 10, 4096, &r, why), VBFS_ERR_USAGE);
	CHECK(strstr(why, "not a vbfs scrub state") != NULL);
	struct stat st;
	CHECK(stat(junk, &st) == 0 && st.st_size == 12);

	/* A torn last line (power loss mid-append) is cut off. */
	int fd = open(path, O_WRONLY | O_APPEND);
	CHECK(fd >= 0 && write(fd, "{\"event\":\"corr", 14) == 14);
	close(fd);
	CHECK_ERR(vbfs_resume_open(path, root, sh, 10000, 4096, &r, why), VBFS_OK);
	if (!r)
		return;
	CHECK_EQ(vbfs_resume_runs(r), 2);
	CHECK_EQ(vbfs_resume_nevents(r), 1);
	CHECK(vbfs_resume_known(r, &ev));
	struct vbfs_event other_block = corrupt("a/b", 8);
	CHECK(!vbfs_resume_known(r, &other_block));
	uint64_t done = 0;
	for (uint64_t i = 0; i < 10000; i++)
		done += vbfs_resume_done(r, i) == (i % 3 == 0);
	CHECK_EQ(done, 10000);
	vbfs_resume_close(r);

	/* kill -9 in the middle of a run: what was marked and logged survives. */
	pid_t pid = fork();
	if (pid == 0) {
		struct vbfs_resume *c;
		char w[VBFS_WHY_LEN];
		if (vbfs_resume_open(path, root, sh, 10000, 4096, &c, w))
			_exit(3);
		for (uint64_t i = 0; i < 5000; i++)
			vbfs_resume_mark(c, i);
		struct vbfs_event e2 = corrupt("c", 1);
		vbfs_resume_log(c, &e2, w);
		raise(SIGKILL);
		_exit(4);
	}
	int status;
	waitpid(pid, &status, 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	CHECK_ERR(vbfs_resume_open(path, root, sh, 10000, 4096, &r, why), VBFS_OK);
	if (!r)
		return;
	done = 0;
	for (uint64_t i = 0; i < 10000; i++)    /* 0..4999 and, above, every 3rd as before */
		done += vbfs_resume_done(r, i) == (i < 5000 || i % 3 == 0);
	CHECK_EQ(done, 10000);
	CHECK_EQ(vbfs_resume_nevents(r), 2);
	struct vbfs_event e2 = corrupt("c", 1);
	CHECK(vbfs_resume_known(r, &e2));
	/* A complete pass: the next run starts pass 2, clean. */
	CHECK_ERR(vbfs_resume_finish(r, true, why), VBFS_OK);
	vbfs_resume_close(r);
	CHECK_ERR(vbfs_resume_open(path, root, sh, 10000, 4096, &r, why), VBFS_OK);
	if (!r)
		return;
	CHECK_EQ(vbfs_resume_pass(r), 2);
	CHECK_EQ(vbfs_resume_runs(r), 1);
	CHECK_EQ(vbfs_resume_nevents(r), 0);
	done = 0;
	for (uint64_t i = 0; i < 10000; i++)
		done += vbfs_resume_done(r, i);
	CHECK_EQ(done, 0);
	vbfs_resume_close(r);
}

/* A shard report as verify writes it. */
static cJSON *shard_doc(uint32_t k, uint32_t n, const char *root, bool complete,
			const char *event_path, int64_t block)
{
	cJSON *d = cJSON_CreateObject(), *sh, *evs = cJSON_CreateArray();
	cJSON_AddStringToObject(d, "format", VBFS_REPORT_FORMAT);
	cJSON_AddBoolToObject(d, "ok", event_path == NULL);
	cJSON_AddNumberToObject(d, "files", 10 + k);
	cJSON_AddNumberToObject(d, "blocks", 100 + k);
	cJSON_AddNumberToObject(d, "bytes", 1000 + k);
	cJSON_AddNumberToObject(d, "seconds", 1.5 + k);
	cJSON_AddBoolToObject(d, "complete", complete);
	sh = cJSON_AddObjectToObject(d, "shard");
	cJSON_AddNumberToObject(sh, "k", k);
	cJSON_AddNumberToObject(sh, "n", n);
	cJSON_AddStringToObject(d, "root", root);
	if (event_path) {
		struct vbfs_event ev = corrupt(event_path, block);
		char *j = vbfs_event_json(&ev);
		cJSON_AddItemToArray(evs, cJSON_Parse(j));
		free(j);
	}
	cJSON_AddItemToObject(d, "events", evs);
	return d;
}

static cJSON *roundtrip(const char *dir, const char *name, cJSON *doc, const char *sk,
			const char *pk, vbfs_err want)
{
	char why[VBFS_WHY_LEN];
	char *text = vbfs_report_text(doc, sk, why);
	cJSON_Delete(doc);
	CHECK(text != NULL);
	if (!text)
		return NULL;
	const char *p = check_path(dir, name);
	check_write(p, text, strlen(text));
	free(text);
	cJSON *back = NULL;
	bool signed_;
	CHECK_ERR(vbfs_report_load(p, pk, &back, &signed_, why), want);
	if (!want)
		CHECK(signed_ == (sk != NULL));
	return back;
}

static void test_report(const char *dir)
{
	static const char R[] = "aa00000000000000000000000000000000000000000000000000000000000000";
	static const char O[] = "bb00000000000000000000000000000000000000000000000000000000000000";
	const char *sk = strdup(check_path(dir, "report.key")), *pk = strdup(check_path(dir, "report.pub"));
	char why[VBFS_WHY_LEN];
	CHECK_ERR(vbfs_keygen(sk, pk, why), VBFS_OK);

	/* Three signed shards; the merge puts events in path/block order. */
	cJSON *d[3];
	d[0] = roundtrip(dir, "r0", shard_doc(0, 3, R, true, "z", 4), sk, pk, VBFS_OK);
	d[1] = roundtrip(dir, "r1", shard_doc(1, 3, R, true, NULL, 0), sk, pk, VBFS_OK);
	d[2] = roundtrip(dir, "r2", shard_doc(2, 3, R, true, "a", 9), sk, pk, VBFS_OK);
	if (!d[0] || !d[1] || !d[2])
		return;
	const char *names[3] = { "r0", "r1", "r2" };
	cJSON *m;
	CHECK_ERR(vbfs_report_merge((cJSON *[]){ d[2], d[0], d[1] }, names, 3, &m, why), VBFS_OK);
	if (m) {
		CHECK_EQ(cJSON_GetNumberValue(cJSON_GetObjectItem(m, "blocks")), 303);
		CHECK_EQ(cJSON_GetNumberValue(cJSON_GetObjectItem(m, "files")), 33);
		CHECK(cJSON_IsFalse(cJSON_GetObjectItem(m, "ok")));
		cJSON *evs = cJSON_GetObjectItem(m, "events");
		CHECK_EQ(cJSON_GetArraySize(evs), 2);
		CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(evs, 0), "path")), "a");
		CHECK_EQ(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "shard"), "n")), 1);
		cJSON_Delete(m);
	}
	/* Missing, repeated, other index, other N, unfinished: one line each. */
	CHECK_ERR(vbfs_report_merge(d, names, 2, &m, why), VBFS_ERR_USAGE);
	CHECK(strstr(why, "shard 2/3 is missing") != NULL);
	CHECK_ERR(vbfs_report_merge((cJSON *[]){ d[0], d[1], d[1] }, names, 3, &m, why), VBFS_ERR_USAGE);
	CHECK(strstr(why, "given twice") != NULL);
	cJSON *o = shard_doc(2, 3, O, true, NULL, 0), *n4 = shard_doc(2, 4, R, true, NULL, 0);
	cJSON *part = shard_doc(2, 3, R, false, NULL, 0);
	CHECK_ERR(vbfs_report_merge((cJSON *[]){ d[0], d[1], o }, names, 3, &m, why), VBFS_ERR_USAGE);
	CHECK(strstr(why, "another index") != NULL);
	CHECK_ERR(vbfs_report_merge((cJSON *[]){ d[0], d[1], n4 }, names, 3, &m, why), VBFS_ERR_USAGE);
	CHECK(strstr(why, "one of 3 shards") != NULL);
	CHECK_ERR(vbfs_report_merge((cJSON *[]){ d[0], d[1], part }, names, 3, &m, why), VBFS_ERR_USAGE);
	CHECK(strstr(why, "did not complete") != NULL);
	cJSON_Delete(o); cJSON_Delete(n4); cJSON_Delete(part);

	/* A forged count, an unsigned report under a key, a wrong key. */
	const char *p0 = check_path(dir, "r0");
	FILE *f = fopen(p0, "r");
	char text[8192] = "";
	size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
	if (f) fclose(f);
	text[len] = '\0';
	char *at = strstr(text, "\"blocks\":\t100");
	CHECK(at != NULL);
	if (at) {
		at[11] = '9';
		check_write(check_path(dir, "forged"), text, len);
		cJSON *x = NULL;
		bool s;
		CHECK_ERR(vbfs_report_load(check_path(dir, "forged"), pk, &x, &s, why), VBFS_ERR_SIGNATURE);
		CHECK_ERR(vbfs_report_load(check_path(dir, "forged"), NULL, &x, &s, why), VBFS_OK);
		cJSON_Delete(x);
	}
	cJSON_Delete(roundtrip(dir, "plain", shard_doc(0, 1, R, true, NULL, 0), NULL, pk, VBFS_ERR_SIGNATURE));
	const char *sk2 = strdup(check_path(dir, "k2")), *pk2 = strdup(check_path(dir, "p2"));
	CHECK_ERR(vbfs_keygen(sk2, pk2, why), VBFS_OK);
	cJSON_Delete(roundtrip(dir, "wrongkey", shard_doc(0, 1, R, true, NULL, 0), sk2, pk, VBFS_ERR_SIGNATURE));
	/* Not a report. */
	check_write(check_path(dir, "nota"), "[1,2]", 5);
	cJSON *x;
	bool s;
	CHECK_ERR(vbfs_report_load(check_path(dir, "nota"), NULL, &x, &s, why), VBFS_ERR_FORMAT);
	CHECK(strstr(why, "not a vbfs verify report") != NULL);
	for (int i = 0; i < 3; i++)
		cJSON_Delete(d[i]);
	free((void *)sk); free((void *)pk); free((void *)sk2); free((void *)pk2);
}

int main(void)
{
	char *dir = check_tmpdir("test_shard");
	test_split();
	test_parse();
	test_resume(dir);
	test_report(dir);
	check_rmtree(dir);
	free(dir);
	return check_done("test_shard");
}
