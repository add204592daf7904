/* core/cpu: CPU features from cpuid + xgetbv, read once; ONNXQ_ISA caps the level
 * so every kernel variant can be tested and benchmarked on one machine. */
#include "core/core.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

static oq_cpu_info info;
static oq_isa level;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
static uint64_t xgetbv0(void)
{
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

/* Linux keeps the 8 KiB of AMX tile data off until a process asks for it. */
static bool amx_permitted(void)
{
#if defined(__linux__)
    enum { ARCH_GET_XCOMP_PERM = 0x1022, ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0)
        return false;
    unsigned long bits = 0;
    return syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &bits) == 0 && (bits & (1ul << XFEATURE_XTILEDATA));
#else
    return false;
#endif
}
#endif

static void detect(void)
{
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        bool osxsave = c & (1u << 27);
        uint64_t xcr0 = osxsave ? xgetbv0() : 0;
        bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6;
        info.fma = ymm && (c & (1u << 12));
        info.f16c = ymm && (c & (1u << 29));
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
            info.avx2 = ymm && (b & (1u << 5));
            info.avx512f = zmm && (b & (1u << 16));
            info.avx512dq = zmm && (b & (1u << 17));
            info.avx512bw = zmm && (b & (1u << 30));
            info.avx512vl = zmm && (b & (1u << 31));
            info.avx512vnni = zmm && (c & (1u << 11));
            /* AMX-TILE (edx 24) and AMX-INT8 (edx 25), tile state enabled in XCR0 (bits 17, 18) */
            bool amx = (d & (1u << 24)) && (d & (1u << 25)) && (xcr0 & 0x60000) == 0x60000;
            info.amx_int8 = amx && zmm && amx_permitted();
        }
        if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
            info.avx512bf16 = zmm && (a & (1u << 5));
            info.avxvnni = ymm && (a & (1u << 4));
        }
    }
#endif
    level = OQ_ISA_PORTABLE;
    if (info.avx2 && info.fma)
        level = OQ_ISA_AVX2;
    if (level == OQ_ISA_AVX2 && info.avx512f && info.avx512bw && info.avx512vl && info.avx512dq)
        level = OQ_ISA_AVX512;
    if (level == OQ_ISA_AVX512 && info.avx512vnni)
        level = OQ_ISA_AVX512VNNI;
    if (level == OQ_ISA_AVX512VNNI && info.amx_int8)
        level = OQ_ISA_AMX;
    const char *cap = getenv("ONNXQ_ISA");
    if (cap && *cap) {
        oq_isa want = level;
        if (!strcmp(cap, "portable"))
            want = OQ_ISA_PORTABLE;
        else if (!strcmp(cap, "avx2"))
            want = OQ_ISA_AVX2;
        else if (!strcmp(cap, "avx512"))
            want = OQ_ISA_AVX512;
        else if (!strcmp(cap, "avx512vnni"))
            want = OQ_ISA_AVX512VNNI;
        else if (!strcmp(cap, "amx"))
            want = OQ_ISA_AMX;
        else
            oq_log(OQ_LOG_WARN, "ONNXQ_ISA=%s is not one of portable, avx2, avx512, avx512vnni, amx; ignored", cap);
        if (want < level)
            level = want;
    }
}

const oq_cpu_info *oq_cpu(void)
{
    pthread_once(&once, detect);
    return &info;
}

oq_isa oq_isa_level(void)
{
    pthread_once(&once, detect);
    return level;
}

const char *oq_isa_name(oq_isa isa)
{
    static const char *names[] = {"portable", "avx2", "avx512", "avx512vnni", "amx"};
    return (unsigned)isa <= OQ_ISA_AMX ? names[isa] : "unknown";
}
