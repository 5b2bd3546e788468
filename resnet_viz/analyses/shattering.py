"""Balduzzi et al. 2017: input gradients along a short line through one image. In deep plain nets they decorrelate
like white noise; shortcuts keep them correlated."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .common import check_images, model_device, model_inputs, prepared


def _autocorrelation(signal: np.ndarray, lags: np.ndarray) -> np.ndarray:
    centred = signal - signal.mean()
    power = float(np.dot(centred, centred))
    if power == 0:  # a constant slope: correlation is undefined beyond lag 0
        return np.where(lags == 0, 1.0, np.nan)
    return np.array([np.dot(centred[: len(centred) - k], centred[k:]) / power for k in lags])


def _lagged_cosine(grads: torch.Tensor, lags: np.ndarray) -> np.ndarray:
    """Mean cosine similarity of g(t), g(t+lag) over the pairs where neither gradient is exactly zero (NaN if none)."""
    nonzero = grads.norm(dim=1) > 0
    out = []
    for k in lags:
        a, b = (grads, grads) if k == 0 else (grads[:-k], grads[k:])
        ok = nonzero if k == 0 else nonzero[:-k] & nonzero[k:]
        if not bool(ok.any()):
            out.append(math.nan)
        else:
            out.append(float(F.cosine_similarity(a[ok], b[ok], dim=1).mean()))
    return np.clip(np.array(out), -1.0, 1.0)


def gradient_shattering(model: nn.Module, image: torch.Tensor, points: int = 64, epsilon: float = 1.0,
                        seed: int = 0, max_lag: int | None = None) -> dict:
    """Balduzzi et al. 2017, "The shattered gradients problem": how correlated are input gradients at nearby inputs?

    Take one image (uint8 [3,H,W] or [1,3,H,W]); after normalisation call it x. Draw a fixed random direction d
    (Gaussian, unit L2 norm over all 3·H·W values, from `seed`) and walk the line x + t·d for `points` values of t
    evenly spaced in [-epsilon, epsilon] (epsilon is an L2 distance in normalised-input units; 1.0 moves each value
    by ~1/55 of a pixel's std). At each point take g(t) = ∇ₓ of the logit of the class the model predicts for x
    (the same class all along the line), in eval mode, in one batched forward + backward pass.

    Returns a dict of numpy arrays / floats:
      t                      — the positions on the line;
      signal                 — g(t)·d, the slope of that logit along the line: a 1-D signal to plot over t;
      pixel_signal           — g(t) at one fixed input value (channel 0, the centre pixel);
      lags, autocorrelation  — the signal's normalised autocorrelation (mean removed) at lags 0..max_lag
                               (default points // 4): white noise drops to ~0 at lag 1, a smooth signal stays near 1;
      gradient_cosine        — mean cosine similarity of whole gradients g(t), g(t+lag) at the same lags;
      neighbour_correlation  — gradient_cosine at lag 1: the mean cosine similarity of consecutive points' gradients,
                               in [-1, 1]. Balduzzi et al.: deep plain nets → low (shattered), ResNets → high.
                               Measured on whole gradients, not centred: a trained net's gradients share a large
                               common part, so expect values near 1 there; the contrast is starkest at initialisation
                               (use `calibrate_bn` on a fresh model): plain-56 ≈ 0, resnet-56 ≈ 0.97 at epsilon 1;
      zero_gradients         — how many points have an all-zero gradient (a dead net: the logit does not depend on
                               the input there); they are left out of the cosines, which are NaN if nothing is left
                               (and the autocorrelation is NaN beyond lag 0 when the signal is constant);
      predicted_class, epsilon, points.
    Cost: one forward + backward pass over `points` images."""
    if image.dim() == 3:
        image = image.unsqueeze(0)
    check_images(image)
    if len(image) != 1:
        raise ConfigError(f"gradient_shattering takes one image, got {len(image)}.")
    if points < 3:
        raise ConfigError(f"points must be at least 3 to compare neighbouring gradients, got {points}.")
    if not epsilon > 0:
        raise ConfigError(f"epsilon must be positive, got {epsilon}.")
    device = model_device(model)
    max_lag = min(points - 2, points // 4 if max_lag is None else int(max_lag))
    lags = np.arange(max(max_lag, 1) + 1)
    x0 = model_inputs(image, device)[0]
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(tuple(x0.shape), generator=g).to(device)
    d = d / d.norm()
    t = torch.linspace(-epsilon, epsilon, points, device=device)
    with prepared(model):
        with torch.no_grad():
            predicted = int(model(x0.unsqueeze(0)).argmax(1).item())
        xs = (x0.unsqueeze(0) + t.view(-1, 1, 1, 1) * d).requires_grad_(True)
        with torch.enable_grad():
            (grads,) = torch.autograd.grad(model(xs)[:, predicted].float().sum(), xs)
    flat = grads.detach().flatten(1).double()
    signal = (flat @ d.flatten().double()).cpu().numpy()
    h, w = image.shape[-2:]
    pixel = grads.detach()[:, 0, h // 2, w // 2].double().cpu().numpy()
    cosine = _lagged_cosine(flat, lags)
    return {
        "t": t.double().cpu().numpy(),
        "signal": signal,
        "pixel_signal": pixel,
        "lags": lags,
        "autocorrelation": _autocorrelation(signal, lags),
        "gradient_cosine": cosine,
        "neighbour_correlation": float(cosine[1]),
        "zero_gradients": int((flat.norm(dim=1) == 0).sum()),
        "predicted_class": predicted,
        "epsilon": float(epsilon),
        "points": int(points),
    }
