"""What the page shows, as one value: the ``State`` a URL's query string holds, parsed and checked
here (no Jittor, so the checks are tested fast).

Every request the page makes carries the whole state in its query string, and the page keeps
the same string in its address bar, so a reload, a bookmark or a shared link shows the same
picture. ``parse_state`` refuses anything it does not know with ``RequestError`` (the server's
400), naming the parameter: a query is untrusted input.

Keys (all optional; the defaults are ``State()``'s):

    view=single|mix|grid  seed=N  psi=X  size=PX
    seed2=N  layers=coarse|middle|fine|A-B|A          (style mixing)
    n=N                                                (grid: seeds seed .. seed + n - 1)
    latents=NAME  index=I                              (a projected latent instead of the seed)
    directions=NAME  edits=K:S,K:S                     (SeFa directions K moved by strength S)
"""
import math
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from networks.shapes import MAX_STEP, size_for_step, step_for_size
from networks.style_layers import DEFAULT_LAYER_GROUP, parse_layer_range

SEED_LIMIT = 2 ** 32                # generate.py's --seed range: 0 .. 2**32 - 1
PSI_RANGE = (-1.0, 2.0)             # truncation psi: beyond these the style leaves W's bulk
DEFAULT_PSI = 0.7                   # generate.py's --truncation default
MIN_SIZE = 4
VIEWS = ("single", "mix", "grid")
DEFAULT_GRID = 16
MAX_GRID = 64
MAX_GRID_PIXELS = 16 * 512 * 512    # one grid's images x pixels: 1024 px 4 images, 256 px 64
MAX_EDITS = 32                      # directions moved at once
MAX_STRENGTH = 20.0                 # |strength| of one direction, in units of its unit vector
MAX_QUERY = 2048                    # characters of one query string
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")   # what a listed file name can be


class RequestError(ValueError):
    """A request the server refuses (HTTP 400); the text is the whole message."""


@dataclass(frozen=True)
class Limits:
    """What this server offers: the largest size, and the names of the files it was given."""
    max_size: int
    latents: tuple = ()
    directions: tuple = ()


@dataclass(frozen=True)
class State:
    view: str = "single"
    seed: int = 0
    psi: float = DEFAULT_PSI
    size: int = 0                   # 0: the largest size the server offers
    seed2: int = 1
    layers: str = DEFAULT_LAYER_GROUP
    n: int = DEFAULT_GRID
    latents: str = ""
    index: int = 0
    directions: str = ""
    edits: tuple = field(default=())   # ((direction index, strength), ...), sorted, no zeros

    @property
    def layer_range(self):
        """The mixing layers as (first, last), inclusive."""
        return parse_layers(self.layers)

    @property
    def truncated(self):
        """Whether the truncation trick applies (generate.py leaves it out for psi == 1)."""
        return self.psi != 1.0

    def to_query(self):
        """The canonical query string of this state (``parse_state`` reads it back equal)."""
        pairs = [("view", self.view), ("seed", self.seed), ("psi", repr(float(self.psi))),
                 ("size", self.size), ("seed2", self.seed2), ("layers", self.layers),
                 ("n", self.n)]
        if self.latents:
            pairs += [("latents", self.latents), ("index", self.index)]
        if self.directions:
            pairs.append(("directions", self.directions))
            if self.edits:
                pairs.append(("edits", format_edits(self.edits)))
        return urlencode(pairs, safe=",:")


def parse_layers(text):
    """The ``layers`` parameter -> (first, last) layer, inclusive (networks.style_layers)."""
    try:
        return parse_layer_range(text)
    except ValueError as error:
        raise RequestError(f"layers: {error}") from None


def format_edits(edits):
    return ",".join(f"{k}:{strength!r}" for k, strength in edits)


