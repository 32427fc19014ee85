/* Command-line helpers several commands share (see cli.h). */
#include "cli.h"

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char **fw_cli_short_category(int argc, char **argv, char **spare)
{
    char **out = calloc((size_t)argc + 1, sizeof(*out));
    if (out == NULL)
        return NULL;
    *spare = NULL;
    for (int i = 0; i < argc; i++) {
        out[i] = argv[i];
        if (strcmp(argv[i], "--") == 0) {
            for (i++; i < argc; i++)
                out[i] = argv[i];
            break;
        }
        if (strcmp(argv[i], "-c") == 0) {
            out[i] = "--category";
            /* The next argument is the category, even one that starts with "-c". */
            if (i + 1 < argc) {
                i++;
                out[i] = argv[i];
            }
        } else if (strncmp(argv[i], "-c", 2) == 0 && *spare == NULL) {
            size_t n = strlen(argv[i]) + sizeof("--category=");
            if ((*spare = malloc(n)) != NULL) {
                snprintf(*spare, n, "--category=%s", argv[i] + 2);
                out[i] = *spare;
            }
        }
    }
    return out;
}

int fw_cli_parsed(const char *cmd, int rc, const char *err, void (*usage)(FILE *out))
{
    if (rc == FW_CONFIG_HELP) {
        usage(stdout);
        return 0;
    }
    if (rc == FW_CONFIG_VERSION) {
        printf("freeway %s\n", FW_VERSION);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "freeway %s: %s\n", cmd, err);
        return 2;
    }
    return -1;
}
