"""Build a real image data set offline: every emoji of the Noto Color Emoji font, 128 px.

    python build_emoji.py data              # writes data/128/emoji_1F600.png, ...
    python resize.py data/128 --min_size 8  # then data/64 ... data/8 for training
    python build_emoji.py data --heldout data_heldout   # every 8th emoji to data_heldout/128

Which emoji the font has is read from the font file itself: every character of its character
map (cmap) and every multi-codepoint sequence its ligature table (GSUB) forms (ZWJ sequences,
skin tones, flags, keycaps). Each is drawn with Pillow at the font's bitmap size and kept when
Pillow shapes it into one coloured glyph and its picture differs from all kept so far; it is
centred on a white 128x128 background and saved as ``emoji_<codepoints in hex, '_'-joined>.png``.
Needs no Jittor.
"""
import argparse
import os
import struct
import sys

from PIL import Image, ImageDraw, ImageFont, features

from runtime import cli
from runtime.cli import UsageError
from files.atomic import atomic_write, make_folder

DEFAULT_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
FONT_INSTALL_HINT = "sudo apt-get install fonts-noto-color-emoji"
FONT_SIZE = 109  # the size of the font's embedded bitmaps (CBDT strike), 136x128 px glyphs
IMAGE_SIZE = 128
HELDOUT_EVERY = 8  # with --heldout, the 8th, 16th, ... distinct emoji go to the held-out set
BACKGROUND = (255, 255, 255)
FIRST_NON_ASCII = 0x80  # ASCII digits, '#' and '*' are only keycap parts, drawn as plain text
PRIVATE_USE = ((0xE000, 0xF8FF), (0xF0000, 0x10FFFF))  # the font's aliases of sequences
ZWJ = 0x200D
SKIN_TONES = ((0x1F3FB, 0x1F3FF),)  # emoji modifiers: they follow the emoji they modify
# Codepoints that never start an emoji sequence: they modify the emoji before them.
COMPONENTS = ((ZWJ, ZWJ), (0xFE0F, 0xFE0F), (0x20E3, 0x20E3), (0x1F3FB, 0x1F3FF),
              (0x1F9B0, 0x1F9B3), (0xE0020, 0xE007F), (0x2640, 0x2640), (0x2642, 0x2642))
MARGIN = 4  # px of transparent border drawn around each glyph, so nothing is clipped

# OpenType table details used below (https://learn.microsoft.com/typography/opentype/spec/)
CMAP_SEGMENTED_COVERAGE = 12  # cmap subtable format with 32-bit codepoint groups
CMAP_SEGMENT_MAPPING = 4  # cmap subtable format for the Basic Multilingual Plane
GSUB_LIGATURE = 4  # GSUB lookup type: several glyphs -> one
GSUB_EXTENSION = 7  # GSUB lookup type wrapping another type behind a 32-bit offset
FONT_COLLECTION_TAG = b"ttcf"  # first bytes of a .ttc font collection (several fonts in one file)
COLOUR_TABLES = ("CBDT", "sbix", "COLR", "SVG ")  # colour glyphs: bitmaps, Apple's, layers, SVG


