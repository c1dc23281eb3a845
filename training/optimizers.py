"""The optimisers of the reference and their state: Adam (betas 0, 0.99) for both networks, the
mapping network at lr / 100, the generator's moving average ``g_running`` (``accumulate``), and
the optimiser state a training checkpoint holds (Jittor's, or mapped from a PyTorch Adam).
"""
import math

import numpy as np

import jittor as jt

from files.checkpoint import CheckpointError, torch_adam_moments, torch_parameter_order

EMA_DECAY = 0.999             # g_running <- decay * g_running + (1 - decay) * generator
MAPPING_LR_MULT = 0.01        # the mapping network learns at lr / 100 (paper section C)
ADAM_BETAS = (0.0, 0.99)


def accumulate(target, source, decay=EMA_DECAY, names=None):
    """target <- decay * target + (1 - decay) * source, parameter by parameter (the reference's);
    only the parameters ``names`` when given. The reference averages every parameter, also the
    layers of resolutions not reached yet, which are equal in both and stay so up to rounding:
    train.py leaves those out (``names``), work for nothing (1-3 % of an iteration at 8-16 px)."""
    source_params = dict(source.named_parameters())
    for name, param in target.named_parameters():
        if names is None or name in names:
            param.update(param * decay + (1 - decay) * source_params[name].detach())


def _parameter_ids(modules):
    return {id(p) for module in modules for p in module.parameters()}


def parameter_names(network, modules):
    """The names (as ``network.named_parameters()`` gives them) of the parameters of ``modules``,
    sub-modules of ``network``."""
    ids = _parameter_ids(modules)
    return {name for name, p in network.named_parameters() if id(p) in ids}


def train_only(network, modules):
    """Let only the parameters of ``modules`` (sub-modules of ``network``, the layers a forward
    pass runs) get gradients and Adam updates; the others are left out of both.

    The PyTorch original's Adam skips a parameter whose ``.grad`` is None (a layer of another
    resolution). Jittor's optimiser differentiates every parameter it holds, gives an unused
    one a zero gradient (all-reduced under MPI) and updates it with that: the parameter stays
    (beta1 = 0, so the step is the zero gradient's), but its second moment decays where
    PyTorch's stays, and the work is done for 29 of the reference network's 52 million
    parameters at 8 px (an iteration 13 % faster without it at 8 px, 11 % at 16:
    docs/benchmark.md)."""
    in_use = _parameter_ids(modules)
    for p in network.parameters():
        if id(p) in in_use:
            p.start_grad()
        else:
            p.stop_grad()


def copy_parameters(target, source):
    """target <- source exactly (the reference's ``accumulate(g_running, generator, 0)``)."""
    target.load_parameters({name: p.numpy() for name, p in source.named_parameters()})


class Adam(jt.optim.Adam):
    """``jt.optim.Adam`` with PyTorch's bias correction: steps counted per parameter.

    Jittor's Adam counts steps once per optimiser (``n_step``); PyTorch's, which the original
    trains with, counts them per parameter from its first gradient. With the reference's betas
    (0, 0.99) a block that joins at a new resolution would take first steps of
    ``lr / sqrt(1 - 0.99^k)`` after its k-th update instead of ``lr`` (10x at k = 1, 3.2x at
    k = 10) under Jittor's count; the Jittor reference has that, this is what the original
    means (docs/faithfulness.md). A parameter left out with ``train_only`` (``stop_grad``) is
    neither stepped nor counted, as PyTorch's Adam skips one without a gradient. The update is
    PyTorch's: ``p -= lr / (1 - b1^k) * m / (sqrt(v) / sqrt(1 - b2^k) + eps)``, ``k`` the
    parameter's count (Jittor's puts eps before the correction). The counts live in each
    parameter group's ``"steps"`` and so in the checkpoints (``optimizer_state``)."""

    def __init__(self, params, lr, eps=1e-8, betas=(0.9, 0.999)):
        super().__init__(params, lr, eps=eps, betas=betas)
        for group in self.param_groups:
            group["steps"] = [0] * len(group["params"])

    def add_param_group(self, group):
        super().add_param_group(group)
        group["steps"] = [0] * len(group["params"])

    def step(self, loss=None, retain_graph=False):
        self.pre_step(loss, retain_graph)    # gradients (all-reduced under MPI), n_step += 1
        jt.flags.node_order = 1
        for group in self.param_groups:
            lr = group.get("lr", self.lr)
            eps = group.get("eps", self.eps)
            beta1, beta2 = group.get("betas", self.betas)
            steps = group["steps"]
            for index, (p, g, v, m) in enumerate(
                    zip(group["params"], group["grads"], group["values"], group["m"])):
                if p.is_stop_grad():
                    continue
                steps[index] += 1
                k = steps[index]
                m.update(beta1 * m + (1 - beta1) * g)
                v.update(beta2 * v + (1 - beta2) * g * g)
                denominator = jt.sqrt(v) * (1 / math.sqrt(1 - beta2 ** k)) + eps
                p.update(p - m * (lr / (1 - beta1 ** k)) / denominator)
        self.post_step()


def build_optimizers(generator, discriminator, lr):
    """Adam (betas 0, 0.99; steps counted per parameter) for both; the mapping network in its
    own group at lr / 100."""
    g_optimizer = Adam(generator.generator.parameters(), lr=lr, betas=ADAM_BETAS)
    # NVIDIA's mapping layers carry their 0.01 in the weights' run-time multiplier instead
    mult = getattr(generator, "mapping_lr_mult", MAPPING_LR_MULT)
    g_optimizer.add_param_group({"params": generator.style.parameters(),
                                 "lr": lr * mult, "mult": mult})
    d_optimizer = Adam(discriminator.parameters(), lr=lr, betas=ADAM_BETAS)
    return g_optimizer, d_optimizer


