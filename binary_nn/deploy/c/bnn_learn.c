/* binary_nn device learning: the step. See bnn_learn.h and binary_nn/deploy/online.py,
 * the Python reference this code matches bit for bit.
 *
 * Every rounding is half up, floor(v / 2^s + 1/2), written with shifts of non-negative
 * numbers only (C99 leaves the shift of a negative number to the compiler). */
#include "bnn_learn.h"

#define WEIGHT_ONE 16384
#define STAT_BITS 8
#define ERROR_BITS 16

/* what a step keeps between its forward and its updates */
static int8_t signs[BNN_KEPT_SIGNS][BNN_WIDTH];  /* each hidden layer's output, +-1 */
static uint8_t open_[BNN_KEPT_SIGNS][BNN_WIDTH]; /* whether its neuron learns */
#if BNN_METHOD != BNN_OUTPUT_ONLY
static int32_t delta[BNN_DELTAS][BNN_WIDTH];     /* a layer's error signal */
#endif
static int32_t scores[BNN_CLASSES];
static int32_t error[BNN_CLASSES];

static int32_t round_shift32(int32_t v, int s) {
    if (s == 0) return v;
    v += (int32_t)1 << (s - 1);
    return v >= 0 ? v >> s : -((-(v + 1)) >> s) - 1;
}

static int64_t round_shift64(int64_t v, int s) {
    if (s == 0) return v;
    v += (int64_t)1 << (s - 1);
    return v >= 0 ? v >> s : -((-(v + 1)) >> s) - 1;
}

static int32_t magnitude(int32_t v) { return v < 0 ? -v : v; }

/* W x of neuron j: x is pixels (2p - BNN_PIXEL_OFFSET) for the first layer, else +-1 signs */
static int32_t accumulate(const bnn_layer_t *layer, int j, const uint8_t *pixels,
                          const int8_t *x) {
    const int16_t *w = layer->latent + (int32_t)j * layer->n_in;
    int32_t acc = 0;
    int i;
    if (pixels != 0) {
        for (i = 0; i < layer->n_in; ++i) {
            int32_t v = 2 * (int32_t)pixels[i] - BNN_PIXEL_OFFSET;
            acc += w[i] > 0 ? v : -v;
        }
    } else if (layer->binary) {
        for (i = 0; i < layer->n_in; ++i) acc += (w[i] > 0) == (x[i] > 0) ? 1 : -1;
    } else {
        for (i = 0; i < layer->n_in; ++i) acc += x[i] > 0 ? w[i] : -w[i];
    }
    return acc;
}

/* a hidden layer's forward: signs out, and (learning) the running statistics and the gate */
static void hidden_forward(const bnn_layer_t *layer, const uint8_t *pixels, const int8_t *x,
                           int8_t *out, uint8_t *opens, int train) {
    int j;
    for (j = 0; j < layer->n_out; ++j) {
        int32_t z = accumulate(layer, j, pixels, x) * (1 << STAT_BITS);
        int32_t centred;
        if (train) layer->mu[j] += round_shift32(z - layer->mu[j], BNN_MOMENTUM_SHIFT);
        centred = z - layer->mu[j];
        if (train) {
            layer->mad[j] += round_shift32(magnitude(centred) - layer->mad[j], BNN_MOMENTUM_SHIFT);
            opens[j] = BNN_GATE_Q4 == 0 ||
                       16 * (int64_t)magnitude(centred) <= (int64_t)BNN_GATE_Q4 * layer->mad[j];
        }
        out[j] = centred > 0 ? 1 : -1;
    }
}

static void output_forward(const int8_t *x) {
    int k;
    for (k = 0; k < BNN_CLASSES; ++k) scores[k] = accumulate(&bnn_layers[BNN_LAYERS - 1], k, 0, x);
}

static int arg_max(void) {
    int k, best = 0;
    for (k = 1; k < BNN_CLASSES; ++k)
        if (scores[k] > scores[best]) best = k;
    return best;
}

