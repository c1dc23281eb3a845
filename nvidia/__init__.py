"""NVIDIA's official StyleGAN v1 models: their networks in Jittor and their files."""