class _FontFile:
    """Just enough of an OpenType reader to list a font's characters and ligatures."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        self.tables = {}
        for i in range(self.u16(4)):
            tag, _, offset, _ = struct.unpack_from(">4sIII", self.data, 12 + 16 * i)
            self.tables[tag.decode("latin-1")] = offset

    def u16(self, offset):
        return struct.unpack_from(">H", self.data, offset)[0]

    def u32(self, offset):
        return struct.unpack_from(">I", self.data, offset)[0]

    def character_map(self):
        """{codepoint: glyph id} from the cmap table's Unicode subtables (formats 4 and 12)."""
        cmap = self.tables["cmap"]
        mapping = {}
        for i in range(self.u16(cmap + 2)):
            _, _, offset = struct.unpack_from(">HHI", self.data, cmap + 4 + 8 * i)
            sub = cmap + offset
            fmt = self.u16(sub)
            if fmt == CMAP_SEGMENTED_COVERAGE:
                for j in range(self.u32(sub + 12)):
                    start, end, glyph = struct.unpack_from(">III", self.data, sub + 16 + 12 * j)
                    for code in range(start, end + 1):
                        mapping.setdefault(code, glyph + code - start)
            elif fmt == CMAP_SEGMENT_MAPPING:
                mapping.update((c, g) for c, g in self._segment_mapping(sub) if c not in mapping)
        return mapping

    def _segment_mapping(self, sub):
        segments = self.u16(sub + 6) // 2
        ends, starts = sub + 14, sub + 16 + 2 * segments
        deltas, range_offsets = starts + 2 * segments, starts + 4 * segments
        for s in range(segments):
            start, end = self.u16(starts + 2 * s), self.u16(ends + 2 * s)
            delta, range_offset = self.u16(deltas + 2 * s), self.u16(range_offsets + 2 * s)
            for code in range(start, min(end, 0xFFFE) + 1):
                if range_offset:
                    glyph = self.u16(range_offsets + 2 * s + range_offset + 2 * (code - start))
                    glyph = (glyph + delta) & 0xFFFF if glyph else 0
                else:
                    glyph = (code + delta) & 0xFFFF
                if glyph:
                    yield code, glyph

    def _coverage(self, offset):
        if self.u16(offset) == 1:
            return [self.u16(offset + 4 + 2 * i) for i in range(self.u16(offset + 2))]
        glyphs = []
        for i in range(self.u16(offset + 2)):
            start, end, _ = struct.unpack_from(">HHH", self.data, offset + 4 + 6 * i)
            glyphs.extend(range(start, end + 1))
        return glyphs

    def ligatures(self):
        """Glyph-id sequences that the GSUB table's ligature lookups join into one glyph."""
        if "GSUB" not in self.tables:
            return []
        gsub = self.tables["GSUB"]
        lookups = gsub + self.u16(gsub + 8)
        found = []
        for i in range(self.u16(lookups)):
            lookup = lookups + self.u16(lookups + 2 + 2 * i)
            kind = self.u16(lookup)
            for j in range(self.u16(lookup + 4)):
                sub, sub_kind = lookup + self.u16(lookup + 6 + 2 * j), kind
                if sub_kind == GSUB_EXTENSION:
                    sub_kind, sub = self.u16(sub + 2), sub + self.u32(sub + 4)
                if sub_kind == GSUB_LIGATURE:
                    found.extend(self._ligature_subtable(sub))
        return found

    def _ligature_subtable(self, sub):
        for k, first in enumerate(self._coverage(sub + self.u16(sub + 2))):
            ligature_set = sub + self.u16(sub + 6 + 2 * k)
            for m in range(self.u16(ligature_set)):
                ligature = ligature_set + self.u16(ligature_set + 2 + 2 * m)
                count = self.u16(ligature + 2)
                yield [first] + [self.u16(ligature + 4 + 2 * q) for q in range(count - 1)]


def _in_ranges(code, ranges):
    return any(low <= code <= high for low, high in ranges)


def _misplaced(sequence):
    """True when ``sequence`` starts with a component (or gender sign) or has a skin tone
    right after a ZWJ: it is written backwards."""
    return _in_ranges(sequence[0], COMPONENTS) or any(
        _in_ranges(code, SKIN_TONES) and previous == ZWJ
        for previous, code in zip(sequence, sequence[1:]))


def order_sequences(sequences):
    """Sort ``sequences`` so that when several draw the same picture the one in Unicode's order
    comes first. The font also lists sequences backwards (for right-to-left text), so prefer:
    not misplaced; starting with an emoji that takes skin tones (a person comes before what
    it holds or wears); then the larger first codepoint (a man before his children)."""
    sequences = set(sequences)
    takes_tones = {s[0] for s in sequences if len(s) == 2 and _in_ranges(s[1], SKIN_TONES)}
    return sorted(sequences, key=lambda s: (_misplaced(s), s[0] not in takes_tones, -s[0], s))