def adjust_lr(optimizer, lr):
    """Set every group's lr to ``lr`` times its ``mult`` (the PyTorch original's adjust_lr)."""
    optimizer.lr = lr
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("mult", 1)


OPTIMIZER_STATE_KEYS = ("m", "values")  # Adam's first and second moments, per parameter


def optimizer_state(optimizer):
    """Jittor's ``Optimizer.state_dict()`` without the copies of the parameters and gradients
    it carries (``load_state_dict`` ignores those anyway), with ``Adam``'s step counts."""
    defaults = dict(optimizer.state_dict()["defaults"])
    defaults["param_groups"] = [{k: list(v) if k == "steps" else v   # a copy: Adam counts on
                                 for k, v in group.items() if k not in ("params", "grads")}
                                for group in optimizer.param_groups]
    return {"defaults": defaults}


def load_optimizer_state(optimizer, state, what):
    """``optimizer.load_state_dict(state)`` after checking that it fits; CheckpointError if not.

    A state without per-parameter step counts (written before ``Adam`` kept them, or by
    ``jt.optim.Adam``) gives every parameter with a second moment the optimiser's ``n_step``,
    which is what those steps were bias-corrected with, and 0 to the others (never stepped)."""
    try:
        groups = state["defaults"]["param_groups"]
        if len(groups) != len(optimizer.param_groups):
            raise ValueError(f"{len(groups)} parameter groups, expected "
                             f"{len(optimizer.param_groups)}")
        counts = []
        for saved, group in zip(groups, optimizer.param_groups):
            for key in OPTIMIZER_STATE_KEYS:
                shapes = [tuple(np.shape(v)) for v in saved[key]]
                if shapes != [tuple(p.shape) for p in group["params"]]:
                    raise ValueError(f"its {key!r} state does not fit the parameters")
            if "steps" in saved:
                steps = [int(k) for k in saved["steps"]]
                if len(steps) != len(group["params"]) or min(steps, default=0) < 0:
                    raise ValueError("its step counts do not fit the parameters")
            else:
                n_step = int(state["defaults"].get("n_step", 0))
                steps = [n_step if np.any(_as_numpy(v)) else 0 for v in saved["values"]]
            counts.append(steps)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{what} does not fit: {error}") from None
    optimizer.load_state_dict(state)
    for group, steps in zip(optimizer.param_groups, counts):
        group["steps"] = steps


def _as_numpy(value):
    return value.numpy() if isinstance(value, jt.Var) else np.asarray(value)


def load_torch_adam(optimizer, network, torch_state, group_names, what):
    """Load the moments and step counts of a PyTorch Adam state into ``optimizer`` (``Adam``
    over ``network``'s parameters), mapped by parameter name (see
    checkpoint.torch_adam_moments); parameters without a torch state start at zero, not yet
    stepped. Returns a one-line report; CheckpointError when the state does not map."""
    parameters = network.named_parameters()
    names = {id(p): n for n, p in parameters}
    shapes = {n: tuple(p.shape) for n, p in parameters}
    try:
        moments, steps = torch_adam_moments(torch_state, group_names, shapes)
    except CheckpointError as error:
        raise CheckpointError(f"{what} cannot be mapped: {error}") from None
    state = optimizer_state(optimizer)
    total = 0
    for saved, group in zip(state["defaults"]["param_groups"], optimizer.param_groups):
        zeros = [np.zeros(tuple(p.shape), np.float32) for p in group["params"]]
        pairs = [moments.get(names[id(p)], (z, z)) for p, z in zip(group["params"], zeros)]
        saved["m"] = [m for m, _ in pairs]
        saved["values"] = [v for _, v in pairs]
        saved["steps"] = [steps.get(names[id(p)], 0) for p in group["params"]]
        total += len(pairs)
    fewest, most = min(steps.values(), default=0), max(steps.values(), default=0)
    state["defaults"]["n_step"] = most
    load_optimizer_state(optimizer, state, what)
    shown = str(most) if fewest == most else f"{fewest}..{most}"
    return (f"{what}: Adam moments of {len(moments)} of {total} parameters loaded "
            f"(each with its step count: {shown})")


def torch_adam_reports(ckpt, path, generator, discriminator, g_optimizer, d_optimizer):
    """Load the PyTorch original's Adam states of the training snapshot ``ckpt`` (its
    ``g_optimizer`` and ``d_optimizer``, where it has them) into ``g_optimizer`` and
    ``d_optimizer``, with the parameter groups the original builds; yields a one-line report per
    optimiser, loaded or left with fresh moments (a note)."""
    g_order = torch_parameter_order(ckpt["generator"],
                                    {n for n, _ in generator.named_parameters()})
    d_order = torch_parameter_order(ckpt["discriminator"],
                                    {n for n, _ in discriminator.named_parameters()})
    for name, optimizer, network, groups in (
            ("g_optimizer", g_optimizer, generator,        # as the original builds it:
             [[n for n in g_order if n.startswith("generator.")],   # synthesis network,
              [n for n in g_order if n.startswith("style.")]]),    # then mapping (lr / 100)
            ("d_optimizer", d_optimizer, discriminator, [d_order])):
        if name not in ckpt:
            continue
        try:
            yield load_torch_adam(optimizer, network, ckpt[name], groups, f"{path}: its {name}")
        except CheckpointError as error:
            yield f"note: {error}; continuing with fresh Adam moments"
