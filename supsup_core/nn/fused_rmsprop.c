/* One RMSprop step over a float32 tensor in a single pass, optionally writing the masked weight.
 *
 * Per element, the operations of torch.optim.RMSprop (not centered) in torch's order:
 *   g  = grad + weight_decay * p                          grad.add(p, alpha=weight_decay)
 *   v  = v * alpha + (beta * g) * g                       v.mul_(alpha).addcmul_(g, g, value=beta)
 *   d  = sqrt(v) + eps                                    (beta = 1 - alpha, rounded from double as in torch)
 *   momentum > 0:  b = b * momentum + g / d               b.mul_(momentum).addcdiv_(g, d)
 *                  p = p + (-lr) * b                      p.add_(b, alpha=-lr)
 *   otherwise:     p = p + (-lr * g) / d                  p.addcdiv_(g, d, value=-lr)
 *   masked != NULL: masked = p >= 0 ? w : 0               the threshold mask, W ⊙ M for the next forward
 * The results agree with torch's to about one unit in the last place per step, not bitwise: torch's
 * vectorised kernels fuse some multiply-adds and round sqrt to within one ulp, this rounds each operation.
 *
 * torch needs five passes over memory for the update (and two more for the mask); this is one, which is
 * what makes the masked training step as cheap as a dense one on a CPU. The loops are specialised by hand
 * on momentum and mask so each one vectorises (no branch inside).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float keep_if_nonnegative(float w, float p) {
    /* w where p >= 0 (also for p == -0.0, as torch.ge does), else +0.0; branch-free so the loop vectorises */
    uint32_t bits, keep = -(uint32_t)(p >= 0.0f);
    memcpy(&bits, &w, sizeof bits);
    bits &= keep;
    memcpy(&w, &bits, sizeof bits);
    return w;
}

void supsup_rmsprop_step(float *restrict p, const float *restrict grad, float *restrict v, float *restrict buf,
                         const float *restrict w, float *restrict masked, int64_t n, float lr, float alpha,
                         float beta, float eps, float weight_decay, float momentum) {
    const float neg_lr = -lr;
    if (buf && masked) {
#pragma omp parallel for simd schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; ++i) {
            float g = grad[i] + weight_decay * p[i];
            float vi = v[i] * alpha + (beta * g) * g;
            float b = buf[i] * momentum + g / (sqrtf(vi) + eps);
            float pi = p[i] + neg_lr * b;
            v[i] = vi;
            buf[i] = b;
            p[i] = pi;
            masked[i] = keep_if_nonnegative(w[i], pi);
        }
    } else if (buf) {
#pragma omp parallel for simd schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; ++i) {
            float g = grad[i] + weight_decay * p[i];
            float vi = v[i] * alpha + (beta * g) * g;
            float b = buf[i] * momentum + g / (sqrtf(vi) + eps);
            v[i] = vi;
            buf[i] = b;
            p[i] = p[i] + neg_lr * b;
        }
    } else if (masked) {
#pragma omp parallel for simd schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; ++i) {
            float g = grad[i] + weight_decay * p[i];
            float vi = v[i] * alpha + (beta * g) * g;
            float pi = p[i] + (neg_lr * g) / (sqrtf(vi) + eps);
            v[i] = vi;
            p[i] = pi;
            masked[i] = keep_if_nonnegative(w[i], pi);
        }
    } else {
#pragma omp parallel for simd schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; ++i) {
            float g = grad[i] + weight_decay * p[i];
            float vi = v[i] * alpha + (beta * g) * g;
            v[i] = vi;
            p[i] = p[i] + (neg_lr * g) / (sqrtf(vi) + eps);
        }
    }
}