def emoji_sequences(font_path):
    """Candidate emoji of the font as codepoint tuples, in the order build() prefers them when
    two draw the same picture: its characters (not ASCII, not private use), then the codepoint
    sequences of its ligatures (see order_sequences)."""
    font = _FontFile(font_path)
    cmap = font.character_map()
    codepoint_of = {}
    for code, glyph in sorted(cmap.items()):
        codepoint_of.setdefault(glyph, code)
    singles = sorted((code,) for code in cmap
                     if code >= FIRST_NON_ASCII and not _in_ranges(code, PRIVATE_USE))
    sequences = {tuple(codepoint_of[g] for g in glyphs) for glyphs in font.ligatures()
                 if all(g in codepoint_of for g in glyphs)}
    return singles + order_sequences(s for s in sequences if len(s) > 1)


def load_font(font_path=DEFAULT_FONT):
    """The emoji font at its bitmap size, with complex text layout when Pillow has it."""
    if not os.path.isfile(font_path):
        raise UsageError(f"emoji font not found: {font_path} (install it with: "
                         f"{FONT_INSTALL_HINT}, or pass --font)")
    try:
        with open(font_path, "rb") as f:
            collection = f.read(4) == FONT_COLLECTION_TAG
        tables = set() if collection else set(_FontFile(font_path).tables)
    except (OSError, struct.error, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read {font_path} as an OpenType font ({err}); pass a colour "
                         f"emoji font (.ttf) with --font") from None
    if collection:
        raise UsageError(f"{font_path} is a font collection (.ttc), not one font: pass a single "
                         f"colour emoji font (.ttf) with --font, e.g. {DEFAULT_FONT}")
    if not tables & set(COLOUR_TABLES):
        raise UsageError(f"{font_path} has no colour glyphs (none of the tables "
                         f"{', '.join(t.strip() for t in COLOUR_TABLES)}): the emoji would be "
                         f"monochrome; pass a colour emoji font with --font, e.g. {DEFAULT_FONT}")
    layout = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
    try:
        return ImageFont.truetype(font_path, FONT_SIZE, layout_engine=layout)
    except OSError as err:
        raise UsageError(f"cannot use {font_path} as a colour emoji font at size {FONT_SIZE} "
                         f"({err}); install Noto Color Emoji with: {FONT_INSTALL_HINT}") from err


