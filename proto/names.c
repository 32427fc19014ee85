/* Category names and segment paths (see names.h). */
#include "names.h"

#include "error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
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
