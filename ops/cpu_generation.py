"""Generation on the CPU through fused kernels, which model.py's ``StyledConvBlock`` runs where
``serves`` (float32, no gradients, on the CPU, one noise map per image). They take tensors; the
network's layers are model.py's.

A synthesis layer is conv, noise, LeakyReLU, AdaIN. Here the convolution's bias is not added in
a pass of its own but by the next operator (the blur, or the fused noise + LeakyReLU + AdaIN), and
noise, LeakyReLU and AdaIN run as one operator (``NOISE_LRELU_ADAIN_SOURCE``): per plane one pass
for the instance-norm statistics (accumulated in double) and one that writes the result, where
Jittor's operators make several passes over the whole activation. The outputs equal the module
path within float32 rounding (test_model.py); docs/benchmark.md measures the gain.
"""
import jittor as jt

from ops import portable

# in0: x (N, C, H, W); in1: noise (N, 1, H, W); in2: noise weight (C); in3, in4: gamma, beta
# (N, C); with BIAS in5, the bias (C) of the convolution before (added first). SLOPE and EPS are
# the model's LeakyReLU slope and instance-norm epsilon.
NOISE_LRELU_ADAIN_SOURCE = r"""
    const int N = in0_shape0, C = in0_shape1;
    const size_t area = (size_t)in0_shape2 * in0_shape3;
    const float slope = SLOPE, eps = EPS;
    #pragma omp parallel for
    for (int p = 0; p < N * C; p++) {
        const int n = p / C, c = p % C;
        const in0_type* x = in0_p + p * area;
        const in1_type* z = in1_p + n * area;
        const float w = in2_p[c], b = BIAS;
        double sum = 0, squares = 0;
        for (size_t i = 0; i < area; i++) {
            float t = (x[i] + b) + w * z[i];
            t = t > 0 ? t : slope * t;
            sum += t;
            squares += (double)t * t;
        }
        const double mean = sum / area;
        const double var = std::max(squares / area - mean * mean, 0.0);
        const float m = (float)mean, k = (float)(in3_p[p] / std::sqrt(var + eps)),
                    beta = in4_p[p];
        out0_type* y = out0_p + p * area;
        for (size_t i = 0; i < area; i++) {
            float t = (x[i] + b) + w * z[i];
            t = t > 0 ? t : slope * t;
            y[i] = (t - m) * k + beta;
        }
    }
"""


def serves(input, noise):
    """True where the fused path runs: float32 generation on the CPU (no gradients) with one
    noise map per image, unless the portable path is asked for."""
    return (jt.flags.no_grad and not jt.flags.use_cuda and not portable.enabled()
            and input.dtype == "float32" and noise.dtype == "float32"
            and noise.shape[:2] == (input.shape[0], 1))


def noise_lrelu_adain_serves(input, noise):
    """True where ``noise_lrelu_adain`` runs as one operator: where ``serves``, with the noise
    at the activation's size."""
    n, _, h, w = input.shape
    return serves(input, noise) and tuple(noise.shape) == (n, 1, h, w)


def noise_lrelu_adain(input, noise, noise_weight, gamma, beta, bias, slope, eps):
    """LeakyReLU(``input`` + ``bias`` + ``noise_weight`` * ``noise``) with ``slope``, then
    instance-normalised (``eps``) and scaled by ``gamma``, shifted by ``beta`` (each (N, C)), as
    one operator; ``noise_weight`` (C), ``bias`` (C) or None. Only where
    ``noise_lrelu_adain_serves``."""
    channels = input.shape[1]
    inputs = [input, noise, noise_weight, gamma, beta]
    if bias is not None:
        inputs.append(bias.reshape((channels,)))
    source = (NOISE_LRELU_ADAIN_SOURCE.replace("SLOPE", repr(slope))
              .replace("EPS", repr(eps))
              .replace("BIAS", "0" if bias is None else "in5_p[c]"))
    return jt.code(input.shape, input.dtype, inputs,
                   cpu_header="#include <algorithm>\n#include <cmath>", cpu_src=source)
