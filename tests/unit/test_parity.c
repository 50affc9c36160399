/*
 * test_parity.c - the erasure code and the stripe layout (manifest/parity.c).
 *
 * Codec: for several K+M, every set of up to M erased fragments (data or
 * parity) rebuilds each lost data fragment byte for byte; M+1 erasures are
 * refused.  Encoding fragment by fragment with short fragments (zeros past
 * their end) equals encoding the zero-padded stripe.
 * Layout: groups of K*S..2*K*S members; every member has exactly one
 * place; stripes never exceed K; a run of M*S consecutive members costs each
 * stripe at most M, across group ends too; parity at most M/K + M/(K*S);
 * inserting members moves only the groups around them.
 */
#include "check.h"
#include "parity.h"

static unsigned seed = 12345;
static unsigned char rnd(void)
{
	seed = seed * 1103515245u + 12345u;
	return (unsigned char)(seed >> 16);
}

/* Encode a stripe of k fragments (fragment i is lens[i] bytes, zero past it). */
static void encode(const struct parity_codec *c, int len, unsigned char **data, const int *lens,
		   unsigned char **parity)
{
	for (int p = 0; p < c->m; p++)
		memset(parity[p], 0, (size_t)len);
	for (int i = 0; i < c->k; i++)
		parity_encode_update(c, lens[i], i, data[i], parity);
}

static void test_codec(int k, int m, int len)
{
	struct parity_codec c;
	unsigned char *frags[PARITY_MAX_FRAGS], out[4096];
	int lens[PARITY_MAX_FRAGS];
	bool good[PARITY_MAX_FRAGS];
	CHECK(len <= (int)sizeof out);
	CHECK_EQ(parity_codec_init(&c, k, m), 0);
	for (int i = 0; i < k + m; i++) {
		frags[i] = calloc(1, (size_t)len);
		lens[i] = i < k ? (i % 3 == 2 ? len / 2 : len) : len;   /* some short members */
		for (int j = 0; i < k && j < lens[i]; j++)
			frags[i][j] = rnd();
	}
	encode(&c, len, frags, lens, &frags[k]);

	/* Every pattern of up to m erasures over the first min(k+m, 12) fragments. */
	int n = k + m < 12 ? k + m : 12;
	int rebuilt = 0, refused = 0;
	for (unsigned mask = 0; mask < (1u << n); mask++) {
		int erased = __builtin_popcount(mask);
		for (int i = 0; i < k + m; i++)
			good[i] = !(i < n && (mask >> i & 1));
		for (int t = 0; t < k && t < n; t++) {
			if (good[t])
				continue;
			memset(out, 0xAA, sizeof out);
			int rc = parity_decode(&c, len, frags, good, t, out);
			if (erased <= m) {
				CHECK_MSG(rc == 0 && !memcmp(out, frags[t], (size_t)len),
					  "k=%d m=%d mask=%x target %d not rebuilt", k, m, mask, t);
				rebuilt++;
			} else {
				CHECK_MSG(rc == -1, "k=%d m=%d mask=%x: %d erasures decoded", k, m, mask, erased);
				refused++;
			}
		}
	}
	CHECK(rebuilt > 0);
	CHECK(refused > 0 || n <= m);
	for (int i = 0; i < k + m; i++)
		free(frags[i]);
	parity_codec_free(&c);
}

/* Cut `total` members with these keys; the groups' sizes into n[] (returns
 * how many). */
static uint64_t cut_all(const uint64_t *key, uint64_t total, uint32_t k, uint32_t s, uint64_t *n)
{
	uint64_t ng = 0;
	for (uint64_t at = 0; at < total; at += n[ng++])
		n[ng] = parity_cut(key + at, total - at, k, s);
	return ng;
}

static void test_layout(uint32_t k, uint32_t s, uint64_t total, uint32_t m)
{
	uint64_t *key = malloc((total + 1) * sizeof *key), *n = malloc((total + 1) * sizeof *n);
	for (uint64_t i = 0; i < total; i++)
		key[i] = parity_member_key(parity_path_hash("f", 1), i);
	uint64_t ng = cut_all(key, total, k, s, n), start = 0, parity_blocks = 0;
	for (uint64_t g = 0; g < ng; start += n[g++]) {
		/* sizes: K*S..2*K*S, but the rest of a short sequence */
		CHECK_MSG(n[g] <= 2 * (uint64_t)k * s, "group %llu: %llu members", (unsigned long long)g,
			  (unsigned long long)n[g]);
		CHECK_MSG(n[g] >= (uint64_t)k * s || g + 1 == ng, "group %llu: %llu members",
			  (unsigned long long)g, (unsigned long long)n[g]);
		uint32_t st = (uint32_t)((n[g] + k - 1) / k);
		parity_blocks += (uint64_t)st * m;
		/* every member once; stripes never exceed K */
		uint8_t *seen = calloc((size_t)st * k, 1);
		for (uint64_t q = 0; q < n[g]; q++) {
			struct parity_place pl;
			parity_place(q, n[g], k, &pl);
			CHECK(pl.nstripes == st && pl.stripe < st);
			CHECK(pl.index < pl.members && pl.members <= k);
			CHECK_EQ(pl.stripe + (uint64_t)pl.index * pl.nstripes, q);
			seen[(size_t)pl.stripe * k + pl.index]++;
		}
		uint64_t placed = 0;
		for (size_t i = 0; i < (size_t)st * k; i++) {
			CHECK(seen[i] <= 1);
			placed += seen[i];
		}
		CHECK_EQ(placed, n[g]);
		free(seen);
	}
	CHECK_EQ(start, total);
	/* A burst of m*s consecutive members anywhere (across group ends too)
	 * costs each stripe of each group at most m, groups of K*S or more. */
	uint64_t burst = (uint64_t)m * s;
	for (uint64_t first = 0; total >= 2 * (uint64_t)k * s && first + burst <= total;
	     first += 7) {
		uint32_t hits[2][2 * PARITY_S_MAX] = { { 0 } };
		uint64_t g0 = 0, gs = 0;
		while (gs + n[g0] <= first) gs += n[g0++];
		for (uint64_t pos = first; pos < first + burst; pos++) {
			uint64_t g = g0, at = gs;
			while (at + n[g] <= pos) at += n[g++];
			struct parity_place pl;
			parity_place(pos - at, n[g], k, &pl);
			if (n[g] >= (uint64_t)k * s && g - g0 < 2)
				hits[g - g0][pl.stripe]++;
		}
		for (int g = 0; g < 2; g++)
			for (uint32_t j = 0; j < 2 * s; j++)
				CHECK_MSG(hits[g][j] <= m, "k=%u s=%u burst at %llu: stripe %u hit %u times",
					  k, s, (unsigned long long)first, j, hits[g][j]);
	}
	/* parity at most M/K + M/(K*S) of the members, once a group is full */
	if (total >= (uint64_t)k * s)
		CHECK_MSG(parity_blocks * k * s <= total * m * (s + 1),
			  "k=%u s=%u total %llu: %llu parity blocks", k, s,
			  (unsigned long long)total, (unsigned long long)parity_blocks);
	free(key);
	free(n);
}

