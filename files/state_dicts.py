"""State dicts written by the references, fitted to this project's parameters.

* The Jittor reference port's EqualLR hook leaves the scaled weight as an attribute, so its saved
  state dicts hold ``X.weight`` (= ``X.weight_orig * sqrt(2 / fan_in)``) beside every
  ``X.weight_orig``: derived, so dropped.
* The PyTorch original saves Blur kernels as buffers ``X.weight`` / ``X.weight_flip``:
  constants, so dropped.

Any other unknown key, a missing key or a shape mismatch raises ``ValueError`` naming it.
"""


def is_reference_extra(key, state_dict):
    """Whether ``key`` is one of the references' derived or constant entries above."""
    prefix, _, name = key.rpartition(".")
    if name == "weight" and f"{prefix}.weight_orig" in state_dict:
        return True  # Jittor reference: derived EqualLR weight
    if name in ("weight", "weight_flip") and (f"{prefix}.weight_flip" in state_dict
                                             or f"{prefix}.weight" in state_dict):
        return True  # PyTorch original: Blur kernel buffers
    return False


def fit_state_dict(module, state_dict):
    """``state_dict`` without the references' extra entries, checked against ``module``'s own
    keys and shapes (ValueError naming the first problem)."""
    own = module.state_dict()
    name = type(module).__name__
    fitted = {key: value for key, value in state_dict.items()
              if key in own or not is_reference_extra(key, state_dict)}
    unknown = sorted(k for k in fitted if k not in own)
    missing = sorted(k for k in own if k not in fitted)
    if unknown or missing:
        raise ValueError(
            f"state dict does not fit {name}: "
            + (f"missing {len(missing)} keys (first: {missing[0]})" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"{len(unknown)} unexpected keys (first: {unknown[0]})" if unknown else ""))
    for key, value in fitted.items():
        shape = tuple(value.shape)
        if shape != tuple(own[key].shape):
            raise ValueError(f"state dict does not fit {name}: {key} has shape {shape}, "
                             f"expected {tuple(own[key].shape)}")
    return fitted
