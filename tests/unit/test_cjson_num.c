/*
 * test_cjson_num.c - the one strict reader of numbers from JSON
 * (manifest/cjson_num.c): every value that is not a whole number in range
 * is refused with the member named; a member that is absent is told apart.
 */
#include "check.h"
#include <math.h>
#include <cjson/cJSON.h>
#include "cjson_num.h"

static vbfs_err whole(const char *json, uint64_t max, uint64_t *v, char why[VBFS_WHY_LEN])
{
	cJSON *o = cJSON_Parse(json);
	CHECK_MSG(o != NULL, "parse %s", json);
	vbfs_err err = vbfs_json_whole(o, "x", max, v, why);
	cJSON_Delete(o);
	return err;
}

static void test_whole(void)
{
	static const struct { const char *json; uint64_t max, want; } good[] = {
		{ "{\"x\":0}", 10, 0 }, { "{\"x\":10}", 10, 10 }, { "{\"x\":3.0}", 10, 3 },
		{ "{\"x\":9007199254740992}", VBFS_JSON_WHOLE_MAX, 9007199254740992ull },
		{ "{\"x\":1e18}", VBFS_JSON_WHOLE_MAX, 1000000000000000000ull },
	};
	static const struct { const char *json; uint64_t max; const char *why; } bad[] = {
		{ "{\"x\":-5}", VBFS_JSON_WHOLE_MAX, "\"x\": -5: must be a whole number from 0 to 9223372036854775807" },
		{ "{\"x\":-0.5}", 10, "\"x\": -0.5: must be a whole number from 0 to 10" },
		{ "{\"x\":1.5}", 10, "\"x\": 1.5: must be a whole number from 0 to 10" },
		{ "{\"x\":11}", 10, "\"x\": 11: must be a whole number from 0 to 10" },
		{ "{\"x\":1e300}", VBFS_JSON_WHOLE_MAX, "\"x\": 1e+300: must be a whole number from 0 to 9223372036854775807" },
		{ "{\"x\":1e999}", VBFS_JSON_WHOLE_MAX, "\"x\": inf: must be a whole number from 0 to 9223372036854775807" },
		{ "{\"x\":9223372036854775808}", UINT64_MAX, "\"x\": 9.223372036854776e+18: must be a whole number from 0 to 9223372036854775807" },
		{ "{\"x\":\"3\"}", 10, "\"x\": a string: must be a whole number from 0 to 10" },
		{ "{\"x\":null}", 10, "\"x\": null: must be a whole number from 0 to 10" },
		{ "{\"x\":true}", 10, "\"x\": a boolean: must be a whole number from 0 to 10" },
		{ "{\"x\":[1]}", 10, "\"x\": an array: must be a whole number from 0 to 10" },
		{ "{\"x\":{}}", 10, "\"x\": an object: must be a whole number from 0 to 10" },
	};
	char why[VBFS_WHY_LEN];
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		uint64_t v = 77;
		CHECK_MSG(whole(good[i].json, good[i].max, &v, why) == VBFS_OK && v == good[i].want,
			  "%s: %llu", good[i].json, (unsigned long long)v);
	}
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		uint64_t v = 77;
		why[0] = '\0';
		CHECK_MSG(whole(bad[i].json, bad[i].max, &v, why) == VBFS_ERR_FORMAT, "%s accepted", bad[i].json);
		CHECK_STREQ(why, bad[i].why);
		CHECK_MSG(v == 77, "%s: the output was written", bad[i].json);
	}
	/* Absent is not malformed: the caller decides. */
	uint64_t v = 77;
	strcpy(why, "untouched");
	CHECK(whole("{\"y\":1}", 10, &v, why) == VBFS_ERR_NOTFOUND && v == 77);
	CHECK_STREQ(why, "untouched");
	CHECK(vbfs_json_whole(NULL, "x", 10, &v, NULL) == VBFS_ERR_NOTFOUND);
}

static void test_real(void)
{
	char why[VBFS_WHY_LEN];
	double d = 7;
	cJSON *o = cJSON_Parse("{\"s\":1.25,\"n\":-1,\"t\":\"1h\",\"b\":1e300}");
	CHECK(vbfs_json_real(o, "s", 1e12, &d, why) == VBFS_OK && d == 1.25);
	CHECK(vbfs_json_real(o, "n", 1e12, &d, why) == VBFS_ERR_FORMAT);
	CHECK_STREQ(why, "\"n\": -1: must be a number from 0 to 1000000000000");
	CHECK(vbfs_json_real(o, "t", 1e12, &d, why) == VBFS_ERR_FORMAT);
	CHECK_STREQ(why, "\"t\": a string: must be a number from 0 to 1000000000000");
	CHECK(vbfs_json_real(o, "b", 1e12, &d, why) == VBFS_ERR_FORMAT);
	CHECK(vbfs_json_real(o, "none", 1e12, &d, why) == VBFS_ERR_NOTFOUND && d == 1.25);
	cJSON_Delete(o);
}

int main(void)
{
	test_whole();
	test_real();
	return check_done("test_cjson_num");
}
