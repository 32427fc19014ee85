/* Option tables: flags, config files and --help (see config.h). */
#include "config.h"

#include "version.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Which options were set already (by file or flag), so defaults fill only the rest. */
#define MAX_OPTIONS 128

static int count_options(const fw_option_t *opts)
{
    int n = 0;
    while (opts[n].name != NULL)
        n++;
    return n;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int parse_uint_prefix(const char **s, uint64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *s = p;
    *out = v;
    return 0;
}

int fw_parse_duration(const char *text, int64_t *ms)
{
    const char *p = text;
    uint64_t v;
    if (parse_uint_prefix(&p, &v) < 0)
        return -EINVAL;
    uint64_t mult;
    if (strcmp(p, "ms") == 0)
        mult = 1;
    else if (strcmp(p, "s") == 0)
        mult = 1000;
    else if (strcmp(p, "m") == 0)
        mult = 60 * 1000;
    else if (strcmp(p, "h") == 0)
        mult = 3600 * 1000;
    else if (*p == '\0' && v == 0)
        mult = 1; /* "0" needs no unit */
    else
        return -EINVAL;
    if (v > (uint64_t)INT64_MAX / mult)
        return -EINVAL;
    *ms = (int64_t)(v * mult);
    return 0;
}

int fw_parse_size(const char *text, uint64_t *bytes)
{
    const char *p = text;
    uint64_t v;
    if (parse_uint_prefix(&p, &v) < 0)
        return -EINVAL;
    int shift;
    if (*p == '\0')
        shift = 0;
    else if (strcmp(p, "K") == 0)
        shift = 10;
    else if (strcmp(p, "M") == 0)
        shift = 20;
    else if (strcmp(p, "G") == 0)
        shift = 30;
    else
        return -EINVAL;
    if (v > (UINT64_MAX >> shift))
        return -EINVAL;
    *bytes = v << shift;
    return 0;
}

static int parse_bool(const char *text, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(text, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcmp(text, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -EINVAL;
}

int fw_parse_u64(const char *text, uint64_t max, uint64_t *out)
{
    const char *p = text;
    uint64_t v;
    if (parse_uint_prefix(&p, &v) < 0 || *p != '\0' || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

int fw_parse_i64(const char *text, int64_t min, int64_t max, int64_t *out)
{
    int neg = *text == '-';
    uint64_t mag;
    if (fw_parse_u64(text + neg, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &mag) < 0)
        return -EINVAL;
    int64_t v = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    if (v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static const char *type_hint(fw_opt_type_t t)
{
    switch (t) {
    case FW_OPT_INT:
        return "an integer";
    case FW_OPT_BOOL:
        return "true or false";
    case FW_OPT_SIZE:
        return "a size such as 4096, 64K, 256M or 1G";
    case FW_OPT_DURATION:
        return "a duration such as 250ms, 5s, 2m or 1h";
    default:
        return "a string";
    }
}

/* Stores text as option o's value in cfg. */
static int set_value(const fw_option_t *o, void *cfg, const char *text, const char *where,
                     char *err, size_t errlen)
{
    char *field = (char *)cfg + o->offset;
    int rc = 0;
    switch (o->type) {
    case FW_OPT_STRING: {
        char *copy = strdup(text);
        if (copy == NULL)
            return -ENOMEM;
        char **slot = (char **)(void *)field;
        free(*slot);
        *slot = copy;
        break;
    }
    case FW_OPT_INT:
        rc = fw_parse_i64(text, -INT64_MAX, INT64_MAX, (int64_t *)(void *)field);
        break;
    case FW_OPT_BOOL:
        rc = parse_bool(text, (int *)(void *)field);
        break;
    case FW_OPT_SIZE:
        rc = fw_parse_size(text, (uint64_t *)(void *)field);
        break;
    case FW_OPT_DURATION:
        rc = fw_parse_duration(text, (int64_t *)(void *)field);
        break;
    }
    if (rc < 0)
        set_err(err, errlen, "%s: \"%s\" is not %s", where, text, type_hint(o->type));
    return rc;
}

int fw_config_split_line(char *line, char **name, char **value)
{
    char *p = line;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 0;
    char *eq = strchr(p, '=');
    if (eq == NULL)
        return -EINVAL;
    char *name_end = eq;
    while (name_end > p && isspace((unsigned char)name_end[-1]))
        name_end--;
    *name_end = '\0';
    char *v = eq + 1;
    while (isspace((unsigned char)*v))
        v++;
    char *v_end = v + strlen(v);
    while (v_end > v && isspace((unsigned char)v_end[-1]))
        v_end--;
    *v_end = '\0';
    *name = p;
    *value = v;
    return 1;
}

static const fw_option_t *find(const fw_option_t *opts, const char *name, size_t len)
{
    for (const fw_option_t *o = opts; o->name != NULL; o++) {
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    }
    return NULL;
}

static int load_file(const fw_option_t *opts, void *cfg, const char *path, char *set, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        int rc = -errno;
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return rc;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        char where[600];
        snprintf(where, sizeof(where), "%s:%d", path, lineno);
        size_t n = strlen(line);
        if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
            set_err(err, errlen, "%s: line too long", where);
            rc = -EINVAL;
            break;
        }
        char *name, *value;
        int kind = fw_config_split_line(line, &name, &value);
        if (kind == 0)
            continue;
        if (kind < 0) {
            set_err(err, errlen, "%s: expected `name = value`", where);
            rc = -EINVAL;
            break;
        }
        const fw_option_t *o = find(opts, name, strlen(name));
        if (o == NULL || strcmp(o->name, "config") == 0) {
            set_err(err, errlen, "%s: unknown option \"%s\"", where, name);
            rc = -EINVAL;
            break;
        }
        snprintf(where, sizeof(where), "%s:%d: %s", path, lineno, o->name);
        rc = set_value(o, cfg, value, where, err, errlen);
        if (rc == 0 && set != NULL)
            set[o - opts] = 1;
    }
    fclose(f);
    return rc;
}

int fw_config_load_file(const fw_option_t *opts, void *cfg, const char *path, char *err,
                        size_t errlen)
{
    return load_file(opts, cfg, path, NULL, err, errlen);
}

/* A default of the form ${VAR:-fallback} takes $VAR when it is set and not empty. */
static void resolve_default(const char *def, char *out, size_t cap)
{
    size_t n = strlen(def);
    const char *sep = strstr(def, ":-");
    if (strncmp(def, "${", 2) == 0 && n > 3 && def[n - 1] == '}' && sep != NULL) {
        char var[128];
        size_t vlen = (size_t)(sep - def - 2);
        if (vlen < sizeof(var)) {
            memcpy(var, def + 2, vlen);
            var[vlen] = '\0';
            const char *env = getenv(var);
            if (env != NULL && *env != '\0') {
                snprintf(out, cap, "%s", env);
                return;
            }
            snprintf(out, cap, "%.*s", (int)(def + n - 1 - (sep + 2)), sep + 2);
            return;
        }
    }
    snprintf(out, cap, "%s", def);
}

int fw_config_parse(const fw_option_t *opts, void *cfg, int argc, char **argv, char ***rest,
                    int *nrest, char *err, size_t errlen)
{
    int n = count_options(opts);
    char set[MAX_OPTIONS] = {0};
    if (n > MAX_OPTIONS) {
        set_err(err, errlen, "too many options");
        return -EINVAL;
    }
    *nrest = 0;
    *rest = argv + argc;

    /* --help and --version win over everything; --config is read before other flags. */
    const char *config_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return FW_CONFIG_HELP;
        if (strcmp(argv[i], "--version") == 0)
            return FW_CONFIG_VERSION;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config_path = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config_path = argv[i] + 9;
    }
    if (config_path != NULL) {
        int rc = load_file(opts, cfg, config_path, set, err, errlen);
        if (rc < 0)
            return rc;
    }

    int i = 1;
    /* Positional arguments are moved to the front of the leftover list, in order. */
    char **positional = argv + 1;
    int npos = 0;
    for (; i < argc; i++) {
        char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            for (i++; i < argc; i++)
                positional[npos++] = argv[i];
            break;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            positional[npos++] = arg;
            continue;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const fw_option_t *o = find(opts, name, len);
        if (o == NULL) {
            set_err(err, errlen, "unknown option --%.*s (see --help)", (int)len, name);
            return -EINVAL;
        }
        const char *value;
        if (eq != NULL) {
            value = eq + 1;
        } else if (o->type == FW_OPT_BOOL) {
            value = "true";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            set_err(err, errlen, "--%s needs a value: %s", o->name, type_hint(o->type));
            return -EINVAL;
        }
        char where[160];
        snprintf(where, sizeof(where), "--%s", o->name);
        int rc = set_value(o, cfg, value, where, err, errlen);
        if (rc < 0)
            return rc;
        set[o - opts] = 1;
    }
    *rest = positional;
    *nrest = npos;

    for (int k = 0; k < n; k++) {
        if (set[k] || opts[k].def == NULL)
            continue;
        char where[160], def[512];
        snprintf(where, sizeof(where), "default of --%s", opts[k].name);
        resolve_default(opts[k].def, def, sizeof(def));
        int rc = set_value(&opts[k], cfg, def, where, err, errlen);
        if (rc < 0)
            return rc;
    }
    return FW_CONFIG_OK;
}

void fw_config_free(const fw_option_t *opts, void *cfg)
{
    for (const fw_option_t *o = opts; o->name != NULL; o++) {
        if (o->type == FW_OPT_STRING) {
            char **slot = (char **)(void *)((char *)cfg + o->offset);
            free(*slot);
            *slot = NULL;
        }
    }
}

void fw_config_usage(const fw_option_t *opts, FILE *out)
{
    for (const fw_option_t *o = opts; o->name != NULL; o++) {
        char left[128];
        if (o->type == FW_OPT_BOOL)
            snprintf(left, sizeof(left), "--%s", o->name);
        else
            snprintf(left, sizeof(left), "--%s %s", o->name, o->metavar ? o->metavar : "VALUE");
        fprintf(out, "  %-28s %s", left, o->help ? o->help : "");
        if (o->def != NULL && o->def[0] != '\0')
            fprintf(out, " (default: %s)", o->def);
        fputc('\n', out);
    }
    fprintf(out, "  %-28s %s\n", "--help", "print this help and exit");
    fprintf(out, "  %-28s %s\n", "--version", "print the version and exit");
}

int fw_config_daemon(const char *prog, const fw_option_t *opts, void *cfg, int argc, char **argv,
                     void (*usage)(FILE *out))
{
    char err[512];
    char **rest;
    int nrest;
    int rc = fw_config_parse(opts, cfg, argc, argv, &rest, &nrest, err, sizeof(err));
    if (rc == FW_CONFIG_HELP || rc == FW_CONFIG_VERSION) {
        if (rc == FW_CONFIG_HELP)
            usage(stdout);
        else
            printf("%s %s\n", prog, FW_VERSION_STRING);
        fw_config_free(opts, cfg);
        return 0;
    }
    if (rc < 0 || nrest > 0) {
        fprintf(stderr, "%s: %s\n", prog, rc < 0 ? err : "unexpected argument");
        usage(stderr);
        fw_config_free(opts, cfg);
        return 2;
    }
    return -1;
}
