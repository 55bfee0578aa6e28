"""Trains the demo models on the demo world: a VAE, then an epsilon-prediction UNet with its CLIP text encoder,
then a v-prediction zero-terminal-SNR UNet started from it (as SD 2's 768-v model was started from an epsilon
model). The real SD1 topology with shrunk widths; deterministic for a given torch version and thread count.

    sd1kit dev train-demo --out DIR

Each stage has its own random generator and leaves its result in `out/stages/`, so an interrupted run resumes
where it stopped and gives the same weights as an uninterrupted one; the stages run in child processes
(PROCESS_GROUPS).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from sd1kit.demo.analytic_vae import analytic_vae, zero_residuals
from sd1kit.demo.lora import LORA_NAME, train_colour_lora
from sd1kit.demo.world import SIZE, sample, training_scenes
from sd1kit.errors import Sd1kitError
from sd1kit.formats.safetensors_io import write_safetensors
from sd1kit.models.build import (
    SD1Modules, build_text_encoder, build_unet, build_vae, clip_module_prefix, modules_to_ldm,
)
from sd1kit.models.configs import TextEncoderConfig, UNetConfig, VAEConfig
from sd1kit.models.tokenizer import clip_tokenizer
from sd1kit.prompts.chunks import build_chunks
from sd1kit.sampling.schedules import sd1_alphas_cumprod

# GroupNorm's 32 groups wipe each group's mean and scale: with one channel per group (32 wide) a network cannot
# carry a flat colour through its last norm, so the narrowest level is 64 wide (real SD1: 320 and 128).
DEMO_UNET = UNetConfig(4, 4, 64, (1, 1, 1, 1), 2, (True, True, True, False), 1, 32, False)
DEMO_VAE = VAEConfig(128, (1, 1, 1, 1), 2, 4)  # 4 channels per group: see demo/analytic_vae.py
DEMO_TEXT_ENCODER = TextEncoderConfig(49408, 32, 128, 4, 77)
LATENT_SCALE = 0.18215  # SD1's: the VAE is calibrated so that scaled latents have unit variance


@dataclass
class Plan:
    """Steps and batch sizes of each stage (the defaults fit the 40-minute budget on 2 cores)."""
    examples: int = 2048
    vae_steps: int = 400
    vae_batch: int = 16
    vae_crop: int = 32  # the VAE is convolutional: crops teach it at a fraction of the cost
    eps_steps: int = 2500
    v_steps: int = 800
    lora_steps: int = 300
    unet_batch: int = 64  # costs what 32 costs on 2 cores (0.4 s a step): the tiny UNet is bound by overheads
    seed: int = 0

    def scaled(self, factor: float) -> "Plan":
        """The same plan with fewer steps (quick trials and tests)."""
        n = lambda steps: max(1, int(steps * factor))  # noqa: E731
        return replace(self, vae_steps=n(self.vae_steps), eps_steps=n(self.eps_steps), v_steps=n(self.v_steps),
                       lora_steps=n(self.lora_steps))


def make_dataset(n: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """[n, 3, 64, 64] pixels in [-1, 1] and their captions."""
    rng = np.random.default_rng(seed)
    scenes = training_scenes()
    pictures, captions = zip(*(sample(rng, scenes) for _ in range(n)))
    pixels = torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return pixels, list(captions)


def _log(stage: str, step: int, steps: int, loss: float, start: float) -> None:
    if step % max(1, steps // 10) == 0 or step == steps:
        print(f"  {stage} {step}/{steps} loss {loss:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)


def _cosine(step: int, steps: int, warmup: int = 100) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def train_vae(pixels: torch.Tensor, plan: Plan, generator: torch.Generator):
    """The hand-built VAE (cell averages), its decoder fine-tuned to draw sharp edges from them."""
    vae = analytic_vae(build_vae(DEMO_VAE))
    vae.requires_grad_(False).decoder.requires_grad_(True)
    opt = torch.optim.AdamW(vae.decoder.parameters(), lr=2e-4, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, plan.vae_steps, warmup=20))
    start = time.perf_counter()
    for step in range(1, plan.vae_steps + 1):
        crop = plan.vae_crop
        picks = torch.randint(len(pixels), (plan.vae_batch,), generator=generator).tolist()
        corners = (torch.randint(0, (pixels.shape[-1] - crop) // 8 + 1, (plan.vae_batch, 2), generator=generator)
                   * 8).tolist()  # on the latent grid, as whole pictures are encoded
        batch = torch.stack([pixels[i, :, y:y + crop, x:x + crop] for i, (x, y) in zip(picks, corners)])
        with torch.no_grad():
            z = vae.encode(batch).latent_dist.mean
        z = z + 0.05 * torch.randn(z.shape, generator=generator)  # a latent the UNet draws is never exact
        loss = F.mse_loss(vae.decode(z).sample, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        _log("vae", step, plan.vae_steps, loss.item(), start)
    return vae.eval().requires_grad_(False)


@torch.no_grad()
def calibrate_vae(vae, means: torch.Tensor) -> float:
    """Rescale the latent space (quant_conv's mean rows, post_quant_conv's input) so that latents times SD1's
    0.18215 have unit variance, as the pipeline assumes: the decoded pictures are unchanged. `means` are the
    posterior means before; returns the factor they are multiplied by."""
    k = 1 / (means.std().item() * LATENT_SCALE)
    channels = DEMO_VAE.z_channels
    vae.quant_conv.weight[:channels] *= k
    vae.quant_conv.bias[:channels] *= k
    vae.quant_conv.bias[channels:] += 2 * math.log(k)  # log-variance of the scaled posterior
    vae.post_quant_conv.weight /= k
    return k


@torch.no_grad()
def posterior_means(vae, pixels: torch.Tensor) -> torch.Tensor:
    return torch.cat([vae.encode(chunk).latent_dist.mean for chunk in pixels.split(256)])


def token_ids(captions: list[str]) -> torch.Tensor:
    """[n, 77] ids exactly as generation tokenizes a one-chunk prompt."""
    tokenizer = clip_tokenizer()
    cache: dict[str, list[int]] = {}
    for c in set(captions):
        chunks = build_chunks(c, tokenizer)[0]
        cache[c] = chunks[0].tokens
    return torch.tensor([cache[c] for c in captions])


def encode_text(text_encoder, ids: torch.Tensor, clip_skip: int) -> torch.Tensor:
    out = text_encoder(input_ids=ids, output_hidden_states=clip_skip > 1)
    if clip_skip == 1:
        return out.last_hidden_state
    norm = text_encoder.get_submodule(clip_module_prefix(text_encoder) + "final_layer_norm")
    return norm(out.hidden_states[-clip_skip])


def train_unet(unet, text_encoder, latents: torch.Tensor, ids: torch.Tensor, prediction: str, ztsnr: bool,
               steps: int, plan: Plan, generator: torch.Generator, train_text: bool, stage: str):
    """Denoising training at SD1's 1000 timesteps; clip skip 1 or 2 per batch, so both work as on NAI models."""
    alphas = sd1_alphas_cumprod(zero_terminal_snr=ztsnr).float()
    params = [{"params": unet.parameters(), "lr": 1e-3}]
    if train_text:
        params.append({"params": text_encoder.parameters(), "lr": 1e-3})
    text_encoder.train(train_text).requires_grad_(train_text)
    unet.train()
    opt = torch.optim.AdamW(params, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, steps))
    ema = [p.detach().clone() for p in unet.parameters()]
    start = time.perf_counter()
    for step in range(1, steps + 1):
        pick = torch.randint(len(latents), (plan.unet_batch,), generator=generator)
        x0, batch_ids = latents[pick], ids[pick]
        t = torch.randint(0, 1000, (plan.unet_batch,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        a = alphas[t].sqrt().view(-1, 1, 1, 1)
        s = (1 - alphas[t]).sqrt().view(-1, 1, 1, 1)
        xt = a * x0 + s * noise
        target = noise if prediction == "epsilon" else a * noise - s * x0
        clip_skip = 1 + int(torch.randint(2, (1,), generator=generator))
        with torch.set_grad_enabled(train_text):
            context = encode_text(text_encoder, batch_ids, clip_skip)
        loss = F.mse_loss(unet(xt, t, encoder_hidden_states=context).sample, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            decay = min(0.995, (1 + step) / (10 + step))
            for e, p in zip(ema, unet.parameters()):
                e.lerp_(p, 1 - decay)
        _log(stage, step, steps, loss.item(), start)
    with torch.no_grad():
        for e, p in zip(ema, unet.parameters()):
            p.copy_(e)
    text_encoder.eval().requires_grad_(False)
    return unet.eval().requires_grad_(False)


def save(modules: SD1Modules, path: Path, description: str) -> Path:
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in modules_to_ldm(modules).items()}
    write_safetensors(path, sd, metadata={"sd1kit_demo": description, "modelspec.sai_model_spec": "1.0.0",
                                          "modelspec.architecture": "stable-diffusion-v1",
                                          "modelspec.title": path.stem, "modelspec.resolution": f"{SIZE}x{SIZE}"})
    return path


def _stage_generator(plan: Plan, stage: int) -> torch.Generator:
    return torch.Generator().manual_seed(plan.seed * 1000 + stage)


def _vae_stage(pixels: torch.Tensor, plan: Plan, stages: Path, train: bool):
    """The VAE and the scaled latents of every training picture (cached in `stages`); None when not yet trained
    and `train` is false."""
    path = stages / "vae.safetensors"
    vae = build_vae(DEMO_VAE)
    if path.exists():
        saved = load_file(path)
        vae.load_state_dict({k[4:]: v for k, v in saved.items() if k.startswith("vae.")})
        return vae.eval().requires_grad_(False), saved["latents"]
    if not train:
        return None
    vae = train_vae(pixels, plan, _stage_generator(plan, 1))
    means = posterior_means(vae, pixels)
    latents = means * calibrate_vae(vae, means) * LATENT_SCALE
    state = {f"vae.{k}": v.contiguous() for k, v in vae.state_dict().items()}
    write_safetensors(path, {**state, "latents": latents.contiguous()})
    return vae, latents


def _unet_stage(name: str, stages: Path, allowed: tuple[str, ...], train, *modules) -> bool:
    """Loads `stages/name` into `modules`, or runs `train()` and saves its result when `name` is allowed;
    False when the stage is neither done nor allowed."""
    path = stages / f"{name}.safetensors"
    if path.exists():
        saved = load_file(path)
        for i, module in enumerate(modules):
            module.load_state_dict({k.split(".", 1)[1]: v for k, v in saved.items() if k.startswith(f"{i}.")})
            module.eval().requires_grad_(False)
        return True
    if name not in allowed:
        return False
    train()
    write_safetensors(path, {f"{i}.{k}": v.contiguous() for i, m in enumerate(modules)
                             for k, v in m.state_dict().items()})
    return True


# Each group of stages runs in a fresh process: a UNet trained in the process that trained the VAE ran at 0.66
# instead of 0.43 s a step and took other (float-level) paths, so one process per group keeps the run within its
# budget and the weights the same whether it ran at once or resumed.
PROCESS_GROUPS = (("vae",), ("eps", "v"), ("lora",))


def train_demo(out: str | Path, plan: Plan = Plan()) -> list[Path]:
    """Writes sd1kit-demo.safetensors (epsilon), sd1kit-demo-v.safetensors and the LoRA of demo/lora.py into `out`."""
    import multiprocessing

    out = Path(out)
    (out / "stages").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for group in PROCESS_GROUPS:
        child = multiprocessing.get_context("spawn").Process(target=_train_stages, args=(out, plan, group))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise Sd1kitError(out, f"training stage {'+'.join(group)} failed (exit code {child.exitcode})")
    written = _train_stages(out, plan, ())
    print(f"trained in {time.perf_counter() - start:.0f} s", flush=True)
    return written


def _train_stages(out: Path, plan: Plan, allowed: tuple[str, ...]) -> list[Path]:
    """Loads the stages done, trains those `allowed` that are not, stops at the first that is neither; writes the
    models whose stages are done. Returns the files written."""
    torch.set_flush_denormal(True)  # tiny weights and Adam moments must not fall onto the slow denormal path
    try:
        return _stages(out, plan, allowed)
    finally:
        torch.set_flush_denormal(False)  # a process-wide CPU flag: leave it as it was


def _stages(out: Path, plan: Plan, allowed: tuple[str, ...]) -> list[Path]:
    stages = out / "stages"
    torch.manual_seed(plan.seed)
    pixels, captions = make_dataset(plan.examples, plan.seed)
    if allowed:
        print(f"{'+'.join(allowed)}: {len(captions)} pictures of {len(training_scenes())} scenes", flush=True)
    done = _vae_stage(pixels, plan, stages, "vae" in allowed)
    if done is None:
        return []
    vae, latents = done
    ids = token_ids(captions)
    torch.manual_seed(plan.seed + 1)  # the modules' initial weights
    text_encoder = build_text_encoder(DEMO_TEXT_ENCODER)
    unet = zero_residuals(build_unet(DEMO_UNET))
    if not _unet_stage("eps", stages, allowed, lambda: train_unet(
            unet, text_encoder, latents, ids, "epsilon", False, plan.eps_steps, plan, _stage_generator(plan, 2),
            train_text=True, stage="eps"), unet, text_encoder):
        return []
    eps = save(SD1Modules(unet, vae, text_encoder, DEMO_UNET, DEMO_VAE, DEMO_TEXT_ENCODER),
               out / "sd1kit-demo.safetensors", "epsilon-prediction demo model")
    v_unet = build_unet(DEMO_UNET)
    v_unet.load_state_dict(unet.state_dict())
    if not _unet_stage("v", stages, allowed, lambda: train_unet(
            v_unet, text_encoder, latents, ids, "v", True, plan.v_steps, plan, _stage_generator(plan, 3),
            train_text=False, stage="v"), v_unet):
        return [eps]
    v = save(SD1Modules(v_unet, vae, text_encoder, DEMO_UNET, DEMO_VAE, DEMO_TEXT_ENCODER),
             out / "sd1kit-demo-v.safetensors", "v-prediction zero-terminal-SNR demo model")
    lora = out / f"{LORA_NAME}.safetensors"
    if not lora.exists():
        if "lora" not in allowed:
            return [eps, v]
        train_colour_lora(SD1Modules(unet, vae, text_encoder, DEMO_UNET, DEMO_VAE, DEMO_TEXT_ENCODER), lora,
                          steps=plan.lora_steps, seed=plan.seed)
    return [eps, v, lora]