def render_emoji(font, text, glyph_width):
    """``text`` drawn centred on a white IMAGE_SIZE square (RGB), or None when the font does
    not shape it into one visible glyph (missing, blank, or several glyphs side by side)."""
    try:
        advance = font.getlength(text)
        left, top, right, bottom = font.getbbox(text, mode="RGBA")
    except (OSError, ValueError, RuntimeError):  # e.g. raqm cannot lay out a control character
        return None
    if not 0 < advance <= glyph_width or right <= left or bottom <= top:
        return None
    glyph = Image.new("RGBA", (right - left + 2 * MARGIN, bottom - top + 2 * MARGIN))
    ImageDraw.Draw(glyph).text((MARGIN - left, MARGIN - top), text, font=font,
                               embedded_color=True)
    ink = glyph.getchannel("A").getbbox()
    if ink is None:
        return None
    glyph = glyph.crop(ink)
    if max(glyph.size) > IMAGE_SIZE:  # not in Noto Color Emoji, whose glyphs fit
        scale = IMAGE_SIZE / max(glyph.size)
        glyph = glyph.resize((max(1, round(glyph.width * scale)),
                              max(1, round(glyph.height * scale))), Image.LANCZOS)
    canvas = Image.new("RGBA", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND + (255,))
    position = ((IMAGE_SIZE - glyph.width) // 2, (IMAGE_SIZE - glyph.height) // 2)
    canvas.alpha_composite(glyph, position)
    return canvas.convert("RGB")


def file_name(sequence):
    return "emoji_" + "_".join(f"{code:04X}" for code in sequence) + ".png"


def build(out_root, font_path=DEFAULT_FONT, limit=None, sequences=None, progress=True,
          heldout_root=None):
    """Write ``out_root/128/emoji_*.png``, one per distinct emoji of the font (the first
    ``limit`` of them when given; ``sequences`` replaces the font's list, for tests).
    With ``heldout_root``, every HELDOUT_EVERY-th distinct emoji goes to ``heldout_root/128``
    instead: images a model trained on ``out_root`` never sees, for ``evaluate.py``.
    Returns the names written (both folders), in order, and the number of candidates rejected.
    Existing files of the same name are overwritten."""
    font = load_font(font_path)
    if sequences is None:
        sequences = emoji_sequences(font_path)
    glyph_width = font.getlength("\U0001F600") or FONT_SIZE * 2  # one emoji's advance
    out_dir = os.path.join(out_root, str(IMAGE_SIZE))
    make_folder(out_dir)  # WriteError (one line) when it cannot be made
    heldout_dir = None
    if heldout_root is not None:
        heldout_dir = os.path.join(heldout_root, str(IMAGE_SIZE))
        make_folder(heldout_dir)
    seen, written, rejected = set(), [], 0
    for sequence in sequences:
        if limit is not None and len(written) >= limit:
            break
        image = render_emoji(font, "".join(map(chr, sequence)), glyph_width)
        pixels = image.tobytes() if image is not None else None
        if image is None or pixels in seen:
            rejected += 1
            continue
        seen.add(pixels)
        name = file_name(sequence)
        written.append(name)
        held_out = heldout_dir is not None and len(written) % HELDOUT_EVERY == 0
        with atomic_write(os.path.join(heldout_dir if held_out else out_dir, name),
                          suffix=".png") as temporary:
            image.save(temporary)
        if progress and len(written) % 500 == 0:
            print(f"build_emoji.py: {len(written)} emoji written", file=sys.stderr)
    return written, rejected


def main(args):
    written, rejected = build(args.out, args.font, args.limit, progress=not args.quiet,
                              heldout_root=args.heldout)
    note = "" if features.check("raqm") else (
        " (Pillow has no raqm: multi-codepoint emoji could not be shaped and were left out)")
    where = os.path.join(args.out, str(IMAGE_SIZE))
    if args.heldout is not None:
        n_heldout = len(written) // HELDOUT_EVERY
        where = (f"{where} ({len(written) - n_heldout}) and "
                 f"{os.path.join(args.heldout, str(IMAGE_SIZE))} ({n_heldout}, held out)")
    print(f"build_emoji.py: {len(written)} emoji written to {where}, {rejected} candidates left out "
          f"(not shaped into one glyph, blank, or a duplicate picture){note}")
    return written


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Render every emoji of the Noto Color Emoji font, centred on white, into "
                    "OUT/128/emoji_<codepoints>.png: a real data set that needs no download.")
    parser.add_argument("out", help="data set folder; the images go to OUT/128")
    parser.add_argument("--font", default=DEFAULT_FONT,
                        help=f"colour emoji font file (default: {DEFAULT_FONT}, from the "
                             f"Debian package fonts-noto-color-emoji)")
    parser.add_argument("--limit", type=int, default=None,
                        help="write only the first LIMIT distinct emoji (default: all)")
    parser.add_argument("--heldout", metavar="DIR", default=None,
                        help=f"put every {HELDOUT_EVERY}th emoji in DIR/128 instead of OUT/128: a "
                             "held-out set for evaluate.py (default: none, all go to OUT/128)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1 (leave it out for all), got {args.limit}")
    return args


if __name__ == "__main__":
    # a bad font: exit 2; an output that cannot be written (WriteError): 1; Ctrl-C 130, SIGTERM 143
    cli.run(argparse.ArgumentParser(prog="build_emoji.py"), lambda: main(parse_args()))
