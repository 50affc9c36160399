/*
 * test_util.c - SIZE and DURATION parsing, hex, time formatting, error
 * strings and the event JSON (util.c, event.c).
 *
 * The accepted forms are the ones the man pages promise (`--block-size 4K`,
 * `--target 1h30m`); the refused ones are the typos an operator makes.
 */
#include "check.h"
#include <cjson/cJSON.h>

static void test_parse_size(void)
{
	static const struct { const char *s; uint64_t want; } good[] = {
		{ "4096", 4096 }, { "4K", 4096 }, { "4k", 4096 }, { "1M", 1u << 20 },
		{ "64M", 64u << 20 }, { "0", 0 }, { "1G", 1ull << 30 },
		{ "4KiB", 4096 }, { "18446744073709551615", UINT64_MAX },
	};
	static const char *const bad[] = {
		"", "1h30", "-5", "abc", "1x", "K", " 4K", "4K ", "4KK", "1.5M", "+4",
		"18446744073709551616", "17179869184G", "4Ki",
	};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		uint64_t v = 12345;
		int rc = vbfs_parse_size(good[i].s, &v);
		CHECK_MSG(rc == 0 && v == good[i].want, "parse_size(\"%s\"): rc %d, %" PRIu64
			  ", wanted %" PRIu64, good[i].s, rc, v, good[i].want);
	}
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		uint64_t v = 12345;
		int rc = vbfs_parse_size(bad[i], &v);
		CHECK_MSG(rc != 0, "parse_size(\"%s\") accepted: %" PRIu64, bad[i], v);
	}
	uint64_t v;
	CHECK(vbfs_parse_size(NULL, &v) != 0);
}

static void test_parse_duration(void)
{
	static const struct { const char *s; double want; } good[] = {
		{ "0", 0 }, { "90s", 90 }, { "45m", 2700 }, { "1h30m", 5400 },
		{ "3600", 3600 }, { "1h", 3600 }, { "1h30m15s", 5415 }, { "0s", 0 },
		{ "2m30s", 150 },
	};
	static const char *const bad[] = {
		"", "1h30", "-5", "abc", "1x", "h", " 90s", "90s ", "1d", "90S", "-1h",
		"5m-3s",
	};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		double d = -1;
		int rc = vbfs_parse_duration(good[i].s, &d);
		CHECK_MSG(rc == 0 && d == good[i].want, "parse_duration(\"%s\"): rc %d, %g, "
			  "wanted %g", good[i].s, rc, d, good[i].want);
	}
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		double d = -1;
		int rc = vbfs_parse_duration(bad[i], &d);
		CHECK_MSG(rc != 0, "parse_duration(\"%s\") accepted: %g", bad[i], d);
	}
	double d;
	CHECK(vbfs_parse_duration(NULL, &d) != 0);
}

