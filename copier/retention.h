/*
 * Retention (--retention): deletes source segments that are sealed, copied
 * whole to every destination this copier is configured with (as recorded in
 * ZooKeeper, read afresh for each pass), and older than the retention by
 * their last write (the seal). Never the newest segment of a bucket, and
 * nothing at all for a bucket whose progress cannot be read. Other
 * destinations fed from the same source must be configured on the copiers
 * that apply retention (docs/decisions.md).
 */
#ifndef CP_RETENTION_H
#define CP_RETENTION_H

#include "copier.h"

/* Starts a pass if one is due and none is running. */
void cp_retention_tick(cp_copier_t *c);

/* 1 if the segment file ends with a valid seal block. */
int cp_segment_sealed(const char *path);

#endif
