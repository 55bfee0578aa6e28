"""Adapter module names -> the checkpoint's own modules. The map is built from the model's side (formats.md §9):
each canonical LDM module is spelled every way a trainer writes it (kohya's diffusers path with underscores,
LDM-style underscores, LyCORIS/SimpleTuner `lycoris_`, kohya OFT `oft_`, PEFT/diffusers dotted paths, old
diffusers attention processors, ComfyUI's `diffusion_model.`), and adapter names are looked up, never parsed."""

from __future__ import annotations

from dataclasses import dataclass

from sd1kit.formats.keys.diffusers import unet_keymap
from sd1kit.formats.keys.ldm import TE_PREFIX, UNET_PREFIX
from sd1kit.models.configs import infer_unet_config

PROCESSOR_NAMES = {"to_q": "to_q_lora", "to_k": "to_k_lora", "to_v": "to_v_lora", "to_out.0": "to_out_lora"}


@dataclass(frozen=True)
class Target:
    module: str  # canonical LDM module name (its weight is module + ".weight")
    part: str  # "unet" or "te"


def _unet_spellings(ldm_rel: str, diffusers: str) -> list[str]:
    flat_d, flat_l = diffusers.replace(".", "_"), ldm_rel.replace(".", "_")
    names = [f"lora_unet_{flat_d}", f"lora_unet_{flat_l}", f"lycoris_{flat_d}", f"oft_unet_{flat_d}",
             f"lyco_unet_{flat_d}", f"unet.{diffusers}", f"unet.base_model.model.{diffusers}",
             f"base_model.model.{diffusers}", f"diffusion_model.{ldm_rel}", f"{UNET_PREFIX}{ldm_rel}",
             f"unet.{diffusers}.lora_linear_layer", f"unet.{diffusers}.lora"]
    attention, _, projection = diffusers.rpartition(".attn")
    if attention and "." in projection:
        block, _, proj = projection.partition(".")
        if proj in PROCESSOR_NAMES:
            names.append(f"unet.{attention}.attn{block}.processor.{PROCESSOR_NAMES[proj]}")
    return names


def _te_spellings(rel: str) -> list[str]:
    flat = rel.replace(".", "_")
    return [f"lora_te_text_model_{flat}", f"lora_te1_text_model_{flat}", f"oft_te_text_model_{flat}",
            f"lycoris_te_text_model_{flat}", f"text_encoder.text_model.{rel}", f"text_encoder.{rel}",
            f"text_encoder.text_model.{rel}.lora_linear_layer", f"{TE_PREFIX}{rel}", f"te.text_model.{rel}",
            f"text_encoders.clip_l.transformer.text_model.{rel}"]


def adapter_names(weight_shapes: dict[str, tuple[int, ...]]) -> dict[str, Target]:
    """Every spelling of every UNet and text-encoder module of a model -> its canonical module."""
    modules = sorted({k[:-len(".weight")] for k in weight_shapes if k.endswith(".weight")}
                     | {k[:-len(".bias")] for k in weight_shapes if k.endswith(".bias")})
    table: dict[str, Target] = {}
    unet_modules = [m for m in modules if m.startswith(UNET_PREFIX)]
    if unet_modules:
        keymap = unet_keymap(infer_unet_config(weight_shapes).layout)
        for module in unet_modules:
            rel = module[len(UNET_PREFIX):]
            diffusers = keymap.to_diffusers(rel + ".weight")
            diffusers = diffusers[:-len(".weight")] if diffusers else rel
            for name in _unet_spellings(rel, diffusers):
                table.setdefault(name, Target(module, "unet"))
    for module in modules:
        if module.startswith(TE_PREFIX):
            for name in _te_spellings(module[len(TE_PREFIX):]):
                table.setdefault(name, Target(module, "te"))
    return table
