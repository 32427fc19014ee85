/* Category names and segment paths (see names.h). */
#include "names.h"

#include "error.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fw_category_valid(const char *name)
{
    size_t n = 0;
    for (; name[n] != '\0'; n++) {
        char c = name[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
        if (!ok || n >= FW_CATEGORY_MAX)
            return 0;
    }
    /* "." and ".." are directory names, not categories. */
    return n > 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

void fw_seg_name(char *out, uint64_t segment_id)
{
    snprintf(out, FW_SEG_NAME_LEN + 1, "%020" PRIu64 ".seg", segment_id);
}

int fw_seg_name_parse(const char *name, uint64_t *id)
{
    if (strlen(name) != FW_SEG_NAME_LEN || strcmp(name + 20, ".seg") != 0)
        return -EINVAL;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -EINVAL;
        unsigned d = (unsigned)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *id = v;
    return 0;
}

int fw_seg_bucket_dir(char *out, size_t cap, const char *root, const char *category,
                      uint32_t bucket)
{
    if (!fw_category_valid(category))
        return FW_EBAD_CATEGORY;
    int n = snprintf(out, cap, "%s/%s/%" PRIu32, root, category, bucket);
    if (n < 0 || (size_t)n >= cap)
        return -ENAMETOOLONG;
    return 0;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int fw_seg_list(const char *dir, uint64_t **out, size_t *n)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -errno;
    size_t cap = 16, count = 0;
    uint64_t *ids = malloc(cap * sizeof(*ids));
    struct dirent *e;
    while (ids != NULL && (e = readdir(d)) != NULL) {
        uint64_t id;
        if (fw_seg_name_parse(e->d_name, &id) < 0)
            continue;
        if (count == cap) {
            uint64_t *more = realloc(ids, cap * 2 * sizeof(*ids));
            if (more == NULL) {
                free(ids);
                ids = NULL;
                break;
            }
            ids = more;
            cap *= 2;
        }
        ids[count++] = id;
    }
    closedir(d);
    if (ids == NULL)
        return -ENOMEM;
    qsort(ids, count, sizeof(*ids), compare_u64);
    *out = ids;
    *n = count;
    return 0;
}

int fw_dest_key(const char *url, char *out, size_t cap)
{
    /* A ZooKeeper node name may hold anything but '/' (and not be "." or
     * ".."); encoding '%' too keeps the mapping reversible. */
    size_t k = 0;
    for (size_t i = 0; url[i] != '\0'; i++) {
        if (k + 4 > cap)
            return -ENAMETOOLONG;
        if (url[i] == '/' || url[i] == '%')
            k += (size_t)snprintf(out + k, 4, "%%%02X", (unsigned char)url[i]);
        else
            out[k++] = url[i];
    }
    if (k >= cap)
        return -ENAMETOOLONG;
    out[k] = '\0';
    return 0;
}

void fw_dest_key_decode(const char *key, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return;
    for (const char *p = key; *p != '\0' && o + 1 < cap; p++) {
        if (p[0] == '%' && (strncmp(p + 1, "2F", 2) == 0 || strncmp(p + 1, "25", 2) == 0)) {
            out[o++] = p[2] == 'F' ? '/' : '%';
            p += 2;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}
