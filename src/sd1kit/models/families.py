"""The tables detection walks: file kinds, model families and SD1 variants. Each row is data plus a small
predicate over header `Features`; tests assert that no two rows of a table match the same file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sd1kit.models.features import Features


@dataclass(frozen=True)
class Row:
    name: str
    description: str
    matches: Callable[[Features], bool]


KINDS: tuple[Row, ...] = (
    Row("checkpoint", "UNet (+ VAE, text encoder) in the LDM single-file namespace",
        lambda f: f.has_ldm_unet and not f.has_controlnet),
    Row("controlnet", "ControlNet (original, A1111 or diffusers layout)",
        lambda f: f.has_controlnet),
    Row("unet", "a UNet alone (bare LDM or diffusers names)",
        lambda f: f.has_bare_unet and not f.has_ldm_unet and not f.has_controlnet),
    Row("vae", "a VAE alone (.vae.pt / .vae.safetensors)",
        lambda f: f.has_vae and not f.has_ldm_unet and not f.has_bare_unet and not f.has_controlnet),
    Row("text_encoder", "a CLIP text encoder alone",
        lambda f: f.has_text_encoder and not f.has_vae and not f.has_ldm_unet and not f.has_bare_unet),
    Row("lora", "LoRA / LoCon adapter", lambda f: bool(f.adapter_algorithms) and f.adapter_algorithms <= {"lora"}),
    Row("lycoris", "LyCORIS adapter (LoHa, LoKr, IA3, full, norm, GLoRA, OFT, BOFT, or a mix)",
        lambda f: bool(f.adapter_algorithms - {"lora"})),
    Row("embedding", "textual inversion embedding", lambda f: f.has_embedding and not f.adapter_algorithms),
    Row("hypernetwork", "A1111 hypernetwork", lambda f: f.has_hypernetwork),
)

_OTHER_FAMILY_MARKS = ("sdxl", "sd2", "sd3", "flux")
FAMILIES: tuple[Row, ...] = (
    Row("sd1", "Stable Diffusion 1.x (CLIP ViT-L/14 text encoder, 768-wide cross-attention)",
        lambda f: f.family_mark is None and f.context_dim not in (1024, 2048)),
    Row("sd2", "Stable Diffusion 2.x (OpenCLIP ViT-H, 1024-wide cross-attention)",
        lambda f: f.family_mark == "sd2" or (f.family_mark is None and f.context_dim == 1024)),
    Row("sdxl", "Stable Diffusion XL", lambda f: f.family_mark == "sdxl" or (f.family_mark is None and f.context_dim == 2048)),
    Row("sd3", "Stable Diffusion 3 (MMDiT)", lambda f: f.family_mark == "sd3"),
    Row("flux", "FLUX", lambda f: f.family_mark == "flux"),
)


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    unet_in_channels: int


VARIANTS: tuple[Variant, ...] = (
    Variant("txt2img", "text-to-image (4-channel latent input)", 4),
    Variant("inpainting", "inpainting (latent 4 + mask 1 + masked-image latent 4)", 9),
    Variant("instruct-pix2pix", "instruct-pix2pix (latent 4 + image latent 4)", 8),
)


def match_one(table: tuple[Row, ...], features: Features) -> str:
    hits = [row.name for row in table if row.matches(features)]
    return hits[0] if hits else "unknown"


def match_variant(in_channels: int | None) -> str | None:
    if in_channels is None:
        return None
    return next((v.name for v in VARIANTS if v.unet_in_channels == in_channels), f"unknown ({in_channels}-channel input)")