/* Inserting members in the middle of a sequence moves only the group ends
 * near them: the groups before are the same, and once both cuts meet at
 * one natural end past the insertion (a few groups on) the same again,
 * shifted. */
static void test_stable(uint32_t k, uint32_t s, uint64_t total, uint64_t at, uint64_t ins)
{
	uint64_t *a = malloc(total * sizeof *a), *b = malloc((total + ins) * sizeof *b);
	uint64_t *na = malloc((total + 1) * sizeof *na), *nb = malloc((total + ins + 1) * sizeof *nb);
	for (uint64_t i = 0; i < total; i++)
		a[i] = parity_member_key(parity_path_hash("old", 3), i);
	for (uint64_t i = 0; i < total + ins; i++)
		b[i] = i < at ? a[i] : i < at + ins ? parity_member_key(parity_path_hash("new", 3), i)
					: a[i - ins];
	uint64_t nga = cut_all(a, total, k, s, na), ngb = cut_all(b, total + ins, k, s, nb);
	/* groups as (start, n) pairs; count b's groups that are not a's */
	uint64_t changed = 0, sa = 0, sb = 0, ia = 0;
	for (uint64_t g = 0; g < ngb; sb += nb[g++]) {
		uint64_t want = sb < at ? sb : sb >= at + ins ? sb - ins : UINT64_MAX;
		while (want != UINT64_MAX && ia < nga && sa < want) sa += na[ia++];
		bool same = ia < nga && sa == want && na[ia] == nb[g] &&
			    !(sb < at + ins && sb + nb[g] > at);   /* holds no new member */
		changed += !same;
	}
	CHECK_MSG(changed <= 8, "k=%u s=%u: %llu members inserted at %llu changed %llu of %llu groups",
		  k, s, (unsigned long long)ins, (unsigned long long)at, (unsigned long long)changed,
		  (unsigned long long)ngb);
	CHECK(ngb >= 8);
	free(a);
	free(b);
	free(na);
	free(nb);
}

int main(void)
{
	test_codec(4, 2, 1000);
	test_codec(10, 2, 4096);
	test_codec(6, 3, 333);
	test_codec(1, 1, 64);
	test_codec(32, 2, 512);

	test_layout(4, 16, 68, 2);
	test_layout(4, 16, 64, 2);
	test_layout(32, 16, 10000, 2);
	test_layout(32, 16, 100000, 2);
	test_layout(3, 5, 7, 1);
	test_layout(10, 1, 95, 2);
	test_layout(4, 16, 1, 2);
	test_layout(4, 16, 5000, 2);
	test_stable(32, 16, 20000, 7000, 37);
	test_stable(32, 16, 20000, 7000, 1);
	test_stable(4, 16, 3000, 1500, 100);
	test_stable(4, 16, 3000, 10, 5);

	uint32_t k, m;
	CHECK_EQ(vbfs_parse_parity("32+2", &k, &m), 0);
	CHECK_EQ(k, 32);
	CHECK_EQ(m, 2);
	CHECK_EQ(vbfs_parse_parity("0+2", &k, &m), -1);
	CHECK_EQ(vbfs_parse_parity("4+0", &k, &m), -1);
	CHECK_EQ(vbfs_parse_parity("4+", &k, &m), -1);
	CHECK_EQ(vbfs_parse_parity("+4", &k, &m), -1);
	CHECK_EQ(vbfs_parse_parity("4+2x", &k, &m), -1);
	CHECK_EQ(vbfs_parse_parity("127+128", &k, &m), 0);
	CHECK_EQ(vbfs_parse_parity("128+1", &k, &m), -1);
	CHECK_EQ(vbfs_parse_parity("100+156", &k, &m), -1);
	CHECK_EQ(parity_depth(2, 1u << 20), 16);
	CHECK_EQ(parity_depth(4, 64u << 20), 1);
	CHECK_EQ(parity_depth(2, 8u << 20), 8);   /* 2*S*M blocks in 256 MiB */
	return check_done("test_parity");
}
