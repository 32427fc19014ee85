/* freeway: the command-line tool. Dispatches to one command per file. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"audit", fw_cli_audit, "count a category's records at every hop and show where they differ"},
    {"category", fw_cli_category, "create, list, describe, alter and delete categories"},
    {"send", fw_cli_send, "send stdin's lines to a category, one record per line"},
    {"tail", fw_cli_tail, "print a category's records as they arrive, with checkpoints"},
    {"status", fw_cli_status, "nodes, bucket owners, open segments, copier and subscriber lag"},
    {"verify", fw_cli_verify, "check segment files or whole roots for damage"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: freeway COMMAND [OPTIONS] [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`freeway COMMAND --help` explains a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("freeway %s\n", FW_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "freeway: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
