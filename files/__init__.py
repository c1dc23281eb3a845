"""Files and formats: checkpoints (Jittor, PyTorch and the references'), atomic writes, image
reading, sample grids and plots."""
