/*
 * cjson_num.c - strict numbers from cJSON objects; see cjson_num.h.
 */
#include <math.h>
#include <stdio.h>
#include "cjson_num.h"

static const char *type_name(const cJSON *x)
{
	return cJSON_IsString(x) ? "a string" : cJSON_IsNull(x) ? "null" : cJSON_IsBool(x) ? "a boolean"
	       : cJSON_IsArray(x) ? "an array" : cJSON_IsObject(x) ? "an object" : "not a number";
}

/* The member, or NULL (VBFS_ERR_NOTFOUND); a member that is not a number
 * is VBFS_ERR_FORMAT with `what` ("a whole number from 0 to N"). */
static vbfs_err get(const cJSON *o, const char *key, const char *what, const cJSON **x,
		    char why[VBFS_WHY_LEN])
{
	*x = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
	if (!*x)
		return VBFS_ERR_NOTFOUND;
	if (!cJSON_IsNumber(*x)) {
		vbfs_whyf(why, "\"%s\": %s: must be %s", key, type_name(*x), what);
		return VBFS_ERR_FORMAT;
	}
	return VBFS_OK;
}

vbfs_err vbfs_json_whole(const cJSON *o, const char *key, uint64_t max, uint64_t *out,
			 char why[VBFS_WHY_LEN])
{
	char what[64];
	const cJSON *x;
	if (max > VBFS_JSON_WHOLE_MAX)
		max = VBFS_JSON_WHOLE_MAX;
	snprintf(what, sizeof what, "a whole number from 0 to %llu", (unsigned long long)max);
	vbfs_err err = get(o, key, what, &x, why);
	if (err)
		return err;
	double v = x->valuedouble;
	/* 2^63 exactly is (double)INT64_MAX: compare below it before any cast. */
	if (!isfinite(v) || v < 0 || v != floor(v) || v >= 9223372036854775808.0 ||
	    (uint64_t)v > max) {
		vbfs_whyf(why, "\"%s\": %.16g: must be %s", key, v, what);
		return VBFS_ERR_FORMAT;
	}
	*out = (uint64_t)v;
	return VBFS_OK;
}

vbfs_err vbfs_json_real(const cJSON *o, const char *key, double max, double *out,
			char why[VBFS_WHY_LEN])
{
	char what[64];
	const cJSON *x;
	snprintf(what, sizeof what, "a number from 0 to %.17g", max);
	vbfs_err err = get(o, key, what, &x, why);
	if (err)
		return err;
	double v = x->valuedouble;
	if (!isfinite(v) || v < 0 || v > max) {
		vbfs_whyf(why, "\"%s\": %.16g: must be %s", key, v, what);
		return VBFS_ERR_FORMAT;
	}
	*out = v;
	return VBFS_OK;
}