def _integer(key, text, low, high):
    if not re.fullmatch(r"\d{1,10}", text):
        raise RequestError(f"{key} must be a whole number from {low} to {high}, got {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise RequestError(f"{key} must be from {low} to {high}, got {value}")
    return value


def _number(key, text, low, high):
    try:
        value = float(text)
    except ValueError:
        raise RequestError(f"{key} must be a number from {low} to {high}, got {text!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise RequestError(f"{key} must be a number from {low} to {high}, got {text!r}")
    return value


def _file_name(kind, text, offered):
    if text == "":
        return ""
    if text not in offered:
        listed = ", ".join(offered) if offered else "none"
        shown = text if FILE_NAME.fullmatch(text) else repr(text)
        raise RequestError(f"unknown {kind} file {shown}: this server was started with "
                           f"{listed}")
    return text


def parse_edits(text):
    """``K:S,K:S`` -> ((K, S), ...) sorted by K, zero strengths dropped."""
    if text == "":
        return ()
    items = text.split(",")
    if len(items) > MAX_EDITS:
        raise RequestError(f"edits: at most {MAX_EDITS} directions at once, got {len(items)}")
    edits = {}
    for item in items:
        k_text, colon, strength_text = item.partition(":")
        if not colon:
            raise RequestError(f"edits must be K:S pairs (direction index:strength) separated "
                               f"by commas, got {item!r}")
        k = _integer("edits: direction index", k_text, 0, 100000)
        if k in edits:
            raise RequestError(f"edits: direction {k} given twice")
        edits[k] = _number("edits: strength", strength_text, -MAX_STRENGTH, MAX_STRENGTH)
    return tuple((k, s) for k, s in sorted(edits.items()) if s != 0.0)


def sizes_offered(max_size):
    """The image sides the page offers: powers of two from MIN_SIZE to ``max_size``."""
    return [size_for_step(step) for step in range(MAX_STEP + 1)
            if MIN_SIZE <= size_for_step(step) <= max_size]


def parse_state(query, limits):
    """``State`` from a query string (or a list of (key, value) pairs); ``RequestError`` for a
    key it does not know, a key given twice, or a value out of range."""
    if isinstance(query, str):
        if len(query) > MAX_QUERY:
            raise RequestError(f"query string too long ({len(query)} characters, at most "
                               f"{MAX_QUERY})")
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False,
                              max_num_fields=32)
        except ValueError as error:
            raise RequestError(f"malformed query string: {error}") from None
    else:
        pairs = list(query)
    values = {}
    for key, value in pairs:
        if key in values:
            raise RequestError(f"parameter {key!r} given twice")
        values[key] = value
    known = {f for f in State.__dataclass_fields__}
    unknown = sorted(set(values) - known)
    if unknown:
        raise RequestError(f"unknown parameter {unknown[0]!r} (known: {', '.join(sorted(known))})")

    fields = {}
    if "view" in values:
        if values["view"] not in VIEWS:
            raise RequestError(f"view must be one of {', '.join(VIEWS)}, got {values['view']!r}")
        fields["view"] = values["view"]
    for key in ("seed", "seed2"):
        if key in values:
            fields[key] = _integer(key, values[key], 0, SEED_LIMIT - 1)
    if "psi" in values:
        fields["psi"] = _number("psi (truncation)", values["psi"], *PSI_RANGE)
    size = limits.max_size
    if "size" in values and values["size"] not in ("", "0"):
        size = _integer("size", values["size"], MIN_SIZE, 1 << 20)
        if size > limits.max_size:
            raise RequestError(f"size {size} is larger than this server offers (at most "
                               f"{limits.max_size} px: {', '.join(map(str, sizes_offered(limits.max_size)))})")
        if size not in sizes_offered(limits.max_size):
            raise RequestError(f"size must be a power of two from {MIN_SIZE} to "
                               f"{limits.max_size}, got {size}")
    fields["size"] = size
    if "layers" in values:
        parse_layers(values["layers"])
        fields["layers"] = values["layers"]
    if "n" in values:
        fields["n"] = _integer("n (grid)", values["n"], 1, MAX_GRID)
    fields["latents"] = _file_name("latents", values.get("latents", ""), limits.latents)
    if "index" in values:
        fields["index"] = _integer("index", values["index"], 0, 10 ** 9)
    fields["directions"] = _file_name("directions", values.get("directions", ""),
                                      limits.directions)
    if "edits" in values:
        fields["edits"] = parse_edits(values["edits"])
    state = State(**fields)
    if state.view == "grid" and state.n * state.size ** 2 > MAX_GRID_PIXELS:
        most = max(1, MAX_GRID_PIXELS // state.size ** 2)
        raise RequestError(f"a grid of {state.n} images of {state.size} px is too large: at most "
                           f"{most} at that size")
    if state.view == "mix":
        first, last = state.layer_range
        step = step_for_size(state.size)
        if first > step:
            raise RequestError(f"layers {state.layers} ({first}-{last}) do not exist at "
                               f"{state.size} px (layers 0-{step}): the mixed image would "
                               f"equal the first seed's")
    return state
