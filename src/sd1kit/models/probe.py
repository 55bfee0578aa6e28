"""Tells epsilon- from v-prediction by running the UNet, for checkpoints that say neither in a yaml, a marker key
nor their metadata. A fixed picture is encoded by the checkpoint's own VAE (x0), noised with fixed noise (eps) at
a few timesteps, and the UNet's output o is fitted as o ≈ α·eps + β·x0 by least squares. An epsilon model gives
(α, β) ≈ (1, 0); a v model gives (√ᾱ, −√(1−ᾱ)), whichever schedule it was trained with. A network that is
neither (random weights, a broken file) fits neither, or explains little of its output, and the probe says "unknown".
Zero terminal SNR is judged the same way near t = 999, where the two schedules differ most."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from sd1kit.models.build import SD1Modules
from sd1kit.sampling.schedules import sd1_alphas_cumprod

TIMESTEPS = (300, 500, 700, 900)
ZTSNR_TIMESTEPS = (960, 999)
MIN_EXPLAINED = 0.5  # R² of the fit below which the output is not a denoiser's
MAX_DISTANCE = 0.35  # mean distance of (α, β) from the winning hypothesis
MIN_MARGIN = 2.0  # the loser must be this many times further away


@dataclass
class ProbeResult:
    prediction: str  # "epsilon", "v" or "unknown"
    confidence: float  # 0..1
    zero_terminal_snr: bool | None  # None: not judged (epsilon or unknown) or unclear
    reason: str
    fits: list[dict] = field(default_factory=list)

    def as_json(self) -> dict:
        return asdict(self)


def _probe_picture(size: int) -> torch.Tensor:
    """A fixed picture of flat colours and sharp edges (two shapes on a plain background), in [-1, 1], 1x3xHxW:
    what any SD1 model, down to the demo models trained on flat shapes, denoises as a picture. A model shown what it
    cannot draw (gradients for the demo models) explains part of that as noise, which blurs the verdict."""
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size
    picture = np.empty((size, size, 3))
    picture[:] = (0.16, 0.27, 0.86)
    picture[(x - 0.35) ** 2 + (y - 0.4) ** 2 < 0.04] = (0.86, 0.16, 0.16)
    picture[(np.abs(x - 0.7) < 0.15) & (np.abs(y - 0.72) < 0.15)] = (0.92, 0.84, 0.16)
    return torch.from_numpy(picture).permute(2, 0, 1)[None].float() * 2 - 1


def _fit(output: torch.Tensor, noise: torch.Tensor, x0: torch.Tensor) -> tuple[float, float, float]:
    """Least-squares (α, β) of output ≈ α·noise + β·x0, and the share of the output's energy explained (R²)."""
    basis = torch.stack([noise.flatten(), x0.flatten()], 1).double()
    o = output.flatten().double()
    coef = torch.linalg.lstsq(basis, o[:, None]).solution[:, 0]
    residual = o - basis @ coef
    explained = 1 - residual.square().sum() / o.square().sum().clamp_min(1e-12)
    return float(coef[0]), float(coef[1]), float(explained)


