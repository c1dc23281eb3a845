"""The synthesis layers' style groups, and the one syntax every tool names a layer range in.

Synthesis layer i works at 4 * 2**i px. The paper (section 3.1) groups them by what their styles
control: coarse (4-8 px: pose, face shape), middle (16-32 px: features, hair style) and fine
(64-1024 px: colour scheme, micro-structure). generate.py's --mixing_range, directions.py's
--layers and the explorer's ``layers=`` all take ``coarse``, ``middle``, ``fine``, ``A-B`` (also
written ``A,B``, the reference's mixing_range tuple) or ``A``.
"""
import re

from networks.shapes import MAX_STEP

LAYER_GROUPS = {"coarse": (0, 1), "middle": (2, 3), "fine": (4, MAX_STEP)}
DEFAULT_LAYER_GROUP = "coarse"          # the reference's generate.py: mixing_range=(0, 1)
LAYER_RANGE_SYNTAX = (f"coarse = 0-1 (4-8 px), middle = 2-3 (16-32 px), fine = 4-{MAX_STEP} "
                      f"(64-1024 px), A-B or A (layer i works at 4*2^i px)")


def parse_layer_range(text):
    """``coarse`` / ``middle`` / ``fine``, ``A-B``, ``A,B`` or ``A`` -> (first, last), inclusive;
    ValueError naming what is expected otherwise."""
    text = str(text).strip()
    if text in LAYER_GROUPS:
        return LAYER_GROUPS[text]
    match = re.fullmatch(r"(\d{1,2})(?:\s*[-,]\s*(\d{1,2}))?", text)
    if not match:
        raise ValueError(f"expected {LAYER_RANGE_SYNTAX}, got {text!r}")
    first = int(match.group(1))
    last = first if match.group(2) is None else int(match.group(2))
    if not 0 <= first <= last <= MAX_STEP:
        raise ValueError(f"a layer range A-B needs 0 <= A <= B <= {MAX_STEP}, got {text!r}")
    return first, last