/* V -= round(round(delta * mul / 2^shift) * x / 2^x_shift), clipped to +-1 */
static void update(const bnn_layer_t *layer, const int32_t *d_in, const uint8_t *opens,
                   const uint8_t *pixels, const int8_t *x) {
    int j, i;
    for (j = 0; j < layer->n_out; ++j) {
        int16_t *w = layer->latent + (int32_t)j * layer->n_in;
        int32_t d;
        if (opens != 0 && !opens[j]) continue;
        d = (int32_t)round_shift64((int64_t)d_in[j] * layer->rate_mul, layer->rate_shift);
        if (d == 0) continue;
        for (i = 0; i < layer->n_in; ++i) {
            int32_t step = pixels != 0 ? round_shift32(d * (2 * (int32_t)pixels[i] - BNN_PIXEL_OFFSET),
                                                       layer->x_shift)
                                       : (x[i] > 0 ? d : -d);
            int32_t v = (int32_t)w[i] - step;
            w[i] = (int16_t)(v > WEIGHT_ONE ? WEIGHT_ONE : v < -WEIGHT_ONE ? -WEIGHT_ONE : v);
        }
    }
}

/* softmax - one_hot in Q16, the exponentials from the table */
static void output_error(int label) {
    static uint32_t t[BNN_CLASSES];
    uint32_t total = 0;
    int32_t top = scores[arg_max()];
    int k;
    for (k = 0; k < BNN_CLASSES; ++k) {
        int64_t q = ((int64_t)(top - scores[k]) * BNN_Q_MUL) >> BNN_Q_SHIFT;
        t[k] = bnn_exp_table[q < BNN_EXP_TABLE - 1 ? q : BNN_EXP_TABLE - 1];
        total += t[k];
    }
    for (k = 0; k < BNN_CLASSES; ++k) {
        error[k] = (int32_t)((t[k] << ERROR_BITS) / total);
        if (k == label) error[k] -= (int32_t)1 << ERROR_BITS;
    }
}

#if BNN_METHOD == BNN_DFA || BNN_METHOD == BNN_DRTP
/* the direct signal of hidden layer k: B_k e (DFA) or B_k[label] (DRTP), where it learns */
static void direct_signal(int k, int label, const uint8_t *opens, int32_t *out) {
    const bnn_layer_t *layer = &bnn_layers[k];
    int j, c;
    for (j = 0; j < layer->n_out; ++j) {
        int32_t s = 0;
        if (opens[j]) {
#if BNN_METHOD == BNN_DFA
            (void)label;
            for (c = 0; c < BNN_CLASSES; ++c) s += layer->feedback[c * layer->n_out + j] * error[c];
#else
            (void)c;
            s = (int32_t)layer->feedback[label * layer->n_out + j] * ((int32_t)1 << ERROR_BITS);
#endif
        }
        out[j] = s;
    }
}
#endif

int bnn_learn_predict(const uint8_t *pixels) {
    const int8_t *x = 0;
    int k;
    for (k = 0; k < BNN_LAYERS - 1; ++k) {
        hidden_forward(&bnn_layers[k], k == 0 ? pixels : 0, x, signs[k % BNN_KEPT_SIGNS], 0, 0);
        x = signs[k % BNN_KEPT_SIGNS];
    }
    output_forward(x);
    return arg_max();
}

