/* core: internal helpers every part uses — error reporting with context,
 * checked allocation, growable arrays, tensors, thread pool, CPU features. */
#ifndef OQ_CORE_H
#define OQ_CORE_H

#include "onnxq.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define OQ_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define OQ_PRINTF(a, b)
#endif

/* Sets the thread's last-error message and returns st. */
oq_status oq_error(oq_status st, const char *fmt, ...) OQ_PRINTF(2, 3);
/* Prepends context ("while loading 'x': ") to the current message; returns st. */
oq_status oq_error_context(oq_status st, const char *fmt, ...) OQ_PRINTF(2, 3);
void oq_error_clear(void);
void oq_log(oq_log_level level, const char *fmt, ...) OQ_PRINTF(2, 3);

void *oq_malloc(size_t n);                 /* NULL on failure or n == 0 → malloc(1) */
void *oq_calloc(size_t count, size_t size);
void *oq_realloc(void *p, size_t n);
void *oq_aligned_alloc(size_t n);          /* 64-byte aligned; free with oq_aligned_free */
void oq_aligned_free(void *p);
char *oq_strdup(const char *s);
char *oq_strndup(const char *s, size_t n);
/* Grows *arr (element size elem) so it holds at least need elements. */
oq_status oq_grow(void **arr, size_t *cap, size_t need, size_t elem);

/* Checked arithmetic for sizes read from files. */
static inline bool oq_mul_overflow(size_t a, size_t b, size_t *r) { return __builtin_mul_overflow(a, b, r); }
static inline bool oq_add_overflow(size_t a, size_t b, size_t *r) { return __builtin_add_overflow(a, b, r); }

/* Tensors */
/* numel of dims; -1 on negative dim or overflow. */
int64_t oq_shape_numel(int ndim, const int64_t *dims);
/* (Re)sets dtype/shape and makes the tensor own a zeroed buffer large enough. */
oq_status oq_tensor_alloc(oq_tensor *t, oq_dtype dtype, int ndim, const int64_t *dims);
/* Frees owned data (strings included) and resets the struct to empty, keeping name. */
void oq_tensor_release(oq_tensor *t);
/* Deep copy into a new tensor. */
oq_status oq_tensor_clone(const oq_tensor *src, oq_tensor **out);
/* Deep copy of data+shape into dst (dst released first). */
oq_status oq_tensor_copy_into(oq_tensor *dst, const oq_tensor *src);
bool oq_shape_equal(int na, const int64_t *a, int nb, const int64_t *b);
/* "[1,3,224,224]" into buf. */
const char *oq_shape_str(int ndim, const int64_t *dims, char *buf, size_t n);
/* Reads element i of a numeric tensor as double / int64. */
double oq_tensor_get_f64(const oq_tensor *t, int64_t i);
int64_t oq_tensor_get_i64(const oq_tensor *t, int64_t i);
float oq_half_to_float(uint16_t h);
uint16_t oq_float_to_half(float f);
float oq_bf16_to_float(uint16_t h);
uint16_t oq_float_to_bf16(float f);

/* Thread pool: parallel_for over n tasks; fn(ctx, task, thread_index). The
 * caller thread takes part. n_threads == 1 runs inline. */
typedef struct oq_threadpool oq_threadpool;
typedef void (*oq_task_fn)(void *ctx, size_t task, size_t thread);
oq_status oq_threadpool_create(int n_threads, oq_threadpool **out);
void oq_threadpool_destroy(oq_threadpool *tp);
int oq_threadpool_size(const oq_threadpool *tp); /* NULL → 1 */
void oq_parallel_for(oq_threadpool *tp, size_t n, oq_task_fn fn, void *ctx);
int oq_cpu_count(void);

/* CPU features, read once (cpuid + xgetbv). ONNXQ_ISA caps the level. */
/* AMX: AVX512-VNNI plus the AMX-INT8 tile unit, usable once the kernel grants
 * the process its tile state (Linux arch_prctl ARCH_REQ_XCOMP_PERM). */
typedef enum oq_isa { OQ_ISA_PORTABLE = 0, OQ_ISA_AVX2 = 1, OQ_ISA_AVX512 = 2, OQ_ISA_AVX512VNNI = 3, OQ_ISA_AMX = 4 } oq_isa;
typedef struct oq_cpu_info {
    bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512bf16, avxvnni;
    bool amx_int8; /* CPU, XCR0 and the OS permission all say yes */
} oq_cpu_info;
const oq_cpu_info *oq_cpu(void);
oq_isa oq_isa_level(void);   /* best level the CPU and ONNXQ_ISA allow */
const char *oq_isa_name(oq_isa isa);

/* Monotonic time in seconds. */
double oq_now(void);

#endif
