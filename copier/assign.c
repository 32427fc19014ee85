/* Bounded-load rendezvous (see assign.h). */
#include "assign.h"

#include "crc32c.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t weight(const char *task, const char *member)
{
    char key[1536];
    int len = snprintf(key, sizeof(key), "%s@%s", task, member);
    if (len < 0)
        return 0;
    if ((size_t)len >= sizeof(key))
        len = (int)sizeof(key) - 1;
    return fw_hash32(key, (size_t)len);
}

int cp_assign(const char *const *tasks, size_t ntasks, const char *const *members, size_t nmembers,
              int *owner)
{
    if (nmembers == 0) {
        for (size_t i = 0; i < ntasks; i++)
            owner[i] = -1;
        return 0;
    }
    size_t *load = calloc(nmembers, sizeof(*load));
    if (load == NULL)
        return -ENOMEM;
    /* floor shares for all, one more for `extra` of them: loads differ by one at most. */
    size_t floor_share = ntasks / nmembers, extra = ntasks % nmembers, topped = 0;
    for (size_t i = 0; i < ntasks; i++) {
        int best = -1;
        uint32_t best_w = 0;
        for (size_t j = 0; j < nmembers; j++) {
            if (load[j] > floor_share || (load[j] == floor_share && topped == extra))
                continue;
            uint32_t w = weight(tasks[i], members[j]);
            /* Ties go to the smaller id (members are sorted), the same everywhere. */
            if (best < 0 || w > best_w) {
                best = (int)j;
                best_w = w;
            }
        }
        owner[i] = best;
        if (++load[best] > floor_share)
            topped++;
    }
    free(load);
    return 0;
}
