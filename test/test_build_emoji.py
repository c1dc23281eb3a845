"""build_emoji.py on a handful of emoji: files, pixels, sequences, and the missing-font error."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont, features

import build_emoji
from build_emoji import DEFAULT_FONT, build, emoji_sequences
from runtime.cli import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRINNING = (0x1F600,)
US_FLAG = (0x1F1FA, 0x1F1F8)
FAMILY = (0x1F468, 0x200D, 0x1F469, 0x200D, 0x1F467)  # man, woman, girl
KEYCAP_HASH = (0x23, 0x20E3)

needs_font = pytest.mark.skipif(not os.path.isfile(DEFAULT_FONT),
                                reason="fonts-noto-color-emoji is not installed")
needs_raqm = pytest.mark.skipif(not features.check("raqm"),
                                reason="Pillow without raqm cannot shape emoji sequences")


def text(sequence):
    return "".join(map(chr, sequence))


@needs_font
def test_font_lists_characters_and_multi_codepoint_sequences():
    sequences = emoji_sequences(DEFAULT_FONT)
    assert len(sequences) > 3000
    for wanted in (GRINNING, US_FLAG, FAMILY, KEYCAP_HASH):
        assert wanted in sequences
    assert (ord("A"),) not in sequences and (0x30,) not in sequences  # ASCII is left out


@needs_font
def test_grinning_face_is_the_glyph_centred_on_white(tmp_path):
    names, _ = build(str(tmp_path), sequences=[GRINNING], progress=False)
    assert names == ["emoji_1F600.png"]
    with Image.open(tmp_path / "128" / names[0]) as img:
        assert (img.mode, img.size) == ("RGB", (128, 128))
        got = np.asarray(img)

    # independent rendering: draw the glyph, find its ink, composite on white, centre
    font = ImageFont.truetype(DEFAULT_FONT, 109)
    glyph = Image.new("RGBA", (200, 200))
    ImageDraw.Draw(glyph).text((20, 20), text(GRINNING), font=font, embedded_color=True)
    glyph = glyph.crop(glyph.getchannel("A").getbbox())
    expected = Image.new("RGBA", (128, 128), (255, 255, 255, 255))
    expected.alpha_composite(glyph, ((128 - glyph.width) // 2, (128 - glyph.height) // 2))
    np.testing.assert_array_equal(got, np.asarray(expected.convert("RGB")))
    assert got[0, 0].tolist() == got[-1, -1].tolist() == [255, 255, 255]
    face = got[40:90, 40:90].reshape(-1, 3)
    assert (face[:, 0] > 200).mean() > 0.5 and (face[:, 2] < 100).mean() > 0.5  # yellow


@needs_font
@needs_raqm
def test_sequences_become_one_picture_and_unshapeable_text_is_left_out(tmp_path):
    candidates = [GRINNING, US_FLAG, FAMILY, KEYCAP_HASH,
                  (ord("A"),),  # not in the font: blank
                  (0x1F600, 0x1F600),  # two emoji side by side
                  GRINNING]  # the same picture again
    names, rejected = build(str(tmp_path), sequences=candidates, progress=False)
    assert names == ["emoji_1F600.png", "emoji_1F1FA_1F1F8.png",
                     "emoji_1F468_200D_1F469_200D_1F467.png", "emoji_0023_20E3.png"]
    assert rejected == 3
    assert sorted(os.listdir(tmp_path / "128")) == sorted(names)
    pictures = [np.asarray(Image.open(tmp_path / "128" / n)) for n in names]
    for i in range(len(pictures)):
        for j in range(i):
            assert not np.array_equal(pictures[i], pictures[j])
    single_man = np.asarray(build_emoji.render_emoji(
        build_emoji.load_font(), chr(0x1F468), build_emoji.load_font().getlength("\U0001F600")))
    assert not np.array_equal(pictures[2], single_man)  # the family is not just its first glyph


@needs_font
def test_limit_writes_the_first_distinct_emoji_of_the_font(tmp_path):
    names, _ = build(str(tmp_path), limit=5, progress=False)
    assert len(names) == 5 == len(os.listdir(tmp_path / "128"))
    assert names == sorted(names)  # single characters, in codepoint order
    assert all(n.startswith("emoji_") and n.endswith(".png") for n in names)


@pytest.mark.slow
def test_missing_font_fails_with_the_install_command(tmp_path):
    with pytest.raises(UsageError, match="apt-get install fonts-noto-color-emoji"):
        build(str(tmp_path), font_path=str(tmp_path / "NoFont.ttf"), progress=False)
    run = subprocess.run([sys.executable, os.path.join(ROOT, "build_emoji.py"), str(tmp_path),
                          "--font", str(tmp_path / "NoFont.ttf")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.startswith("build_emoji.py: error: emoji font not found")
    assert "fonts-noto-color-emoji" in run.stderr and not (tmp_path / "128").exists()


@needs_font
def test_heldout_gets_every_eighth_emoji_and_nothing_is_in_both(tmp_path):
    train_root, heldout_root = tmp_path / "data", tmp_path / "heldout"
    names, _ = build(str(train_root), limit=17, progress=False, heldout_root=str(heldout_root))
    train = sorted(os.listdir(train_root / "128"))
    heldout = sorted(os.listdir(heldout_root / "128"))
    assert heldout == sorted([names[7], names[15]])           # the 8th and the 16th
    assert len(train) == 15 and not set(train) & set(heldout)
    assert sorted(train + heldout) == sorted(names)
