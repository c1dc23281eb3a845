"""The generate.py command that makes the picture a state shows, or the closest one, and whether
it makes exactly that picture.

generate.py draws every image of a run from one ``--seed``: a one-image ``sample.png``
(``--n_row 1 --n_col 1 --n_mixing 0``) is exactly the explorer's picture of that seed, and a grid
of seeds is that command once per seed. It cannot mix two given seeds (its mixing grids draw
both from the one seed), so a mix gets the nearest command and says so. ``--w`` (projected
latents) and ``--direction``/``--strength`` (SeFa edits) appear only in states that use them.
"""
import shlex

from explorer.state import DEFAULT_PSI
from networks.style_layers import LAYER_GROUPS

OUT = "generated"


def _quote(path):
    return shlex.quote(path)


def _seed_flags(state, seed):
    return [f"--size {state.size}", f"--seed {seed}", f"--truncation {state.psi!r}",
            "--n_row 1 --n_col 1 --n_mixing 0"]


def _layers_flag(state):
    first, last = state.layer_range
    named = [name for name, layers in LAYER_GROUPS.items() if layers == (first, last)]
    return named[0] if named else f"{first}-{last}"


NVIDIA_NOTE = ("for NVIDIA's models the explorer draws as for the original's (every layer "
               "truncated towards the mean of mapped latents, one noise map a size); generate.py "
               "follows NVIDIA's code (dlatent_avg, --truncation_cutoff 8, two maps a size)")


def generate_command(state, checkpoint, latents_path=None, directions_path=None, nvidia=False):
    """{"command": str, "exact": bool, "note": str} for ``state``; paths as the server was
    given them (quoted for a POSIX shell); ``nvidia``: the model is one of NVIDIA's, which
    generate.py draws otherwise (``NVIDIA_NOTE``)."""
    base = f"python3 generate.py {_quote(checkpoint)}"
    edits = list(state.edits) if state.directions else []
    direction_flags = []
    notes = [NVIDIA_NOTE] if nvidia else []
    if len(edits) == 1:
        k, strength = edits[0]
        direction_flags = [f"--direction {_quote(f'{directions_path}:{k}')}",
                           f"--strength {strength!r}:{strength!r}:1"]
    elif len(edits) > 1:
        notes.append(f"generate.py applies one direction at a time; this picture moves "
                     f"{len(edits)} (the command applies the first)")
        k, strength = edits[0]
        direction_flags = [f"--direction {_quote(f'{directions_path}:{k}')}",
                           f"--strength {strength!r}:{strength!r}:1"]
    if edits:
        notes.append(f"generate.py writes the edit as direction_{edits[0][0]}.png, one column "
                     f"for the one strength; its rows are its own samples or --w's images")

    if state.view == "grid":
        last = state.seed + state.n - 1
        flags = " ".join(_seed_flags(state, "$seed") + direction_flags)
        command = (f"for seed in $(seq {state.seed} {last}); do {base} {flags} "
                   f"--out {OUT}/$seed; done")
        return {"command": command, "exact": not notes,
                "note": "; ".join(notes + [f"one image a seed: {OUT}/SEED/sample.png is that seed's "
                                           f"tile"])}

    if state.latents:
        flags = [f"--w {_quote(latents_path)}", f"--size {state.size}"] + direction_flags
        notes.append(f"--w writes projected.png with every latent of the file; this picture "
                     f"is number {state.index}")
        if state.view == "mix":
            notes.append("generate.py cannot mix a latent with a seed; the command draws the "
                         "latent alone")
        return {"command": f"{base} {' '.join(flags)} --out {OUT}", "exact": False,
                "note": "; ".join(notes)}

    if state.view == "mix":
        flags = [f"--size {state.size}", f"--seed {state.seed}", f"--truncation {state.psi!r}",
                 "--n_row 1 --n_col 1 --n_mixing 1", f"--mixing_range {_layers_flag(state)}"]
        notes.append("generate.py cannot mix two given seeds: its mixing grid draws both images "
                     f"from --seed {state.seed}; this is the nearest command (same layers, "
                     f"truncation and size)")
        return {"command": f"{base} {' '.join(flags)} --out {OUT}", "exact": False,
                "note": "; ".join(notes)}

    flags = _seed_flags(state, state.seed) + direction_flags
    note = f"{OUT}/sample.png is this picture"
    if state.psi == DEFAULT_PSI:
        note += f" (--truncation {DEFAULT_PSI} is generate.py's default)"
    return {"command": f"{base} {' '.join(flags)} --out {OUT}", "exact": not notes,
            "note": "; ".join(notes + [note])}
