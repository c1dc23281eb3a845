"""The switch to the code that runs under CUDA, on any device: ``STYLEGAN_PORTABLE=1`` makes the
networks use plain Jittor operators only (no oneDNN convolution operator, no fused CPU kernels),
so that the CUDA code path can be run and tested on a CPU."""
import os

ENV_SWITCH = "STYLEGAN_PORTABLE"


def enabled():
    """True when the environment asks for the portable path (read at every call, so that a test
    can switch it)."""
    return os.environ.get(ENV_SWITCH, "0") not in ("", "0")
