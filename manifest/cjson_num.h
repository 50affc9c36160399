/*
 * cjson_num.h - numbers read from JSON that vbfs did not necessarily write
 * (shard reports, scrub states, event logs, the drill history, the
 * mount's stats): one strict reader for every caller.
 *
 * cJSON holds every number as a double.  Converting a negative, fractional,
 * huge or NaN double to an unsigned type is silent garbage ("block": -5
 * became block 18446744073709551611 in a merged report) or undefined
 * behaviour, and a string or null where a number belongs was quietly read
 * as 0.  Here a member that is present must be a finite number in range,
 * or the caller gets VBFS_ERR_FORMAT and a message that names the member
 * and the value it had.
 *
 * Depends on cJSON; nothing here exits or prints.  Thread-safe (no state).
 */
#ifndef VBFS_CJSON_NUM_H
#define VBFS_CJSON_NUM_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "vbfs.h"

/* The largest whole number accepted: INT64_MAX, so the value also fits
 * the signed fields (a block number, an offset as off_t). */
#define VBFS_JSON_WHOLE_MAX INT64_MAX

/*
 * Member `key` of `o` as a whole number from 0 to `max` (at most
 * VBFS_JSON_WHOLE_MAX).
 *   VBFS_OK            *out set.
 *   VBFS_ERR_NOTFOUND  no such member (or `o` is not an object); *out
 *                      untouched, why untouched: the caller decides
 *                      whether it was required.
 *   VBFS_ERR_FORMAT    present but a string, null, bool, array or
 *                      object, negative, not whole, not finite or above
 *                      `max`; why: "\"block\": -5: must be a whole number
 *                      from 0 to 9223372036854775807".
 */
vbfs_err vbfs_json_whole(const cJSON *o, const char *key, uint64_t max, uint64_t *out,
			 char why[VBFS_WHY_LEN]);

/* The same for a measure that may have a fraction (seconds): a finite
 * number from 0 to `max`. */
vbfs_err vbfs_json_real(const cJSON *o, const char *key, double max, double *out,
			char why[VBFS_WHY_LEN]);

#endif
