/*
 * test_parity.c - the erasure code and the stripe layout (manifest/parity.c).
 *
 * Codec: for several K+M, every set of up to M erased fragments (data or
 * parity) rebuilds each lost data fragment byte for byte; M+1 erasures are
 * refused.  Encoding fragment by fragment with short fragments (zeros past
 * their end) equals encoding the zero-padded stripe.
 * Layout: every member has exactly one place; stripes never exceed K; a run
 * of M*s consecutive members costs each stripe at most M.
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

static void test_layout(uint32_t k, uint32_t s, uint64_t total, uint32_t m)
{
	/* seen[stripe id][fragment] exactly once; stripe id = group * s + j */
	uint64_t nstripes = parity_nstripes(total, k, s);
	uint8_t *seen = calloc(nstripes * k + 1, 1);
	for (uint64_t pos = 0; pos < total; pos++) {
		struct parity_place pl;
		parity_place(pos, total, k, s, &pl);
		uint64_t id = pl.group_start / ((uint64_t)k * s) * s + pl.stripe;
		CHECK(pl.stripe < pl.nstripes && pl.nstripes <= s);
		CHECK(pl.index < pl.members && pl.members <= k);
		CHECK_EQ(pl.group_start + pl.stripe + (uint64_t)pl.index * pl.nstripes, pos);
		CHECK(id < nstripes);
		if (id < nstripes)
			seen[id * k + pl.index]++;
	}
	uint64_t placed = 0;
	for (uint64_t i = 0; i < nstripes * k; i++) {
		CHECK(seen[i] <= 1);
		placed += seen[i];
	}
	CHECK_EQ(placed, total);
	/* A burst of m*s consecutive members inside a full group: <= m per stripe. */
	if (total >= (uint64_t)k * s) {
		uint64_t burst = (uint64_t)m * s, first = total >= 2 * (uint64_t)k * s ? 3 : 0;
		uint32_t hits[PARITY_S_MAX] = { 0 };
		for (uint64_t pos = first; pos < first + burst && pos < (uint64_t)k * s; pos++) {
			struct parity_place pl;
			parity_place(pos, total, k, s, &pl);
			hits[pl.stripe]++;
		}
		for (uint32_t j = 0; j < s; j++)
			CHECK_MSG(hits[j] <= m, "k=%u s=%u: stripe %u hit %u times", k, s, j, hits[j]);
	}
	free(seen);
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
	test_layout(3, 5, 7, 1);
	test_layout(10, 1, 95, 2);
	test_layout(4, 16, 1, 2);

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
	return check_done("test_parity");
}