@torch.no_grad()
def probe_prediction(modules: SD1Modules, encode_empty, dtype: torch.dtype = torch.float32, size: int = 128,
                     seed: int = 0) -> ProbeResult:
    """`encode_empty()` gives the empty prompt's conditioning (the unconditional pass every sampler makes); `dtype`
    is the precision the modules compute in. 128x128 keeps it to a few seconds for a full-size model on a CPU."""
    unet, vae = modules.unet, modules.vae
    device = next(unet.parameters()).device
    x0 = vae.encode(_probe_picture(size).to(device, dtype)).latent_dist.mean.float()
    x0 = x0 * vae.config.scaling_factor
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    context = encode_empty().to(device, dtype)
    plain, zero = sd1_alphas_cumprod().double(), sd1_alphas_cumprod(zero_terminal_snr=True).double()

    extra = _inpainting_inputs(vae, x0, unet.config.in_channels, size, dtype)

    def run(t: int, alphas: torch.Tensor) -> tuple[float, float, float, float, float]:
        a, s = float(alphas[t].sqrt()), float((1 - alphas[t]).sqrt())
        xt = (a * x0 + s * noise).to(dtype)
        if extra is not None:
            xt = torch.cat([xt, extra], 1)
        out = unet(xt, torch.tensor([t], device=device), encoder_hidden_states=context).sample.float()
        return (*_fit(out, noise, x0), a, s)

    fits = []
    for t in TIMESTEPS:
        alpha, beta, explained, a, s = run(t, plain)
        fits.append({"t": t, "alpha": alpha, "beta": beta, "explained": explained,
                     "eps_distance": float(np.hypot(alpha - 1, beta)),
                     "v_distance": float(np.hypot(alpha - a, beta + s))})
    # Each timestep counts by how much of the output its fit explains: at high noise a v model's x0 part is its
    # guess of the average picture (the empty prompt tells it nothing), which no fit to this picture explains.
    weights = np.array([max(f["explained"], 0.0) for f in fits]) + 1e-9
    eps_d = float(np.average([f["eps_distance"] for f in fits], weights=weights))
    v_d = float(np.average([f["v_distance"] for f in fits], weights=weights))
    explained = float(np.average([f["explained"] for f in fits], weights=weights))
    best, best_d, other_d = ("epsilon", eps_d, v_d) if eps_d <= v_d else ("v", v_d, eps_d)
    summary = f"fit explains {explained:.0%} of the output; distance to epsilon {eps_d:.2f}, to v {v_d:.2f}"
    if explained < MIN_EXPLAINED or best_d > MAX_DISTANCE or other_d < MIN_MARGIN * best_d:
        return ProbeResult("unknown", 0.0, None, f"no clear answer: {summary}", fits)
    confidence = round(min(1.0, explained * (1 - best_d / other_d)), 3)
    ztsnr = _judge_ztsnr(run, plain, zero) if best == "v" else None
    return ProbeResult(best, confidence, ztsnr, summary, fits)


def _inpainting_inputs(vae, x0: torch.Tensor, channels: int, size: int, dtype: torch.dtype) -> torch.Tensor | None:
    """A 9-channel inpainting UNet also takes a mask and the masked picture's latent: everything masked, over a
    grey picture, as A1111 runs such a model for txt2img."""
    if channels == 4:
        return None
    grey = torch.zeros(1, 3, size, size, device=x0.device, dtype=dtype)
    masked = vae.encode(grey).latent_dist.mean.float() * vae.config.scaling_factor
    return torch.cat([torch.ones_like(x0[:, :1]), masked], 1)[:, :channels - 4].to(dtype)


def _judge_ztsnr(run, plain: torch.Tensor, zero: torch.Tensor) -> bool | None:
    """Near t = 999 the plain schedule still leaves √ᾱ ≈ 0.07 of the picture, zero terminal SNR none: the input
    built with the schedule the model was trained on gives the output closer to that schedule's v."""
    errors = {}
    for name, alphas in (("plain", plain), ("zero", zero)):
        d = []
        for t in ZTSNR_TIMESTEPS:
            alpha, beta, _, a, s = run(t, alphas)
            d.append(np.hypot(alpha - a, beta + s))
        errors[name] = float(np.mean(d))
    if max(errors.values()) < 1.5 * min(errors.values()):
        return None
    return errors["zero"] < errors["plain"]


PROBE_VERSION = 3  # verdicts of earlier versions came from another picture or weighting


def cached_probe(sha256: str | None, run) -> ProbeResult:
    """The probe's verdict for a file content, from the user cache (next to the hash cache) or by `run()`."""
    from sd1kit.formats.hashes import cache_path, read_cache, write_cache

    store = cache_path().with_name("probes.json")
    known = read_cache(store, PROBE_VERSION).get("files", {})
    if sha256 and sha256 in known:
        return ProbeResult(**known[sha256])
    result = run()
    if sha256:
        cache = read_cache(store, PROBE_VERSION) or {"version": PROBE_VERSION, "files": {}}  # re-read: another
        cache.setdefault("files", {})[sha256] = result.as_json()  # process may have written meanwhile
        write_cache(store, cache)
    return result
