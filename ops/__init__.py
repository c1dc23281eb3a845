"""How the networks are computed on the CPU: the oneDNN convolution operator and the fused
kernels for generation."""
