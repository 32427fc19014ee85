/*
 * cp_assign: which copier works on which bucket of a destination. Every
 * copier computes the same answer from the same inputs (the buckets it sees
 * and the live copiers of the destination, both sorted), so they agree
 * without talking; ZooKeeper claims settle the moments when their views
 * differ.
 *
 * Rendezvous hashing with bounded loads: each bucket goes to the copier that
 * weighs it highest (fw_hash32 of bucket and copier), unless that copier
 * already has its share (buckets / copiers, rounded down, plus one for as
 * many copiers as the division leaves over), in which case to the next. So
 * the loads differ by one bucket at most, and a copier joining or leaving
 * moves about its share, not everything.
 */
#ifndef CP_ASSIGN_H
#define CP_ASSIGN_H

#include <stddef.h>

/*
 * tasks[0..ntasks): bucket keys in one agreed order; members[0..nmembers):
 * copier ids. Fills owner[i] with the index of the member that gets tasks[i]
 * (-1 for every task when there are no members). 0 or -ENOMEM.
 */
int cp_assign(const char *const *tasks, size_t ntasks, const char *const *members, size_t nmembers,
              int *owner);

#endif
