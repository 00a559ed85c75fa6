/* Integer kernels of the edgeslm micro runtime. Every function has a line-for-line twin in
 * compilers/micro/reference.py: the firmware's logits must equal the reference's bit for bit.
 *
 * Number formats: activations and the residual stream are int32 Q16 (1.0 = 65536); matvec inputs are
 * int8 with a power-of-two per-vector scale (x ~ q << e); weights are int8 per output row with a
 * fixed-point scale (mult in [2^30, 2^31), shift): w ~ q * mult * 2^-shift. */
#ifndef EDGESLM_KERNELS_H
#define EDGESLM_KERNELS_H
#include <stdint.h>

typedef struct {
    const int8_t *w;        /* [rows, cols] row-major, rows 4-byte aligned */
    const int32_t *mult;    /* [rows] */
    const int32_t *shift;   /* [rows] */
    int rows, cols;
} qlinear_t;

int64_t rshr(int64_t v, int n);                 /* round-half-up arithmetic shift right (left if n < 0) */
int32_t sat32(int64_t v);
int64_t div_round(int64_t a, int64_t b);        /* b > 0, rounds half away from zero */
uint64_t isqrt64(uint64_t v);                   /* floor(sqrt(v)) */
int32_t exp_q30(int32_t d_q16);                 /* exp(d) for d <= 0, Q16 in, Q30 out */

/* x_q16[n] -> q[n] int8 with x ~ q << e; returns e */
int quant_act(const int32_t *x, int8_t *q, int n);
/* y[r] = requant(sum_k w[r,k] * q[k]); scratch holds cols/2 words for the DSP kernel */
void matvec_q8(const qlinear_t *lin, const int8_t *q, int e, int32_t *y, uint32_t *scratch);
void rmsnorm_q16(const int32_t *x, const int32_t *w_q16, int32_t *out, int n, int64_t eps_q32);
void embed_q16(const qlinear_t *emb, int token, int32_t *out);
/* rotate-half RoPE over n_heads heads of head_dim in place; cos/sin Q30 rows [head_dim/2] */
void rope_q16(int32_t *x, int n_heads, int head_dim, const int32_t *cos_q30, const int32_t *sin_q30);
void silu_mul_q16(int32_t *g, const int32_t *u, int n);   /* g = silu(g) * u */

#endif
