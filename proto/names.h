/*
 * Names on disk and in ZooKeeper: categories, bucket directories and segment
 * file names (ROOT/<category>/<bucket>/<20-digit segment id>.seg).
 */
#ifndef FW_NAMES_H
#define FW_NAMES_H

#include <stddef.h>
#include <stdint.h>

#define FW_CATEGORY_MAX 128
#define FW_SEG_NAME_LEN 24 /* 20 digits + ".seg" */
/* Bucket numbers are below this; a category has at most this many buckets. */
#define FW_BUCKETS_MAX 65536

/* 1 if name matches [A-Za-z0-9_.-]{1,128} and is not "." or "..". */
int fw_category_valid(const char *name);

/* "<20-digit id>.seg" into out (FW_SEG_NAME_LEN + 1 bytes). */
void fw_seg_name(char *out, uint64_t segment_id);

/* 0 and *id if name is exactly a segment file name, else -EINVAL. */
int fw_seg_name_parse(const char *name, uint64_t *id);

/* ROOT/<category>/<bucket> into out; -ENAMETOOLONG or FW_EBAD_CATEGORY. */
int fw_seg_bucket_dir(char *out, size_t cap, const char *root, const char *category,
                      uint32_t bucket);

/* The segment ids in the bucket directory dir, sorted; *out is malloc'd. 0 or -errno. */
int fw_seg_list(const char *dir, uint64_t **out, size_t *n);

/*
 * A destination URL as one ZooKeeper node name (copier/<key>/...): '/' and
 * '%' percent-encoded, e.g. "webhdfs:%2F%2Fnn:9870%2Ffreeway". 0, or
 * -ENAMETOOLONG if it does not fit cap.
 */
int fw_dest_key(const char *url, char *out, size_t cap);
/* The URL a key names (the reverse of fw_dest_key), cut to fit cap. */
void fw_dest_key_decode(const char *key, char *out, size_t cap);

#endif
