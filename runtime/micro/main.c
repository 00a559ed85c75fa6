/* Firmware entry: greedy generation driven over semihosting.
 *
 * argv (semihosting command line): fw.elf MAX_NEW DUMP IDS   with IDS = prompt token ids joined by ':'
 * Output lines (parsed by edgeslm/farm/micro_profile.py):
 *   I vocab=<V> seq=<S> arena=<bytes>
 *   L <pos> <logit0> ... <logitV-1>     after every step when DUMP=1 (Q16 integers)
 *   P <n_prompt> <ticks>                 SysTick ticks of the whole prefill (one step per prompt token)
 *   T <token> <ticks> <cycles>           a generated token, and the SysTick ticks and DWT cycles of the step that
 *                                        consumed it (0 for the last; cycles are 0 under QEMU, real on a board)
 *   S stack=<bytes>                      stack high-water mark (painted stack)
 * Exit status: 0 ok, 2 bad arguments, 3 fault (HardFault handler prints FAULT ... pc=...). */
#include <stdint.h>
#include "model.h"
#include "semihost.h"

uint64_t edgeslm_ticks(void);
uint32_t edgeslm_stack_used(void);
uint32_t edgeslm_cycles(void);

static char cmdline[2048];
static int prompt[MODEL_SEQ];

static const char *next_word(const char *s, const char **end) {
    while (*s == ' ') s++;
    *end = s;
    while (**end && **end != ' ') (*end)++;
    return s;
}

static int parse_int(const char *s, const char *end, int *out) {
    int v = 0;
    if (s == end) return -1;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9' || v > 100000000) return -1;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return 0;
}

static int fail(const char *msg) {
    sh_puts("ERROR ");
    sh_puts(msg);
    sh_puts("\n");
    return 2;
}

static void dump_logits(int pos, const int32_t *logits) {
    char line[16 * 32];
    int n = 0;
    sh_puts("L ");
    sh_put_i64(pos);
    for (int i = 0; i < MODEL_VOCAB; i++) {
        char tmp[16];
        int j = 15, neg = logits[i] < 0;
        uint32_t u = neg ? (uint32_t)(-(int64_t)logits[i]) : (uint32_t)logits[i];
        tmp[j] = 0;
        do { tmp[--j] = (char)('0' + u % 10u); u /= 10u; } while (u);
        if (neg) tmp[--j] = '-';
        tmp[--j] = ' ';
        while (tmp[j]) line[n++] = tmp[j++];
        if (n > (int)sizeof line - 16 || i == MODEL_VOCAB - 1) { line[n] = 0; sh_puts(line); n = 0; }
    }
    sh_puts("\n");
}

static int argmax(const int32_t *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (v[i] > v[best]) best = i;
    return best;
}

int main(void) {
    const char *s, *end;
    int max_new = 0, dump = 0, n = 0;
    if (sh_cmdline(cmdline, sizeof cmdline) != 0) return fail("no semihosting command line");
    next_word(cmdline, &end);                                    /* argv[0] */
    s = next_word(end, &end);
    if (parse_int(s, end, &max_new)) return fail("MAX_NEW is not a number");
    s = next_word(end, &end);
    if (parse_int(s, end, &dump)) return fail("DUMP is not 0 or 1");
    s = next_word(end, &end);
    while (s < end) {
        const char *e = s;
        while (e < end && *e != ':') e++;
        if (n >= MODEL_SEQ) return fail("prompt longer than the context (MODEL_SEQ)");
        if (parse_int(s, e, &prompt[n]) || prompt[n] >= MODEL_VOCAB) return fail("token id out of range");
        n++;
        s = e < end ? e + 1 : e;
    }
    if (n == 0) return fail("empty prompt");
    sh_puts("I vocab=");
    sh_put_i64(MODEL_VOCAB);
    sh_puts(" seq=");
    sh_put_i64(MODEL_SEQ);
    sh_puts(" arena=");
    sh_put_i64(ARENA_BYTES);
    sh_puts("\n");

    const int32_t *logits = 0;
    uint64_t t0 = edgeslm_ticks();
    for (int pos = 0; pos < n; pos++) {
        logits = edgeslm_forward(prompt[pos], pos);
        if (dump) {
            uint64_t pause = edgeslm_ticks();
            dump_logits(pos, logits);
            t0 += edgeslm_ticks() - pause;                       /* printing is not the model's work */
        }
    }
    uint64_t t1 = edgeslm_ticks();
    sh_puts("P ");
    sh_put_i64(n);
    sh_puts(" ");
    sh_put_i64((int64_t)(t1 - t0));
    sh_puts("\n");
    for (int i = 0, pos = n; i < max_new; i++, pos++) {
        int tok = argmax(logits, MODEL_VOCAB);
        uint64_t ticks = 0;
        uint32_t cycles = 0;
        if (i + 1 < max_new && pos < MODEL_SEQ) {
            uint64_t a = edgeslm_ticks();
            uint32_t c = edgeslm_cycles();
            logits = edgeslm_forward(tok, pos);
            cycles = edgeslm_cycles() - c;
            ticks = edgeslm_ticks() - a;
            if (dump) dump_logits(pos, logits);
        }
        sh_puts("T ");
        sh_put_i64(tok);
        sh_puts(" ");
        sh_put_i64((int64_t)ticks);
        sh_puts(" ");
        sh_put_i64(cycles);
        sh_puts("\n");
        if (pos >= MODEL_SEQ) break;
    }
    sh_puts("S stack=");
    sh_put_i64(edgeslm_stack_used());
    sh_puts("\n");
    return 0;
}
