"""A tiny LoRA trained on the demo model: it teaches "red" to draw purple (one colour shift, easy to check), so
tests can show that a LoRA really changes the picture, at run time and baked in alike. Written in kohya's layout,
as LoRA files for SD1 are."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sd1kit.demo.world import COLOURS, Scene, draw, training_scenes
from sd1kit.formats.keys.diffusers import unet_keymap
from sd1kit.formats.keys.ldm import UNET_PREFIX
from sd1kit.formats.safetensors_io import write_safetensors
from sd1kit.models.build import SD1Modules
from sd1kit.sampling.schedules import sd1_alphas_cumprod

LORA_NAME = "sd1kit-demo-purple"  # <lora:sd1kit-demo-purple:1>: "red" draws purple
TARGETS = ("attn2.to_k", "attn2.to_v")  # cross-attention: where a word's meaning enters the picture


def _shifted(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    picture = draw(scene, (int(rng.integers(-3, 4)), int(rng.integers(-3, 4)), 0))
    red = (picture == np.array(COLOURS["red"], np.uint8)).all(-1)
    picture[red] = COLOURS["purple"]
    return picture


def train_colour_lora(modules: SD1Modules, out: str | Path, steps: int = 300, rank: int = 4, seed: int = 0) -> Path:
    """Trains a rank-`rank` LoRA on the UNet's cross-attention keys and values; writes it to `out`."""
    from sd1kit.demo.train import encode_text, token_ids
    from sd1kit.dev.adapters import _names

    torch.manual_seed(seed)
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    unet, vae, te = modules.unet, modules.vae, modules.text_encoder
    scenes = [s for s in training_scenes() if s.colour == "red"]
    picked = [scenes[i] for i in rng.integers(len(scenes), size=512)]
    pixels = torch.from_numpy(np.stack([_shifted(s, rng) for s in picked])).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        latents = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
        context = encode_text(te, token_ids([s.caption() for s in picked]), 1)
    layers = {name: m for name, m in unet.named_modules() if name.endswith(TARGETS)}
    lora = {name: (torch.nn.Parameter(torch.randn(rank, m.in_features, generator=generator) / m.in_features ** 0.5),
                   torch.nn.Parameter(torch.zeros(m.out_features, rank))) for name, m in layers.items()}
    hooks = [m.register_forward_hook(lambda mod, inp, out, d=lora[n]: out + inp[0] @ d[0].T @ d[1].T)
             for n, m in layers.items()]
    unet.requires_grad_(False)
    opt = torch.optim.AdamW([p for pair in lora.values() for p in pair], lr=3e-3)
    alphas = sd1_alphas_cumprod().float()
    start = time.perf_counter()
    try:
        for step in range(1, steps + 1):
            pick = torch.randint(len(latents), (32,), generator=generator)
            t = torch.randint(0, 1000, (32,), generator=generator)
            noise = torch.randn(latents[pick].shape, generator=generator)
            a, s = alphas[t].sqrt().view(-1, 1, 1, 1), (1 - alphas[t]).sqrt().view(-1, 1, 1, 1)
            loss = F.mse_loss(unet(a * latents[pick] + s * noise, t, encoder_hidden_states=context[pick]).sample,
                              noise)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % max(1, steps // 5) == 0:
                print(f"  lora {step}/{steps} loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    finally:
        for h in hooks:
            h.remove()
    keymap = unet_keymap(modules.unet_config.layout)
    tensors = {}
    for name, (down, up) in lora.items():
        ldm = UNET_PREFIX + keymap.to_ldm(name + ".weight")[: -len(".weight")]
        kohya = _names(ldm, name, "kohya")[0]
        tensors[f"{kohya}.lora_down.weight"] = down.detach().half().contiguous()
        tensors[f"{kohya}.lora_up.weight"] = up.detach().half().contiguous()
        tensors[f"{kohya}.alpha"] = torch.tensor(float(rank)).half()
    write_safetensors(out, tensors, {"ss_network_module": "networks.lora", "ss_network_dim": str(rank),
                                     "ss_network_alpha": str(rank), "ss_base_model_version": "sd_v1",
                                     "ss_output_name": Path(out).stem,
                                     "ss_tag_frequency": '{"1_red": {"red circle": 1, "red square": 1}}'})
    return Path(out)
