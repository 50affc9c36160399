/*
 * parity.h - Reed-Solomon parity over the store's blocks (ISA-L), kept
 * apart from the store; used by source.c to rebuild a damaged block.
 * Not for fs/ or tools/ (they go through vbfs_heal_* and vbfs_parity_build
 * in vbfs.h); the layout and codec are here for the unit test.
 *
 * Layout.  The members are the blocks of every indexed regular file, in
 * two sequences: the full blocks in (file id, block) order, and the short
 * last blocks ordered longest first.  Each sequence is cut into groups of
 * K*S members; a group of n members has s = ceil(n/K) stripes, and the
 * member at position q of the group is data fragment q / s of stripe q % s.
 * So consecutive blocks land in different stripes: a burst of up to M*s
 * damaged blocks in a row costs each stripe at most M fragments, which M
 * parity fragments rebuild.  Small files share stripes with other small
 * files of about their length, so parity stays M/K of the bytes instead of
 * M blocks per file.  A stripe is as long as its longest member; shorter
 * members and absent ones count as zeros.
 *
 * Files in DIR:  parity.dat  the M parity fragments of each stripe, in order
 *                parity.idx  header, the files covered (id, size), and the
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
#define PARITY_MAGIC "VBFSPAR1"
#define PARITY_MAX_FRAGS 255            /* K + M: GF(2^8) */
#define PARITY_S_MAX 16u                /* interleave depth */
#define PARITY_GROUP_BYTES (256u << 20) /* S*M*block_size, the encoder's memory */
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
/* Where member `pos` of a sequence of `total` members sits. */
struct parity_place {
	uint64_t group_start;           /* first position of its group */
	uint32_t nstripes;              /* s: stripes in the group */
	uint32_t stripe;                /* j: its stripe within the group */
	uint32_t index;                 /* i: its data fragment in the stripe */
	uint32_t members;               /* data fragments present in the stripe */
};
void parity_place(uint64_t pos, uint64_t total, uint32_t k, uint32_t s,
		  struct parity_place *out);
/* Stripes in a sequence of `total` members. */
uint64_t parity_nstripes(uint64_t total, uint32_t k, uint32_t s);
/* Interleave depth for k+m at this block size (memory bound). */
uint32_t parity_depth(uint32_t m, uint32_t block_size);

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
