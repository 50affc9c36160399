/*
 * sink.c - where the mount's events go: the JSON-lines log (-o log=FILE),
 * syslog (LOG_ERR for damage), stderr with -f; and the live counters.
 *
 * The kernel retries a failed page read and readahead overlaps, so one bad
 * block can be asked for many times: each (file, block, kind) is logged once
 * per mount (a bounded set; past its size, events are logged every time
 * rather than dropped).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "vbfs_fs.h"

#define SEEN_MAX (1u << 16)

void sink_init(struct vbfs_fs *fs)
{
	pthread_mutex_init(&fs->sink_lock, NULL);
	fs->seen_cap = SEEN_MAX;
	fs->seen = calloc(fs->seen_cap, sizeof *fs->seen);
	openlog("vbfs", LOG_PID, LOG_DAEMON);
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33; x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* true when (file, block, kind) is new; under sink_lock.  Open addressing;
 * key 0 marks an empty cell, so keys get their low bit set. */
static bool first_time(struct vbfs_fs *fs, uint64_t file_id, int64_t block, int kind,
		       const char *source)
{
	if (!fs->seen || fs->seen_n >= fs->seen_cap / 2)
		return true;
	uint64_t src = 0;   /* a replica's refused copy is not the store's damage */
	for (const char *c = source; c && *c; c++)
		src = mix(src ^ (unsigned char)*c);
	uint64_t key = mix(file_id * 0x9e3779b97f4a7c15ull ^ mix((uint64_t)block) ^ (uint64_t)kind ^ src) | 1;
	size_t i = key & (fs->seen_cap - 1);
	while (fs->seen[i]) {
		if (fs->seen[i] == key)
			return false;
		i = (i + 1) & (fs->seen_cap - 1);
	}
	fs->seen[i] = key;
	fs->seen_n++;
	return true;
}

/* Under sink_lock: the healed/unrepairable counters. */
static void count_heal(struct vbfs_fs *fs, const struct vbfs_event *ev)
{
	unsigned i;
	if (ev->repair == VBFS_REPAIR_NO && ev->block >= 0)
		fs->unrepairable++;
	if (ev->kind != VBFS_EV_HEALED || !ev->source)
		return;
	for (i = 0; i < fs->nhealed && strcmp(fs->healed[i].source, ev->source); i++)
		;
	if (i == fs->nhealed) {
		if (i == HEAL_SOURCES_MAX)
			return;
		fs->healed[fs->nhealed++].source = ev->source;   /* owned by fs->heal */
	}
	fs->healed[i].blocks++;
}

void sink_event(struct vbfs_fs *fs, uint64_t file_id, const struct vbfs_event *ev)
{
	pthread_mutex_lock(&fs->sink_lock);
	/* The store's damage event carries its healer as `source` too: only
	 * events about a source's own copy (refused, healed) are keyed by it. */
	bool own = ev->source && ev->repair == VBFS_REPAIR_UNJUDGED;
	if (!first_time(fs, file_id, ev->block, ev->kind, own ? ev->source : NULL)) {
		pthread_mutex_unlock(&fs->sink_lock);
		return;
	}
	if (!vbfs_event_is_refusal(ev))   /* a source's bad copy: logged, not the store's damage */
		atomic_fetch_add(&fs->events[ev->kind], 1);
	count_heal(fs, ev);
	char *json = vbfs_event_json(ev);
	if (json) {
		size_t n = strlen(json);
		json[n] = '\n';   /* one write() per line: O_APPEND keeps lines whole */
		if (fs->log_fd >= 0 && write(fs->log_fd, json, n + 1) < 0)
			syslog(LOG_WARNING, "cannot write event log: %s", strerror(errno));
		if (fs->foreground)
			fwrite(json, 1, n + 1, stderr);
		json[n] = '\0';
		syslog(vbfs_event_is_damage(ev->kind) ? LOG_ERR : LOG_INFO, "%s", json);
		free(json);
	}
	pthread_mutex_unlock(&fs->sink_lock);
}

uint64_t sink_damage_count(struct vbfs_fs *fs)
{
	uint64_t n = 0;
	for (int k = 0; k < VBFS_EV_COUNT; k++)
		if (vbfs_event_is_damage(k))
			n += atomic_load(&fs->events[k]);
	return n;
}

char *sink_stats_json(struct vbfs_fs *fs, bool with_paths)
{
	cJSON *o = cJSON_CreateObject(), *ev;
	char *text;
	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "blocks_verified", (double)atomic_load(&fs->blocks_verified));
	cJSON_AddNumberToObject(o, "bytes_verified", (double)atomic_load(&fs->bytes_verified));
	cJSON_AddNumberToObject(o, "bytes_served", (double)atomic_load(&fs->bytes_served));
	cJSON_AddNumberToObject(o, "prefetched_unused", (double)cache_evicted_unserved(&fs->cache));
	cJSON_AddNumberToObject(o, "cache_hits", (double)atomic_load(&fs->cache_hits));
	cJSON_AddNumberToObject(o, "reads", (double)atomic_load(&fs->reads));
	cJSON_AddNumberToObject(o, "damage_events", (double)sink_damage_count(fs));
	ev = cJSON_AddObjectToObject(o, "events");
	for (int k = 0; k < VBFS_EV_COUNT; k++)
		cJSON_AddNumberToObject(ev, vbfs_event_kind_name(k), (double)atomic_load(&fs->events[k]));
	pthread_mutex_lock(&fs->sink_lock);
	cJSON_AddNumberToObject(o, "healed", (double)atomic_load(&fs->events[VBFS_EV_HEALED]));
	cJSON_AddNumberToObject(o, "unrepairable", (double)fs->unrepairable);
	cJSON *by = cJSON_AddObjectToObject(o, "healed_by_source");
	for (unsigned i = 0; i < fs->nhealed; i++)
		cJSON_AddNumberToObject(by, fs->healed[i].source, (double)fs->healed[i].blocks);
	pthread_mutex_unlock(&fs->sink_lock);
	if (with_paths) {
		cJSON_AddStringToObject(o, "index", fs->index_path);
		cJSON_AddStringToObject(o, "store", fs->store);
	}
	cJSON_AddNumberToObject(o, "block_size", fs->meta->block_size);
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

void sink_close(struct vbfs_fs *fs)
{
	if (fs->log_fd >= 0)
		close(fs->log_fd);
	free(fs->seen);
	closelog();
	pthread_mutex_destroy(&fs->sink_lock);
}
