/* onnxq CLI entry point: picks the subcommand and hands it the remaining
 * arguments. Each subcommand lives in its own file. */
#include "cli.h"

#include <string.h>

static const char usage[] =
    "usage: onnxq <command> [options]\n"
    "\n"
    "commands:\n"
    "  info    describe a model: inputs, outputs, opsets, operators, parameters\n"
    "  run     run a model once on .npy inputs (or random data) and save the outputs\n"
    "  bench   measure the latency and peak memory of one or more models\n"
    "  compare run a float model and its quantized version on the same inputs: difference, speed, size\n"
    "  eval    top-1 / top-5 accuracy of one or more models on labelled data\n"
    "  convert load a model and save it again (optionally with external data)\n"
    "  calibrate  record activation ranges over calibration data (JSON table)\n"
    "  quantize   quantize a model to int8 (static with calibration, or dynamic)\n"
    "  optimize run the graph preparation passes (folding, fusions, opset upgrade) and save\n"
    "  report  render JSON reports of compare/eval/bench/debug into one HTML page\n"
    "  debug   rank the layers of a quantized model by the error they add (numeric suite)\n"
    "\n"
    "  onnxq <command> --help   options of a command\n"
    "  onnxq --version          print the version\n";

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
} command;

static const command commands[] = {
    {"info", cmd_info},
    {"run", cmd_run},
    {"bench", cmd_bench},
    {"convert", cmd_convert},
    {"calibrate", cmd_calibrate},
    {"quantize", cmd_quantize},
    {"optimize", cmd_optimize},
    {"report", cmd_report},
    {"debug", cmd_debug},
    {"compare", cmd_compare},
    {"eval", cmd_eval},
};

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(usage, "no command given");
    cli_log_from_env();
    const char *cmd = argv[1];
    if (cli_is_help(cmd)) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0 || strcmp(cmd, "version") == 0) {
        printf("onnxq %s\n", ONNXQ_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0) {
        if (argc < 3) {
            fputs(usage, stdout);
            return 0;
        }
        const command *c = find_command(argv[2]);
        if (!c)
            return cli_usage_error(usage, "unknown command '%s'", argv[2]);
        char help[] = "--help";
        char *args[] = {argv[2], help, NULL};
        return c->fn(2, args);
    }
    const command *c = find_command(cmd);
    if (!c) {
        if (cmd[0] == '-')
            return cli_usage_error(usage, "unknown option '%s'", cmd);
        return cli_usage_error(usage, "unknown command '%s'", cmd);
    }
    /* the subcommand sees argv[0] = its own name */
    return c->fn(argc - 1, argv + 1);
}
