/* kernels/q8: AMX-INT8 microkernels, 32 rows x 32 columns: four 16x16 int32
 * accumulator tiles, per block of 64 k values two A tiles (16 rows x 64 bytes of
 * the blocked A layout) and two B tiles (16 groups of the c4 panel: 16 columns x
 * 4 bytes each) feeding four tile dot products. Exact: tdpbusd / tdpbsud sum
 * u8 x s8 (s8 x u8) products in int32, like vpdpbusd, with no saturation. Then
 * the AVX-512 output stage of the VNNI kernel, row by row. The caller has loaded
 * the tile configuration (oq_q8_amx_begin: the driver does, once per task). */
#include "kernels/q8/epilogue-avx512.h"
#include "kernels/q8/q8.h"

#include <immintrin.h>
#include <stdalign.h>
#include <string.h>

enum { MR = 32, NR = 32, KA = 64 };

/* The palette-1 tile configuration: 8 tiles of 16 rows x 64 bytes. */
typedef struct tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* The driver calls this before a thread's ukernel calls: the tile state is per
 * thread, and ldtilecfg costs as much as a fifth of a 32x32x768 tile product. */
void oq_q8_amx_begin(void)
{
    /* static data, not a stack buffer: GCC does not see ldtilecfg read its
     * operand and dropped the stores filling a local one */
    static const tile_config cfg __attribute__((aligned(64))) = {
        .palette = 1,
        .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
        .rows = {16, 16, 16, 16, 16, 16, 16, 16},
    };
    _tile_loadconfig(&cfg);
}

/* Back to the init state: a context switch then saves no tile data. */
void oq_q8_amx_end(void) { _tile_release(); }

static inline __attribute__((always_inline)) void finish(size_t mr, size_t nr, const int32_t *acc, void *c,
                                                         size_t ldc, const oq_q8_gemm_tile *t)
{
    const __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
    const __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : (nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0);
    for (size_t i = 0; i < mr; i++)
        oq_q8_finish_row_avx512(t, i, _mm512_load_si512(acc + i * NR), _mm512_load_si512(acc + i * NR + 16), m0, m1,
                                c, ldc);
}

OQ_Q8_GEMM_UKERNEL_FUNCTION(oq_q8_gemm_u8s8_32x32c4__amx)
{
    size_t blocks = (kg + 15) / 16;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (size_t q = 0; q < blocks; q++) {
        const uint8_t *aq = a + q * MR * KA, *bq = b + q * 16 * NR * 4;
        /* each product as soon as its tiles are in: loads overlap products */
        _tile_loadd(4, aq, KA);
        _tile_loadd(6, bq, NR * 4);
        _tile_dpbusd(0, 4, 6);
        _tile_loadd(7, bq + 64, NR * 4);
        _tile_dpbusd(1, 4, 7);
        _tile_loadd(5, aq + 16 * KA, KA);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
    }
    alignas(64) int32_t acc[MR * NR];
    _tile_stored(0, acc, NR * 4);
    _tile_stored(1, acc + 16, NR * 4);
    _tile_stored(2, acc + 16 * NR, NR * 4);
    _tile_stored(3, acc + 16 * NR + 16, NR * 4);
    finish(mr, nr, acc, c, ldc, t);
}

OQ_Q8_GEMM_UKERNEL_FUNCTION(oq_q8_gemm_s8u8_32x32c4__amx)
{
    size_t blocks = (kg + 15) / 16;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (size_t q = 0; q < blocks; q++) {
        const uint8_t *aq = a + q * MR * KA, *bq = b + q * 16 * NR * 4;
        /* each product as soon as its tiles are in: loads overlap products */
        _tile_loadd(4, aq, KA);
        _tile_loadd(6, bq, NR * 4);
        _tile_dpbsud(0, 4, 6);
        _tile_loadd(7, bq + 64, NR * 4);
        _tile_dpbsud(1, 4, 7);
        _tile_loadd(5, aq + 16 * KA, KA);
        _tile_dpbsud(2, 5, 6);
        _tile_dpbsud(3, 5, 7);
    }
    alignas(64) int32_t acc[MR * NR];
    _tile_stored(0, acc, NR * 4);
    _tile_stored(1, acc + 16, NR * 4);
    _tile_stored(2, acc + 16 * NR, NR * 4);
    _tile_stored(3, acc + 16 * NR + 16, NR * 4);
    finish(mr, nr, acc, c, ldc, t);
}
