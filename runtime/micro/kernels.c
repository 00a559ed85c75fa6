/* Integer kernels (see kernels.h). The int8 matvec has three builds from this file:
 *   portable C (any Cortex-M, -DEDGESLM_KERNEL_PORTABLE),
 *   ACLE DSP (M4/M7/M55 with __ARM_FEATURE_DSP): __sxtb16 unpacks 2 int8 pairs of a 32-bit word,
 *   __smlad does 2 MACs per instruction; two rows share each unpacked input word, and
 *   TVM (-DEDGESLM_KERNEL_TVM): the int32 sums come from TVM-generated C (tvm_matvec.c), requantized here,
 *   MVE / Helium (M55, -DEDGESLM_KERNEL_MVE): vmladavaq_s8 sums 16 int8 products per instruction.
 * Both produce the same int32 sums (integer arithmetic), hence the same logits. */
#include "kernels.h"
#include "exp_tables.h"
#if defined(__ARM_FEATURE_DSP) && !defined(EDGESLM_KERNEL_PORTABLE) && !defined(EDGESLM_KERNEL_TVM) && \
    !defined(EDGESLM_KERNEL_MVE)
#include <arm_acle.h>
#define EDGESLM_DSP 1
/* GCC 12's arm_acle.h has no __ror; this idiom compiles to SXTB16 with its ROR #8 operand */
static inline uint32_t ror8(uint32_t v) { return (v >> 8) | (v << 24); }
#endif

int64_t rshr(int64_t v, int n) {
    if (n > 0) return (v + ((int64_t)1 << (n - 1))) >> n;
    return n == 0 ? v : v * ((int64_t)1 << -n);
}

int32_t sat32(int64_t v) {
    return v > INT32_MAX ? INT32_MAX : (v < INT32_MIN ? INT32_MIN : (int32_t)v);
}

int64_t div_round(int64_t a, int64_t b) {
    return a >= 0 ? (a + b / 2) / b : -((-a + b / 2) / b);
}

uint64_t isqrt64(uint64_t v) {
    uint64_t res = 0, bit = (uint64_t)1 << 62;
    while (bit > v) bit >>= 2;
    while (bit) {
        if (v >= res + bit) { v -= res + bit; res = (res >> 1) + bit; }
        else res >>= 1;
        bit >>= 2;
    }
    return res;
}

int32_t exp_q30(int32_t d_q16) {
    uint32_t x = (uint32_t)(-(int64_t)d_q16);            /* >= 0, Q16 */
    uint32_t n = x >> 16;
    if (n >= EXP_INT_N) return 0;
    int64_t r = EXP_INT[n];
    r = rshr(r * EXP_HI[(x >> 8) & 0xFFu], 30);
    return (int32_t)rshr(r * EXP_LO[x & 0xFFu], 30);
}

int quant_act(const int32_t *x, int8_t *q, int n) {
    int64_t m = 0;
    for (int i = 0; i < n; i++) {
        int64_t a = x[i] < 0 ? -(int64_t)x[i] : x[i];
        if (a > m) m = a;
    }
    int e = 0;
    while (rshr(m, e) > 127) e++;
    for (int i = 0; i < n; i++) {
        int64_t v = rshr(x[i], e);
        q[i] = (int8_t)(v > 127 ? 127 : (v < -127 ? -127 : v));
    }
    return e;
}

static inline int32_t requant(int32_t acc, int32_t mult, int32_t shift, int e) {
    return sat32(rshr((int64_t)acc * mult, shift - e));
}

#ifdef EDGESLM_DSP
/* q[4g..4g+3] -> scratch[2g] = (q0, q2), scratch[2g+1] = (q1, q3) as int16 pairs, matching
 * __sxtb16(w) = (w0, w2) and __sxtb16(__ror(w, 8)) = (w1, w3) of a weight word. */
static void unpack_input(const int8_t *q, int cols, uint32_t *scratch) {
    const uint32_t *q4 = (const uint32_t *)q;
    for (int g = 0; g < cols / 4; g++) {
        uint32_t v = q4[g];
        scratch[2 * g] = __sxtb16(v);
        scratch[2 * g + 1] = __sxtb16(ror8(v));
    }
}

static void matvec_portable(const qlinear_t *lin, const int8_t *q, int e, int32_t *y);

void matvec_q8(const qlinear_t *lin, const int8_t *q, int e, int32_t *y, uint32_t *scratch) {
    const int cols = lin->cols, groups = cols / 4;
    if (cols & 3) {                                      /* rows not word aligned: portable loop */
        matvec_portable(lin, q, e, y);
        return;
    }
    unpack_input(q, cols, scratch);
    int r = 0;
    for (; r + 1 < lin->rows; r += 2) {                  /* two rows share each input word */
        const uint32_t *w0 = (const uint32_t *)(lin->w + (int32_t)r * cols);
        const uint32_t *w1 = (const uint32_t *)(lin->w + (int32_t)(r + 1) * cols);
        const uint32_t *s = scratch;
        int32_t a0 = 0, a1 = 0;
        for (int g = 0; g < groups; g++) {
            uint32_t xe = s[0], xo = s[1], u = *w0++, v = *w1++;
            s += 2;
            a0 = __smlad(__sxtb16(u), xe, a0);
            a0 = __smlad(__sxtb16(ror8(u)), xo, a0);
            a1 = __smlad(__sxtb16(v), xe, a1);
            a1 = __smlad(__sxtb16(ror8(v)), xo, a1);
        }
        for (int k = groups * 4; k < cols; k++) {
            a0 += lin->w[(int32_t)r * cols + k] * q[k];
            a1 += lin->w[(int32_t)(r + 1) * cols + k] * q[k];
        }
        y[r] = requant(a0, lin->mult[r], lin->shift[r], e);
        y[r + 1] = requant(a1, lin->mult[r + 1], lin->shift[r + 1], e);
    }
    for (; r < lin->rows; r++) {
        const int8_t *w = lin->w + (int32_t)r * cols;
        int32_t a = 0;
        for (int k = 0; k < cols; k++) a += w[k] * q[k];
        y[r] = requant(a, lin->mult[r], lin->shift[r], e);
    }
}
#endif

