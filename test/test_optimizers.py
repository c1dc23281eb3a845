"""optimizers.Adam: PyTorch's Adam (steps counted per parameter, from its first update) against
an Adam written out in numpy, and its step counts through checkpoints: saved, loaded, inferred
for older files, refused when they do not fit, and taken from a PyTorch Adam state."""
import numpy as np
import pytest

import jittor as jt

from files.checkpoint import CheckpointError
from training.optimizers import ADAM_BETAS, Adam, load_optimizer_state, optimizer_state, train_only

LR = 0.01


class Pair(jt.Module):
    """Two tensors, ``early`` trained from the start and ``late`` joining later (as a block of
    a new resolution does)."""

    def __init__(self):
        self.early = jt.array(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3))
        self.late = jt.array(np.linspace(0.5, -0.5, 4, dtype=np.float32))

    def execute(self):
        return (self.early * self.early).sum() * 0.5 + (self.late * self.late * self.late).sum()


def numpy_adam(p, m, v, g, k, lr=LR, betas=ADAM_BETAS, eps=1e-8):
    """One step of torch.optim.Adam for a parameter at its k-th update."""
    m = betas[0] * m + (1 - betas[0]) * g
    v = betas[1] * v + (1 - betas[1]) * g * g
    p = p - lr / (1 - betas[0] ** k) * m / (np.sqrt(v) / np.sqrt(1 - betas[1] ** k) + eps)
    return p, m, v


def run_steps(optimizer, model, late_from, steps):
    """``steps`` updates, ``late`` left out (train_only) before step ``late_from``; returns the
    numpy Adam's values alongside."""
    ref = {name: [p.numpy().astype(np.float64), 0.0, 0.0, 0]
           for name, p in (("early", model.early), ("late", model.late))}
    for step in range(1, steps + 1):
        late_in_use = step >= late_from
        if late_in_use:
            model.late.start_grad()
        else:
            model.late.stop_grad()
        for name in ("early", "late") if late_in_use else ("early",):
            x, m, v, k = ref[name]
            g = x if name == "early" else 3 * x * x       # gradients of model()
            ref[name] = [*numpy_adam(x, m, v, g, k + 1), k + 1]
        optimizer.step(model())
    return ref


def test_each_parameter_is_bias_corrected_by_its_own_step_count():
    model = Pair()
    optimizer = Adam(model.parameters(), lr=LR, betas=ADAM_BETAS)
    late_before = model.late.numpy().copy()
    ref = run_steps(optimizer, model, late_from=5, steps=5)
    # the late tensor's first update is PyTorch's lr-sized step (beta1 = 0: m = g,
    # v_hat = g^2), not Jittor's lr * sqrt(1 - 0.99^5) / 0.1 = 2.2 lr
    np.testing.assert_allclose(np.abs(model.late.numpy() - late_before), LR, rtol=1e-5)
    for name in ("early", "late"):
        np.testing.assert_allclose(getattr(model, name).numpy(), ref[name][0], rtol=1e-6,
                                   atol=1e-7, err_msg=name)
    assert optimizer.param_groups[0]["steps"] == [5, 1]
    assert optimizer.n_step == 5


def test_step_counts_survive_a_checkpoint_and_the_next_step_is_the_same():
    model = Pair()
    optimizer = Adam(model.parameters(), lr=LR, betas=ADAM_BETAS)
    run_steps(optimizer, model, late_from=3, steps=4)
    state = optimizer_state(optimizer)
    assert state["defaults"]["param_groups"][0]["steps"] == [4, 2]

    copy = Pair()
    copy.load_parameters({n: p.numpy() for n, p in model.named_parameters()})
    restored = Adam(copy.parameters(), lr=LR, betas=ADAM_BETAS)
    state = {"defaults": {**state["defaults"], "param_groups": [
        {k: ([x.numpy() for x in v] if k in ("m", "values") else v) for k, v in g.items()}
        for g in state["defaults"]["param_groups"]]}}
    load_optimizer_state(restored, state, "ckpt")
    assert restored.param_groups[0]["steps"] == [4, 2]
    optimizer.step(model())
    restored.step(copy())
    for name in ("early", "late"):
        np.testing.assert_array_equal(getattr(copy, name).numpy(), getattr(model, name).numpy())
    assert optimizer.param_groups[0]["steps"] == restored.param_groups[0]["steps"] == [5, 3]
    assert state["defaults"]["param_groups"][0]["steps"] == [4, 2]   # the saved state is a copy


def test_an_older_state_without_counts_gives_n_step_to_the_parameters_it_had_stepped():
    model = Pair()
    optimizer = Adam(model.parameters(), lr=LR, betas=ADAM_BETAS)
    state = optimizer_state(optimizer)
    group = state["defaults"]["param_groups"][0]
    del group["steps"]
    group["m"] = [np.ones((2, 3), np.float32), np.zeros(4, np.float32)]
    group["values"] = [np.ones((2, 3), np.float32), np.zeros(4, np.float32)]
    state["defaults"]["n_step"] = 7
    load_optimizer_state(optimizer, state, "old.model: its g_optimizer")
    assert optimizer.param_groups[0]["steps"] == [7, 0]


@pytest.mark.parametrize("steps, message", [([3], "does not fit: its step counts do not fit"),
                                            ([3, -1], "does not fit: its step counts do not fit"),
                                            (["x", 1], "does not fit: invalid literal")])
def test_step_counts_that_do_not_fit_are_a_checkpoint_error(steps, message):
    model = Pair()
    optimizer = Adam(model.parameters(), lr=LR, betas=ADAM_BETAS)
    state = optimizer_state(optimizer)
    state["defaults"]["param_groups"][0]["steps"] = steps
    with pytest.raises(CheckpointError, match=f"bad.model: its d_optimizer {message}"):
        load_optimizer_state(optimizer, state, "bad.model: its d_optimizer")


def test_train_only_leaves_a_parameter_uncounted():
    class Net(jt.Module):
        def __init__(self):
            self.a = jt.nn.Linear(2, 2)
            self.b = jt.nn.Linear(2, 2)

        def execute(self, x):
            return self.a(x).sum()

    net = Net()
    optimizer = Adam(net.parameters(), lr=LR, betas=ADAM_BETAS)
    train_only(net, [net.a])
    for _ in range(3):
        optimizer.step(net(jt.ones((1, 2))))
    counts = dict(zip([n for n, _ in net.named_parameters()], optimizer.param_groups[0]["steps"]))
    assert counts == {"a.weight": 3, "a.bias": 3, "b.weight": 0, "b.bias": 0}
