"""The losses (training.losses) against discriminators whose input gradients are known in closed
form, so every value below is computed by hand in numpy, not by the code under test."""
import numpy as np
import pytest

import jittor as jt
from training.losses import (LOSSES, R1_GAMMA, WGAN_DRIFT, WGAN_GP_LAMBDA, squared_grad_norm,
                             wgan_gp_discriminator_loss)

SHAPE = (3, 3, 4, 4)


def softplus(x):
    return np.logaddexp(0.0, x)


def images(seed):
    return np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)


class QuadraticDiscriminator:
    """D(x) = c * ||x||^2 per image: grad D(x) = 2 c x, so ||grad D(x)||^2 = 4 c^2 ||x||^2."""

    def __init__(self, c):
        self.c = c

    def __call__(self, x, step, alpha):
        return self.c * x.sqr().reshape((x.shape[0], -1)).sum(dim=1)


class LinearDiscriminator:
    """D(x) = <w, x> per image: grad D(x) = w at every x, so ||grad D|| = ||w|| wherever the
    gradient penalty samples it."""

    def __init__(self, w):
        self.w = w

    def __call__(self, x, step, alpha):
        return (x * jt.array(self.w)).reshape((x.shape[0], -1)).sum(dim=1)


def test_squared_grad_norm_is_the_per_image_squared_norm_of_the_input_gradient():
    x_np = images(0)
    x = jt.array(x_np)
    output = (x.sqr() * 1.5).reshape((SHAPE[0], -1)).sum(dim=1)      # grad: 3 x
    norms = squared_grad_norm(output, x)
    expected = 9 * (x_np.reshape(SHAPE[0], -1) ** 2).sum(axis=1)
    np.testing.assert_allclose(norms.numpy(), expected, rtol=1e-5)
    # differentiable again (the penalty trains D): d/dx sum(9 ||x||^2) = 18 x
    second = jt.grad(norms.sum(), x)
    np.testing.assert_allclose(second.numpy(), 18 * x_np, rtol=1e-5, atol=1e-6)


def test_r1_loss_is_softplus_terms_plus_gamma_over_2_times_the_squared_gradient_norm():
    real_np, fake_np, c = images(1), images(2), 0.05
    d_loss, g_loss = LOSSES["r1"]
    total, logged, penalty = d_loss(QuadraticDiscriminator(c), jt.array(real_np),
                                    jt.array(fake_np), step=1, alpha=1)
    real_sq = (real_np.reshape(SHAPE[0], -1) ** 2).sum(axis=1)
    fake_sq = (fake_np.reshape(SHAPE[0], -1) ** 2).sum(axis=1)
    expected_penalty = R1_GAMMA / 2 * np.mean(4 * c ** 2 * real_sq)
    expected_logged = softplus(-c * real_sq).mean() + softplus(c * fake_sq).mean()
    assert R1_GAMMA == 10
    assert float(penalty) == pytest.approx(expected_penalty, rel=1e-5)
    assert float(logged) == pytest.approx(expected_logged, rel=1e-5)
    assert float(total) == pytest.approx(expected_logged + expected_penalty, rel=1e-5)


def test_wgan_gp_penalty_of_a_linear_discriminator_is_lambda_times_norm_minus_1_squared():
    real_np, fake_np = images(3), images(4)
    w = np.random.default_rng(5).standard_normal(SHAPE[1:]).astype(np.float32) * 0.1
    total, logged, penalty = wgan_gp_discriminator_loss(
        LinearDiscriminator(w), jt.array(real_np), jt.array(fake_np), step=1, alpha=1)
    real_scores = (real_np * w).reshape(SHAPE[0], -1).sum(axis=1)
    fake_scores = (fake_np * w).reshape(SHAPE[0], -1).sum(axis=1)
    real_predict = real_scores.mean() - WGAN_DRIFT * (real_scores ** 2).mean()
    expected_penalty = WGAN_GP_LAMBDA * (np.linalg.norm(w) - 1) ** 2   # whatever the blend
    assert (WGAN_GP_LAMBDA, WGAN_DRIFT) == (10, 0.001)
    assert float(penalty) == pytest.approx(expected_penalty, rel=1e-4)
    assert float(logged) == pytest.approx(real_predict - fake_scores.mean(), rel=1e-4, abs=1e-6)
    assert float(total) == pytest.approx(-real_predict + fake_scores.mean() + expected_penalty,
                                         rel=1e-4, abs=1e-6)


def test_generator_losses_are_softplus_of_minus_scores_and_minus_the_mean_score():
    scores = np.array([-2.0, 0.0, 0.5, 3.0], np.float32)
    r1_g, wgan_g = LOSSES["r1"][1], LOSSES["wgan-gp"][1]
    # softplus(2), softplus(0) = ln 2, softplus(-0.5), softplus(-3), by hand
    expected = np.mean([np.log1p(np.exp(2.0)), np.log(2.0), np.log1p(np.exp(-0.5)),
                        np.log1p(np.exp(-3.0))])
    assert float(r1_g(jt.array(scores))) == pytest.approx(expected, rel=1e-6)
    assert float(wgan_g(jt.array(scores))) == pytest.approx(-0.375, rel=1e-6)
    assert set(LOSSES) == {"r1", "wgan-gp"}