#ifdef EDGESLM_KERNEL_TVM
int edgeslm_tvm_matvec(const int8_t *w, const int8_t *x, int32_t *y, int rows, int cols);
static void matvec_portable(const qlinear_t *lin, const int8_t *q, int e, int32_t *y);

void matvec_q8(const qlinear_t *lin, const int8_t *q, int e, int32_t *y, uint32_t *scratch) {
    (void)scratch;
    if (edgeslm_tvm_matvec(lin->w, q, y, lin->rows, lin->cols) != 0) {   /* no TVM kernel for this shape */
        matvec_portable(lin, q, e, y);
        return;
    }
    for (int r = 0; r < lin->rows; r++) y[r] = requant(y[r], lin->mult[r], lin->shift[r], e);   /* in place */
}
#endif

#ifdef EDGESLM_KERNEL_MVE
#include <arm_mve.h>
static void matvec_portable(const qlinear_t *lin, const int8_t *q, int e, int32_t *y);

void matvec_q8(const qlinear_t *lin, const int8_t *q, int e, int32_t *y, uint32_t *scratch) {
    (void)scratch;
    if (lin->cols & 15) {                                /* not whole 16-byte vectors: portable loop */
        matvec_portable(lin, q, e, y);
        return;
    }
    for (int r = 0; r < lin->rows; r++) {
        const int8_t *w = lin->w + (int32_t)r * lin->cols;
        int32_t a = 0;
        for (int k = 0; k < lin->cols; k += 16) a = vmladavaq_s8(a, vldrbq_s8(w + k), vldrbq_s8(q + k));
        y[r] = requant(a, lin->mult[r], lin->shift[r], e);
    }
}
#endif

#if defined(EDGESLM_DSP) || defined(EDGESLM_KERNEL_TVM) || defined(EDGESLM_KERNEL_MVE)
static void matvec_portable(const qlinear_t *lin, const int8_t *q, int e, int32_t *y) {
#else
void matvec_q8(const qlinear_t *lin, const int8_t *q, int e, int32_t *y, uint32_t *scratch) {
    (void)scratch;
#endif
    for (int r = 0; r < lin->rows; r++) {
        const int8_t *w = lin->w + (int32_t)r * lin->cols;
        int32_t a = 0;                                    /* |sum| <= 127*127*cols: int32 up to 133k cols */
        for (int k = 0; k < lin->cols; k++) a += w[k] * q[k];
        y[r] = requant(a, lin->mult[r], lin->shift[r], e);
    }
}

void rmsnorm_q16(const int32_t *x, const int32_t *w_q16, int32_t *out, int n, int64_t eps_q32) {
    int64_t ss = 0;
    for (int i = 0; i < n; i++) ss += (int64_t)x[i] * x[i];
    uint64_t t = (uint64_t)(ss / n + eps_q32);          /* mean square, Q32 */
    uint64_t sd = t < ((uint64_t)1 << 47) ? isqrt64(t << 16) : isqrt64(t) << 8;   /* rms, Q24 */
    int64_t inv = (int64_t)(((uint64_t)1 << 48) / sd);  /* 1 / rms, Q24 */
    for (int i = 0; i < n; i++) {
        int64_t h = rshr((int64_t)x[i] * inv, 24);      /* Q16 */
        out[i] = sat32(rshr(h * w_q16[i], 16));
    }
}

void embed_q16(const qlinear_t *emb, int token, int32_t *out) {
    const int8_t *row = emb->w + (int32_t)token * emb->cols;
    for (int i = 0; i < emb->cols; i++)
        out[i] = sat32(rshr((int64_t)row[i] * emb->mult[token], emb->shift[token] - 16));
}

void rope_q16(int32_t *x, int n_heads, int head_dim, const int32_t *cos_q30, const int32_t *sin_q30) {
    const int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        int32_t *v = x + h * head_dim;
        for (int i = 0; i < half; i++) {
            int64_t a = v[i], b = v[i + half], c = cos_q30[i], s = sin_q30[i];
            v[i] = sat32(rshr(a * c - b * s, 30));
            v[i + half] = sat32(rshr(b * c + a * s, 30));
        }
    }
}

void silu_mul_q16(int32_t *g, const int32_t *u, int n) {
    for (int i = 0; i < n; i++) {
        int64_t x = g[i], sig;                           /* sigmoid, Q30 */
        if (x >= 0) {
            int64_t e = exp_q30(x < INT32_MAX ? -(int32_t)x : -INT32_MAX);
            sig = ((int64_t)1 << 60) / (((int64_t)1 << 30) + e);
        } else {
            int64_t e = exp_q30((int32_t)x);
            sig = (e << 30) / (((int64_t)1 << 30) + e);
        }
        int64_t s = rshr(x * sig, 30);                   /* silu(g), Q16 */
        g[i] = sat32(rshr(s * u[i], 16));
    }
}
