"""How the networks are computed: their shapes and FLOPs (``architecture``, no Jittor needed),
the oneDNN convolution operator and the fused CPU kernels."""
