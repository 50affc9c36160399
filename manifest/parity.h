/*
 * parity.h - Reed-Solomon parity over the store's blocks (ISA-L), kept
 * apart from the store; used by source.c to rebuild a damaged block.
 * Not for fs/ or tools/ (they go through vbfs_heal_* and vbfs_parity_* in
 * vbfs.h); the layout and codec are here for parity_build.c and the unit
 * test.
 *
 * Layout.  The members are the blocks of every indexed regular file, in
 * two sequences: the full blocks in the order of the files' paths (the
 * build's walk), block by block, and the short last blocks ordered longest
 * first.  Each sequence is cut into groups of K*S to 2*K*S members at
 * content-defined points (parity_cut: a member whose key, a hash of its
 * path and block, hits a pattern), so a changed, added or removed file
 * changes only the groups around it and an incremental build re-encodes
 * only those.  A group of n members has s = ceil(n/K) stripes, and the
 * member at position q of the group is data fragment q / s of stripe q % s.
 * So consecutive blocks land in different stripes: a burst of up to M*S
 * damaged blocks in a row costs each stripe at most M fragments, which M
 * parity fragments rebuild.  Small files share stripes with other small
 * files of about their length, so parity stays about M/K of the bytes
 * instead of M blocks per file.  A stripe is as long as its longest member;
 * shorter members and absent ones count as zeros.
 *
 * Files in DIR:  parity.dat  the M parity fragments of each stripe, in order
 *                parity.idx  header, the files covered (id, size) in sequence
 *                            order, each group's size and key (SHA-256 of
 *                            its members' lengths and digests), and the
 *                            SHA-256 of every parity fragment
 * The index records the SHA-256 of parity.idx (meta key "parity"), under
 * its root digest and signature: parity that was damaged, forged or built
 * for another index is refused at open, a damaged parity fragment is an
 * erasure, and every rebuilt block is hashed before it is served.
 */
#ifndef VBFS_PARITY_H
#define VBFS_PARITY_H

#include "vbfs.h"

#define VBFS_PARITY_SOURCE "parity"
#define PARITY_META_KEY "parity"           /* the index's record of parity.idx's SHA-256 */
#define PARITY_MAGIC "VBFSPAR2"
#define PARITY_MAX_FRAGS 255            /* K + M: GF(2^8) */
#define PARITY_S_MAX 16u                /* interleave depth: a group has S..2S stripes */
#define PARITY_GROUP_BYTES (256u << 20) /* 2*S*M*block_size, one group's accumulators */
#define PARITY_REBUILD_BYTES (1024u << 20) /* (K+M+1)*block_size, one rebuild's memory */

/* ---- the codec (ISA-L, Cauchy matrix) ------------------------------------ */
struct parity_codec {
	int k, m;
	unsigned char *matrix;          /* (k+m) x k encode matrix */
	unsigned char *tables;          /* ec_init_tables for the m parity rows */
};
int  parity_codec_init(struct parity_codec *c, int k, int m);   /* 0 or -1 (ENOMEM) */
void parity_codec_free(struct parity_codec *c);
/* Add data fragment i (len bytes; the rest of the stripe counts as zero)
 * to the m parity fragments (len <= their length, which start zeroed). */
void parity_encode_update(const struct parity_codec *c, int len, int i,
			  unsigned char *data, unsigned char **parity);
/* Rebuild fragment `target` (0..k-1) of a stripe of `len`-byte fragments:
 * frags[0..k+m) (data then parity), good[i] false for an erasure.  0, or
 * -1 when fewer than k fragments are good. */
int  parity_decode(const struct parity_codec *c, int len, unsigned char **frags,
		   const bool *good, int target, unsigned char *out);

/* ---- the layout ------------------------------------------------------------ */
/* Where member q of a group of n members sits (s = ceil(n/k) stripes). */
struct parity_place {
	uint64_t group_start;           /* first position of its group in the sequence */
	uint32_t nstripes;              /* s: stripes in the group */
	uint32_t stripe;                /* j: its stripe within the group */
	uint32_t index;                 /* i: its data fragment in the stripe */
	uint32_t members;               /* data fragments present in the stripe */
};
void parity_place(uint64_t q, uint64_t n, uint32_t k, struct parity_place *out);
/* Interleave depth S for k+m at this block size: a group holds K*S to
 * 2*K*S members, and the encoder 2*S*M blocks of it (memory bound). */
uint32_t parity_depth(uint32_t m, uint32_t block_size);
/* The length of the next group of a sequence whose members from here on
 * have the keys key[0..avail): content-defined, so a group's end depends
 * only on the keys near it (see PARITY_CUT in parity.c). */
uint64_t parity_cut(const uint64_t *key, uint64_t avail, uint32_t k, uint32_t s);
/* A member's key: its file (a hash of the path) and block; short members
 * use block UINT64_MAX. */
uint64_t parity_member_key(uint64_t path_hash, uint64_t block);
uint64_t parity_path_hash(const char *path, size_t len);

struct parity_file {
	uint64_t id, size;
};
struct parity_group {
	uint64_t start, n;              /* members [start, start + n) of its sequence */
	uint64_t first_stripe;          /* its first stripe, numbered across parity.dat */
	uint64_t dat_off;               /* its first fragment's offset in parity.dat */
	uint8_t key[VBFS_DIGEST_LEN];   /* what it encodes (parity_build.c), 0: unknown */
};
/* Everything derived from (k, m, s, bs, files in sequence order, groups'
 * sizes): who sits where, and where each stripe's parity is. */