void bnn_learn(const uint8_t *pixels, int label) {
    const int8_t *x = 0;
    int k;
    for (k = 0; k < BNN_LAYERS - 1; ++k) {
        int slot = k % BNN_KEPT_SIGNS;
        hidden_forward(&bnn_layers[k], k == 0 ? pixels : 0, x, signs[slot], open_[slot], 1);
#if BNN_STREAMING
        /* streaming DRTP: the signal needs only the label, so the layer learns now and its
         * input is let go (two sign buffers in turn) */
        direct_signal(k, label, open_[slot], delta[0]);
        update(&bnn_layers[k], delta[0], open_[slot], k == 0 ? pixels : 0, x);
#endif
        x = signs[slot];
    }
    output_forward(x);
    output_error(label);
#if BNN_METHOD == BNN_GD
    {
        /* backpropagation: every delta from the weights before the step, then the updates */
        const int32_t *above = error;
        for (k = BNN_LAYERS - 2; k >= 0; --k) {
            const bnn_layer_t *up = &bnn_layers[k + 1];
            int j, c;
            for (j = 0; j < bnn_layers[k].n_out; ++j) {
                int64_t s = 0;
                if (open_[k][j]) {
                    for (c = 0; c < up->n_out; ++c) {
                        int16_t w = up->latent[(int32_t)c * up->n_in + j];
                        int32_t weight = up->binary ? (w > 0 ? 1 : -1) : w;
                        s += (int64_t)weight * above[c];
                    }
                }
                delta[k][j] = (int32_t)round_shift64(s, up->back_shift);
            }
            above = delta[k];
        }
        update(&bnn_layers[BNN_LAYERS - 1], error, 0, 0, signs[BNN_LAYERS - 2]);
        for (k = 0; k < BNN_LAYERS - 1; ++k)
            update(&bnn_layers[k], delta[k], open_[k], k == 0 ? pixels : 0,
                   k == 0 ? 0 : signs[k - 1]);
    }
#else
#if (BNN_METHOD == BNN_DFA || BNN_METHOD == BNN_DRTP) && !BNN_STREAMING
    for (k = 0; k < BNN_LAYERS - 1; ++k) {
        direct_signal(k, label, open_[k], delta[0]);
        update(&bnn_layers[k], delta[0], open_[k], k == 0 ? pixels : 0, k == 0 ? 0 : signs[k - 1]);
    }
#endif
    update(&bnn_layers[BNN_LAYERS - 1], error, 0, 0, x);
#endif
}

/* "layerK.what" without stdio */
static void state_name(char *out, int k, const char *what) {
    static const char prefix[] = "layer";
    int n = 0, i, digits = 0, rest = k;
    for (i = 0; prefix[i] != 0; ++i) out[n++] = prefix[i];
    do { ++digits; rest /= 10; } while (rest > 0);
    for (i = digits - 1, rest = k; i >= 0; --i, rest /= 10) out[n + i] = (char)('0' + rest % 10);
    n += digits;
    out[n++] = '.';
    for (i = 0; what[i] != 0; ++i) out[n++] = what[i];
    out[n] = 0;
}

static uint64_t state_hash;
static void hash_emit(const char *name, int32_t value, int first, int last) {
    uint32_t v = (uint32_t)value;
    int b;
    (void)name, (void)first, (void)last;
    for (b = 0; b < 4; ++b) {
        state_hash ^= (v >> (8 * b)) & 0xffu;
        state_hash *= 0x100000001b3ull;
    }
}

uint64_t bnn_learn_state_hash(void) {
    state_hash = 0xcbf29ce484222325ull;
    bnn_learn_state_each(hash_emit);
    return state_hash;
}

static void emit_row(bnn_emit_t emit, const char *name, const int32_t *wide,
                     const int16_t *narrow, int count) {
    int i;
    for (i = 0; i < count; ++i)
        emit(name, wide != 0 ? wide[i] : (int32_t)narrow[i], i == 0, i == count - 1);
}

void bnn_learn_state_each(bnn_emit_t emit) {
    static char name[32];
    int k, j;
    for (k = 0; k < BNN_LAYERS; ++k) {
        const bnn_layer_t *layer = &bnn_layers[k];
        state_name(name, k, "latent"); /* one row of the (out, in) matrix a line */
        for (j = 0; j < layer->n_out; ++j)
            emit_row(emit, name, 0, layer->latent + (int32_t)j * layer->n_in, layer->n_in);
        if (k < BNN_LAYERS - 1) {
            state_name(name, k, "mu");
            emit_row(emit, name, layer->mu, 0, layer->n_out);
            state_name(name, k, "mad");
            emit_row(emit, name, layer->mad, 0, layer->n_out);
        }
    }
}
