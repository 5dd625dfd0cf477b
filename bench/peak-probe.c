/*
 * The machine's arithmetic peak, measured: independent FMA chains (fp32) and dot-product chains
 * (int8) on every thread, in the widest vectors the compiler targets for this CPU (-march=native).
 * A GEMM through a library measures the library; this measures the ceiling the bench compares
 * against. bench/peak.ts compiles and runs it; nothing in the service uses it.
 *
 *   peak-probe fp32|int8 THREADS  ->  {"kind":..., "threads":..., "gops":..., "isa":...}
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHAINS 12
static long iters = 40000000L;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

#if defined(__AVX512F__)
typedef __m512 vf; typedef __m512i vi;
#define LANES 16
#define F_SET1 _mm512_set1_ps
#define F_FMA _mm512_fmadd_ps
#define F_ADD _mm512_add_ps
#define F_SUM(x) _mm512_reduce_add_ps(x)
#define I_SET1 _mm512_set1_epi32
#define I_ADD _mm512_add_epi32
#define I_SUM(x) _mm512_reduce_add_epi32(x)
#else
typedef __m256 vf; typedef __m256i vi;
#define LANES 8
#define F_SET1 _mm256_set1_ps
#define F_FMA _mm256_fmadd_ps
#define F_ADD _mm256_add_ps
static float F_SUM(__m256 x) { float o[8]; _mm256_storeu_ps(o, x); float s = 0; for (int i = 0; i < 8; i++) s += o[i]; return s; }
#define I_SET1 _mm256_set1_epi32
#define I_ADD _mm256_add_epi32
static int I_SUM(__m256i x) { int o[8]; _mm256_storeu_si256((__m256i *)o, x); int s = 0; for (int i = 0; i < 8; i++) s += o[i]; return s; }
#endif

/* int8 multiply-accumulate of 4 byte pairs per 32-bit lane: VNNI when present, else the AVX2 pair. */
#if defined(__AVX512VNNI__) && defined(__AVX512F__)
#define ISA_INT8 "avx512-vnni"
static inline vi dot(vi acc, vi a, vi b) { return _mm512_dpbusd_epi32(acc, a, b); }
#elif defined(__AVXVNNI__) && !defined(__AVX512F__)
#define ISA_INT8 "avx-vnni"
static inline vi dot(vi acc, vi a, vi b) { return _mm256_dpbusd_avx_epi32(acc, a, b); }
#elif defined(__AVX512F__)
#define ISA_INT8 "avx512bw"
static inline vi dot(vi acc, vi a, vi b) { return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(a, b), _mm512_set1_epi16(1))); }
#else
#define ISA_INT8 "avx2"
static inline vi dot(vi acc, vi a, vi b) { return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))); }
#endif

static void *run_fp32(void *out) {
  vf a[CHAINS];
  for (int c = 0; c < CHAINS; c++) a[c] = F_SET1(1.0f + 0.01f * c);
  vf m = F_SET1(0.999999f), k = F_SET1(1e-7f);
  for (long i = 0; i < iters; i++)
    for (int c = 0; c < CHAINS; c++) a[c] = F_FMA(a[c], m, k);
  vf s = a[0];
  for (int c = 1; c < CHAINS; c++) s = F_ADD(s, a[c]);
  *(float *)out = F_SUM(s);
  return NULL;
}

static void *run_int8(void *out) {
  vi a[CHAINS];
  for (int c = 0; c < CHAINS; c++) a[c] = I_SET1(c);
  vi x = I_SET1(0x01020304), y = I_SET1(0x01010101);
  for (long i = 0; i < iters; i++)
    for (int c = 0; c < CHAINS; c++) a[c] = dot(a[c], x, y);
  vi s = a[0];
  for (int c = 1; c < CHAINS; c++) s = I_ADD(s, a[c]);
  *(int *)out = I_SUM(s);
  return NULL;
}

int main(int argc, char **argv) {
  const char *kind = argc > 1 ? argv[1] : "fp32";
  int threads = argc > 2 ? atoi(argv[2]) : 1;
  if (argc > 3) iters = atol(argv[3]);
  if (threads < 1 || threads > 256) return 2;
  int int8 = strcmp(kind, "int8") == 0;
  pthread_t t[256];
  char sink[256][16];
  double t0 = now();
  for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, int8 ? run_int8 : run_fp32, sink[i]);
  for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
  double dt = now() - t0;
  /* fp32: 2 flops per FMA lane. int8: 4 multiply-adds (8 ops) per 32-bit lane. */
  double ops = (int8 ? 8.0 : 2.0) * LANES * CHAINS * (double)iters * threads;
  printf("{\"kind\":\"%s\",\"threads\":%d,\"gops\":%.1f,\"seconds\":%.3f,\"isa\":\"%s\"}\n", kind, threads, ops / dt / 1e9, dt,
         int8 ? ISA_INT8 : (LANES == 16 ? "avx512f" : "avx2-fma"));
  return 0;
}
