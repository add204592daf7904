/* onnxq CLI: helpers shared by the subcommands (argument parsing, error lines,
 * input loading / random inputs, JSON strings). The CLI only parses arguments
 * and calls the library. */
#ifndef ONNXQ_CLI_H
#define ONNXQ_CLI_H

#include "onnxq.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define ONNXQ_VERSION "0.1.0"

/* Exit codes: 0 success, 1 failure reported by the library or the OS, 2 bad usage. */
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

int cmd_info(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_quantize(int argc, char **argv);

/* Calibration options shared by calibrate and quantize (calibrate.c). */
typedef struct cli_calib {
    const char *data;
    oq_calib_options opt;
    oq_reader_options reader;
    bool quiet;
    double start_ms, last_ms;
} cli_calib;
void cli_calib_init(cli_calib *c);
/* Consumes argv[*i] if it is a calibration option: 0 consumed, -1 not one, >0 usage error exit code. */
int cli_calib_option(int argc, char **argv, int *i, cli_calib *c, const char *usage_text);
/* Opens the data reader for m and hooks the progress bar (unless quiet). */
oq_status cli_calib_open(cli_calib *c, const oq_model *m, oq_data_reader **r);
int cmd_optimize(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_debug(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_eval(int argc, char **argv);

/* Measuring commands (measure.c): progress bar on stderr, sizes, sessions with options. */
typedef struct cli_progress {
    const char *what;
    bool quiet, shown;
    double start_ms, last_ms;
} cli_progress;
void cli_progress_init(cli_progress *p, const char *what, bool quiet);
void cli_progress_update(cli_progress *p, int64_t done, int64_t total);
void cli_progress_end(cli_progress *p); /* ends a bar left unfinished (on error) */
int64_t cli_file_bytes(const char *path); /* -1 when it cannot be read */
const char *cli_base_name(const char *path);
/* Like cli_open, with every session option (emulate_qdq, ...). */
oq_status cli_open_options(const char *path, const oq_session_options *so, oq_model **model, oq_session **session);
/* Prepends "<formatted>: " to the current error message; returns st. */
oq_status cli_error_context(oq_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Prints "onnxq: error: <oq_last_error()>" (or the status text) and returns CLI_EXIT_FAIL. */
int cli_fail(oq_status st);
/* Prints "onnxq: error: <message>" then the usage text to stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *usage, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
bool cli_is_help(const char *arg);
/* ONNXQ_LOG=error|warn|info|debug: how much of the library's log reaches stderr (main calls it). */
void cli_log_from_env(void);
/* Records a failure as the library does (oq_last_error) and returns st. */
oq_status cli_error(oq_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Matches argv[*i] against an option that takes a value: "-o DIR", "--out DIR", "--out=DIR"
 * (short or long may be NULL). Returns 1 and sets *val (advancing *i past a separate value),
 * 0 when argv[*i] is another option, -1 when the value is missing. */
int cli_opt(int argc, char **argv, int *i, const char *short_name, const char *long_name, const char **val);
/* Parses a whole decimal integer in [min, max]; false if it is not one. */
bool cli_parse_long(const char *s, long min, long max, long *out);

/* Inputs for run and bench: "-i NAME=FILE.npy" or "-i FILE.npy" (positional), --random, --seed. */
typedef struct cli_inputs {
    const char **specs;
    size_t n_specs, cap_specs;
    bool random;
    uint64_t seed;
    int64_t batch; /* random inputs: size of a symbolic first (batch) dim; 0: 1 */
} cli_inputs;
/* Records one -i value; false when out of memory. */
bool cli_inputs_add(cli_inputs *in, const char *spec);
void cli_inputs_free(cli_inputs *in);
/* Builds one tensor per session input (in session order). Returns OQ_OK and a
 * caller-owned array of tensors (free with cli_tensors_free). */
oq_status cli_inputs_load(const cli_inputs *in, const oq_session *s, oq_tensor ***out, size_t *n_out);
void cli_tensors_free(oq_tensor **t, size_t n);

/* Loads a model (check_operators as given) and creates a session. */
oq_status cli_open(const char *path, int threads, oq_model **model, oq_session **session);

/* "[batch,3,224,224]"; "?" where a dim is unknown; "(unknown rank)" for ndim -1. */
const char *cli_shape_str(const oq_value_desc *d, char *buf, size_t n);
/* Writes s as a JSON string literal, quotes included. */
void cli_json_string(FILE *f, const char *s);
/* Every char not in [A-Za-z0-9._-] becomes '_'; an empty name becomes "output". */
void cli_sanitize(const char *name, char *buf, size_t n);
/* mkdir -p; returns OQ_OK or OQ_E_IO with a message naming the folder. */
oq_status cli_mkdirs(const char *dir);
double cli_now_ms(void);
/* Element i of a real-valued tensor as a double. */
double cli_value(const oq_tensor *t, int64_t i);
/* Threads a session actually uses for opt.threads == n (0: number of cores). */
int cli_threads_used(int n);
/* Name of the instruction set the kernels use on this CPU. */
const char *cli_isa_name(void);

#endif
