"""Developer tools, run from the repository root as ``python -m tools.NAME``: the benchmarks,
the oneDNN kernel timer, and the PyTorch helpers that made the fixtures and the comparisons."""
