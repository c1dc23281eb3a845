"""Facts about the networks that need no Jittor: their shapes and FLOPs (``shapes``) and the
synthesis layers' style groups (``style_layers``). model.py builds its layers from these."""
