"""How the networks are computed on the CPU: the oneDNN convolution operator, the C++ blur and
the fused kernels for generation, each taking tensors (the network classes are model.py's)."""
