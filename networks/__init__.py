"""Facts about the networks that need no Jittor: their shapes and FLOPs (``shapes``).
model.py builds its layers from these."""
