"""The losses of the PyTorch original's two choices (``--loss r1``, ``--loss wgan-gp``).

``LOSSES[name]`` is ``(discriminator_loss, generator_loss)``: the discriminator loss takes the
discriminator, real and (detached) fake images, step and alpha and returns ``(total, logged D
loss, penalty)``; the generator loss takes the discriminator's scores of the fakes.
"""
import jittor as jt

from training.data_stream import rank_share

R1_GAMMA = 10                 # R1 penalty: R1_GAMMA / 2 * ||grad D(real)||^2 (paper appendix C)
WGAN_GP_LAMBDA = 10           # WGAN-GP: LAMBDA * (||grad D(x_hat)|| - 1)^2 (Gulrajani et al.)
WGAN_DRIFT = 0.001            # WGAN-GP drift term on real scores (ProGAN section A.1)


def squared_grad_norm(output, inputs):
    """Per-sample ||d sum(output) / d inputs||^2, differentiable again (create_graph=True)."""
    grad = jt.grad(output.sum(), inputs)
    return grad.reshape((grad.shape[0], -1)).sqr().sum(dim=1)


def r1_discriminator_loss(discriminator, real, fake, step, alpha):
    """Non-saturating loss softplus(-D(real)) + softplus(D(fake)) plus the R1 penalty
    R1_GAMMA / 2 * E ||grad D(real)||^2. Returns (total, logged D loss, penalty)."""
    real_scores = discriminator(real, step=step, alpha=alpha)
    real_loss = jt.nn.softplus(-real_scores).mean()
    penalty = R1_GAMMA / 2 * squared_grad_norm(real_scores, real).mean()
    fake_loss = jt.nn.softplus(discriminator(fake, step=step, alpha=alpha)).mean()
    return real_loss + penalty + fake_loss, real_loss + fake_loss, penalty


def wgan_gp_discriminator_loss(discriminator, real, fake, step, alpha):
    """WGAN-GP: -(E D(real) - 0.001 E D(real)^2) + E D(fake) + 10 E (||grad D(x_hat)|| - 1)^2,
    x_hat a random blend of real and fake. Returns (total, logged D loss, penalty); the logged
    loss is the PyTorch original's real_predict - fake_predict."""
    real_scores = discriminator(real, step=step, alpha=alpha)
    real_predict = real_scores.mean() - WGAN_DRIFT * real_scores.sqr().mean()
    fake_predict = discriminator(fake, step=step, alpha=alpha).mean()
    n = real.shape[0]  # under MPI: this process's share of the global batch's blend weights
    share = rank_share(n * jt.world_size, n * jt.world_size)
    eps = jt.rand(n * jt.world_size, 1, 1, 1)[share.start:share.stop]
    x_hat = eps * real.detach() + (1 - eps) * fake.detach()
    hat_scores = discriminator(x_hat, step=step, alpha=alpha)
    norm = jt.sqrt(squared_grad_norm(hat_scores, x_hat))
    penalty = WGAN_GP_LAMBDA * (norm - 1).sqr().mean()
    return -real_predict + fake_predict + penalty, real_predict - fake_predict, penalty


def r1_generator_loss(scores):
    return jt.nn.softplus(-scores).mean()


def wgan_gp_generator_loss(scores):
    return -scores.mean()


LOSSES = {"r1": (r1_discriminator_loss, r1_generator_loss),
          "wgan-gp": (wgan_gp_discriminator_loss, wgan_gp_generator_loss)}