static void test_hex(void)
{
	const uint8_t bin[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
	char hex[2 * sizeof bin + 1];
	uint8_t back[sizeof bin];

	memset(hex, 'Z', sizeof hex);
	vbfs_hex(bin, sizeof bin, hex);
	CHECK_STREQ(hex, "00017f80abff");
	CHECK(vbfs_unhex(hex, back, sizeof back) == 0);
	CHECK_MEMEQ(back, bin, sizeof bin);
	CHECK(vbfs_unhex("00017F80ABFF", back, sizeof back) == 0);   /* upper case */
	CHECK_MEMEQ(back, bin, sizeof bin);
	CHECK(vbfs_unhex("00017f80abf", back, sizeof back) != 0);    /* short */
	CHECK(vbfs_unhex("00017f80abff0", back, sizeof back) != 0);  /* long */
	CHECK(vbfs_unhex("00017g80abff", back, sizeof back) != 0);   /* not hex */
	CHECK(vbfs_unhex(" 0017f80abff", back, sizeof back) != 0);
	CHECK(vbfs_unhex("", back, 0) == 0);

	/* All 256 byte values. */
	uint8_t all[256], all2[256];
	char allhex[513];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	vbfs_hex(all, 256, allhex);
	CHECK_EQ(strlen(allhex), 512);
	CHECK(vbfs_unhex(allhex, all2, 256) == 0);
	CHECK_MEMEQ(all, all2, 256);
	vbfs_hex(all, 0, allhex);
	CHECK_STREQ(allhex, "");
}

static void test_time_and_misc(void)
{
	char buf[32];
	vbfs_rfc3339(0, buf);
	CHECK_STREQ(buf, "1970-01-01T00:00:00Z");
	vbfs_rfc3339(1795703845, buf);
	CHECK_STREQ(buf, "2026-11-26T14:37:25Z");
	CHECK(vbfs_now() > 1700000000);
	double a = vbfs_monotonic(), b = vbfs_monotonic();
	CHECK(b >= a && a > 0);
	CHECK(vbfs_ncpu() >= 1);

	/* Every error has its own non-empty explanation. */
	for (int e = VBFS_OK; e <= VBFS_ERR_INTERRUPTED; e++) {
		const char *s = vbfs_strerror((vbfs_err)e);
		CHECK_MSG(s && *s && strcmp(s, "unknown error"), "vbfs_strerror(%d)", e);
		for (int f = VBFS_OK; f < e; f++)
			CHECK_MSG(strcmp(s, vbfs_strerror((vbfs_err)f)), "errors %d and %d read "
				  "the same: %s", f, e, s);
	}
	CHECK_STREQ(vbfs_strerror(VBFS_ERR_ROOT), "index damaged: root digest mismatch");
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* Events: SPEC "Events (JSON lines)". */
static void test_event_json(void)
{
	CHECK_STREQ(vbfs_event_kind_name(VBFS_EV_CORRUPT), "corrupt");
	CHECK_STREQ(vbfs_event_kind_name(VBFS_EV_MISSING), "missing");
	CHECK_STREQ(vbfs_event_kind_name(VBFS_EV_UNREADABLE), "unreadable");
	CHECK_STREQ(vbfs_event_kind_name(VBFS_EV_CHANGED), "changed");
	CHECK_STREQ(vbfs_event_kind_name(VBFS_EV_UNINDEXED), "unindexed");
	CHECK(vbfs_event_is_damage(VBFS_EV_CORRUPT));
	CHECK(vbfs_event_is_damage(VBFS_EV_MISSING));
	CHECK(vbfs_event_is_damage(VBFS_EV_UNREADABLE));
	CHECK(vbfs_event_is_damage(VBFS_EV_CHANGED));
	CHECK(!vbfs_event_is_damage(VBFS_EV_UNINDEXED));
	CHECK(!vbfs_event_is_damage(VBFS_EV_TRANSIENT));

	/* A corrupt verdict becomes a corrupt event with the block's place. */
	struct vbfs_entry e = { .id = 5, .type = VBFS_T_REG, .size = 3 * (1u << 20) + 10,
				.path = "db/app.dump", .path_len = 11 };
	struct vbfs_block_check chk = { .verdict = VBFS_BLOCK_CORRUPT, .got = 10 };
	uint8_t expected[VBFS_DIGEST_LEN];
	char hex[VBFS_HEX_LEN];
	memset(expected, 0x11, sizeof expected);
	memset(chk.actual, 0x22, sizeof chk.actual);
	struct vbfs_event ev;
	vbfs_event_from_check(&ev, &e, 3, 1u << 20, expected, &chk);
	ev.time = 1795703845;
	char *text = vbfs_event_json(&ev);
	CHECK(text && !strchr(text, '\n'));
	cJSON *o = text ? cJSON_Parse(text) : NULL;
	CHECK(o != NULL);
	if (o) {
		CHECK_STREQ(jstr(o, "time"), "2026-11-26T14:37:25Z");
		CHECK_STREQ(jstr(o, "event"), "corrupt");
		CHECK_STREQ(jstr(o, "path"), "db/app.dump");
		CHECK(jnum(o, "block") == 3);
		CHECK(jnum(o, "offset") == 3145728);
		CHECK(jnum(o, "length") == 10);          /* the short last block */
		vbfs_hex(expected, VBFS_DIGEST_LEN, hex);
		CHECK_STREQ(jstr(o, "expected"), hex);
		vbfs_hex(chk.actual, VBFS_DIGEST_LEN, hex);
		CHECK_STREQ(jstr(o, "actual"), hex);
	}
	cJSON_Delete(o);
	free(text);

	/* A missing block has no actual digest. */
	chk = (struct vbfs_block_check){ .verdict = VBFS_BLOCK_MISSING, .got = 0 };
	vbfs_event_from_check(&ev, &e, 1, 1u << 20, expected, &chk);
	CHECK_EQ(ev.kind, VBFS_EV_MISSING);
	CHECK(!ev.has_actual);
	CHECK_EQ(ev.offset, 1u << 20);
	CHECK_EQ(ev.length, 1u << 20);

	/* Control characters are escaped; bad UTF-8 is replaced and kept as hex. */
	const char nasty[] = "a\nb\x1b[31m\xff" "c";
	struct vbfs_event ne = { .kind = VBFS_EV_MISSING, .path = nasty,
				 .path_len = sizeof nasty - 1, .block = -1 };
	text = vbfs_event_json(&ne);
	CHECK(text != NULL);
	if (text) {
		CHECK_MSG(!strchr(text, '\n') && !strchr(text, '\x1b') && !strchr(text, '\xff'),
			  "raw control or invalid byte in: %s", text);
		o = cJSON_Parse(text);
		CHECK(o != NULL);
		CHECK_STREQ(jstr(o, "path"), "a\nb\x1b[31m\xef\xbf\xbd" "c");
		vbfs_hex((const uint8_t *)nasty, sizeof nasty - 1, hex);
		CHECK_STREQ(jstr(o, "path_hex"), hex);
		CHECK(cJSON_GetObjectItemCaseSensitive(o, "block") == NULL);
		cJSON_Delete(o);
		free(text);
	}
}

int main(void)
{
	test_parse_size();
	test_parse_duration();
	test_hex();
	test_time_and_misc();
	test_event_json();
	return check_done("test_util");
}