struct parity_layout {
	uint32_t k, m, s, bs;
	struct parity_file *files;      /* in sequence order */
	uint64_t nfiles;
	uint64_t *by_id;                /* file indexes in id order */
	uint64_t *full_prefix;          /* full blocks of files before file f */
	uint64_t nfull;
	uint64_t *short_order;          /* short position -> file index */
	uint64_t nshort;
	struct parity_group *groups;    /* the full sequence's, then the short's */
	uint64_t ngroups_full, ngroups_short;
	uint64_t nstripes;              /* all stripes, full then short */
	uint64_t dat_size;
};
/* Fills everything after groups[].n; VBFS_ERR_FORMAT when the groups do
 * not cover both sequences exactly. */
vbfs_err parity_layout_derive(struct parity_layout *l);
void     parity_layout_free(struct parity_layout *l);
uint32_t parity_short_len(const struct parity_layout *l, uint64_t f);
/* Member `pos` of a sequence (the short one with `shorts`): its file
 * index, block and length. */
uint64_t parity_member_at(const struct parity_layout *l, bool shorts, uint64_t pos,
			  uint64_t *block, uint32_t *len);
/* The group holding position `pos` of a sequence. */
const struct parity_group *parity_group_of(const struct parity_layout *l, bool shorts,
					    uint64_t pos);
/* Stripe j of group g: its fragment length and parity.dat offset. */
uint32_t parity_stripe_len(const struct parity_layout *l, const struct parity_group *g,
			   bool shorts, uint32_t j);
uint64_t parity_stripe_off(const struct parity_layout *l, const struct parity_group *g,
			   bool shorts, uint32_t j);
int64_t  parity_file_index(const struct parity_layout *l, uint64_t id);

/* parity.idx: encode (malloc'd) and parse.  `digests` holds m SHA-256 per
 * stripe, in stripe order. */
vbfs_err parity_idx_encode(const struct parity_layout *l, const uint8_t *digests,
			   uint8_t **buf, size_t *len);
vbfs_err parity_idx_parse(const uint8_t *buf, size_t n, uint32_t block_size,
			  struct parity_layout *l, uint8_t **digests);
/* A parity file opened for reading if it is a regular file; -1 (errno
 * EINVAL for a FIFO, device, socket or directory) else.  Never blocks: a
 * FIFO planted as parity.idx or parity.dat must not hang a mount or tool. */
int parity_open_reg(const char *path);
/* Read the parity.idx of `dir` whose SHA-256 the index records, and
 * parse it.  VBFS_ERR_NOTFOUND: no parity recorded; VBFS_ERR_ROOT: it does
 * not match; VBFS_ERR_FORMAT, VBFS_ERR_IO. */
vbfs_err parity_idx_load(vbfs_index *idx, const char *dir, struct parity_layout *l,
			 uint8_t **digests, char why[VBFS_WHY_LEN]);

/* ---- build.c's hooks (parity_build.c) ------------------------------------------ */
/* While vbfs_build hashes, a plan encodes every group whose members are
 * all hashed by this build from the very bytes that were hashed (no second
 * read); vbfs_parity_build does the rest after the index is committed.
 * Call order: begin, add (each file in walk order), layout, then feed and
 * spoil from any thread. */
void parity_plan_begin(vbfs_parity_plan *p, uint32_t block_size);
/* A regular file with its own bytes (not a hard link's follower), size > 0;
 * `hashed` when this build reads it.  Its handle for feed and spoil. */
vbfs_err parity_plan_add(vbfs_parity_plan *p, uint64_t id, uint64_t size, const char *path,
			 bool hashed, int64_t *handle);
vbfs_err parity_plan_layout(vbfs_parity_plan *p, char why[VBFS_WHY_LEN]);
/* Block `block` of file `handle` as it was hashed (len bytes; NULL: a
 * hole, zeros).  Exactly once per block of a hashed file. */
void     parity_plan_feed(vbfs_parity_plan *p, int64_t handle, uint64_t block,
			  const void *data, uint32_t len);
/* The file's bytes fed are not the ones indexed (it changed while hashed,
 * or could not be read): its groups are encoded after the build. */
void     parity_plan_spoil(vbfs_parity_plan *p, int64_t handle);

/* ---- the source -------------------------------------------------------------- */
struct vbfs_parity;
vbfs_err vbfs_parity_open(vbfs_index *idx, const char *dir, struct vbfs_parity **out,
			  char why[VBFS_WHY_LEN]);
void     vbfs_parity_close(struct vbfs_parity *p);
/* The store whose blocks are the stripes' other members. */
vbfs_err vbfs_parity_set_store(struct vbfs_parity *p, const char *store, char why[VBFS_WHY_LEN]);
/* vbfs_heal_block's parity step: true with verified bytes in buf. */
bool     vbfs_parity_heal(struct vbfs_parity *p, const struct vbfs_entry *e, uint64_t block,
			  const uint8_t expected[VBFS_DIGEST_LEN], void *buf,
			  vbfs_event_fn refused, void *ctx);

#endif
