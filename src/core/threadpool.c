/* core/threadpool: a fixed pool of workers for parallel_for. Workers spin
 * briefly on a generation counter before sleeping, so back-to-back kernels
 * (one per node) do not pay a futex wake-up each time. */
#include "core/core.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct oq_threadpool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint generation;
    atomic_int stop;
    /* current job */
    oq_task_fn fn;
    void *ctx;
    size_t n_tasks;
    atomic_size_t next;
    atomic_int active; /* workers still inside the job */
    pthread_mutex_t run_mu; /* one parallel_for at a time */
};

typedef struct worker_arg {
    oq_threadpool *tp;
    size_t index;
} worker_arg;

static void run_tasks(oq_threadpool *tp, size_t thread)
{
    for (;;) {
        size_t t = atomic_fetch_add_explicit(&tp->next, 1, memory_order_relaxed);
        if (t >= tp->n_tasks)
            break;
        tp->fn(tp->ctx, t, thread);
    }
}

static void *worker_main(void *p)
{
    worker_arg *wa = p;
    oq_threadpool *tp = wa->tp;
    size_t index = wa->index;
    free(wa);
    unsigned seen = atomic_load(&tp->generation);
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&tp->generation, memory_order_acquire)) == seen && !atomic_load(&tp->stop)) {
            if (++spins < 20000) {
#if defined(__x86_64__)
                __builtin_ia32_pause();
#endif
                continue;
            }
            pthread_mutex_lock(&tp->mu);
            while (atomic_load(&tp->generation) == seen && !atomic_load(&tp->stop))
                pthread_cond_wait(&tp->cv, &tp->mu);
            pthread_mutex_unlock(&tp->mu);
        }
        if (atomic_load(&tp->stop))
            return NULL;
        seen = g;
        run_tasks(tp, index);
        atomic_fetch_sub_explicit(&tp->active, 1, memory_order_release);
    }
}

int oq_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

oq_status oq_threadpool_create(int n_threads, oq_threadpool **out)
{
    if (n_threads <= 0)
        n_threads = oq_cpu_count();
    if (n_threads > 256)
        return oq_error(OQ_E_INVALID_ARG, "thread count %d is too large", n_threads);
    oq_threadpool *tp = calloc(1, sizeof *tp);
    if (!tp)
        return oq_error(OQ_E_NOMEM, "out of memory creating a thread pool");
    tp->n = n_threads;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_mutex_init(&tp->run_mu, NULL);
    pthread_cond_init(&tp->cv, NULL);
    if (n_threads > 1) {
        tp->threads = calloc((size_t)n_threads - 1, sizeof(pthread_t));
        if (!tp->threads) {
            oq_threadpool_destroy(tp);
            return oq_error(OQ_E_NOMEM, "out of memory creating a thread pool");
        }
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (!wa || pthread_create(&tp->threads[i - 1], NULL, worker_main, wa) != 0) {
                free(wa);
                tp->n = i; /* threads started so far (plus the caller) */
                oq_threadpool_destroy(tp);
                return oq_error(OQ_E_RUNTIME, "could not start worker thread %d", i);
            }
            wa->tp = tp;
            wa->index = (size_t)i;
        }
    }
    *out = tp;
    return OQ_OK;
}

void oq_threadpool_destroy(oq_threadpool *tp)
{
    if (!tp)
        return;
    if (tp->threads) {
        pthread_mutex_lock(&tp->mu);
        atomic_store(&tp->stop, 1);
        pthread_cond_broadcast(&tp->cv);
        pthread_mutex_unlock(&tp->mu);
        for (int i = 1; i < tp->n; i++)
            pthread_join(tp->threads[i - 1], NULL);
        free(tp->threads);
    }
    pthread_mutex_destroy(&tp->mu);
    pthread_mutex_destroy(&tp->run_mu);
    pthread_cond_destroy(&tp->cv);
    free(tp);
}

int oq_threadpool_size(const oq_threadpool *tp) { return tp ? tp->n : 1; }

void oq_parallel_for(oq_threadpool *tp, size_t n, oq_task_fn fn, void *ctx)
{
    if (n == 0)
        return;
    if (!tp || tp->n == 1 || n == 1) {
        for (size_t i = 0; i < n; i++)
            fn(ctx, i, 0);
        return;
    }
    /* Nested calls (from inside a task) run inline. */
    if (pthread_mutex_trylock(&tp->run_mu) != 0) {
        for (size_t i = 0; i < n; i++)
            fn(ctx, i, 0);
        return;
    }
    tp->fn = fn;
    tp->ctx = ctx;
    tp->n_tasks = n;
    atomic_store(&tp->next, 0);
    atomic_store(&tp->active, tp->n - 1);
    pthread_mutex_lock(&tp->mu);
    atomic_fetch_add_explicit(&tp->generation, 1, memory_order_release);
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
    run_tasks(tp, 0);
    while (atomic_load_explicit(&tp->active, memory_order_acquire) > 0) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
    }
    pthread_mutex_unlock(&tp->run_mu);
}

double oq_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
