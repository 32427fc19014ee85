/* Names and messages of freeway's error codes, generated from FW_ERROR_MAP. */
#include "error.h"

#include <string.h>

struct fw_error_info {
    int code;
    const char *name;
    const char *message;
};

static const struct fw_error_info fw_errors[] = {
#define FW_ERROR_INFO(name, off, msg) {FW_E##name, "FW_E" #name, msg},
    FW_ERROR_MAP(FW_ERROR_INFO)
#undef FW_ERROR_INFO
};

static const struct fw_error_info *lookup(int code)
{
    for (size_t i = 0; i < sizeof(fw_errors) / sizeof(fw_errors[0]); i++) {
        if (fw_errors[i].code == code)
            return &fw_errors[i];
    }
    return NULL;
}

const char *fw_strerror(int code)
{
    if (code == 0)
        return "success";
    const struct fw_error_info *e = lookup(code);
    if (e != NULL)
        return e->message;
    if (code < 0 && code > -4096)
        return strerror(-code);
    return "unknown error";
}

const char *fw_err_name(int code)
{
    if (code == 0)
        return "OK";
    const struct fw_error_info *e = lookup(code);
    if (e != NULL)
        return e->name;
    if (code < 0 && code > -4096) {
        const char *n = strerrorname_np(-code);
        if (n != NULL)
            return n;
    }
    return "EUNKNOWN";
}
