"""Header facts that detection tables test: which key families are present, and a few widths."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from sd1kit.formats.keys.ldm import TE_PREFIX, TE_ROOT, UNET_PREFIX, VAE_PREFIX

# Adapter weight names (the part after the module name) -> algorithm, as LyCORIS/kohya/PEFT write them.
ADAPTER_SUFFIXES = {
    "lora_up.weight": "lora", "lora_down.weight": "lora", "lora_A.weight": "lora", "lora_B.weight": "lora",
    "lora_A.default.weight": "lora", "lora.up.weight": "lora", "lora_linear_layer.up.weight": "lora",
    "hada_w1_a": "loha", "lokr_w1": "lokr", "lokr_w1_a": "lokr", "on_input": "ia3", "diff": "full",
    "w_norm": "norm", "a1.weight": "glora", "oft_diag": "oft",
}
ADAPTER_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_", "lycoris_", "oft_unet_", "unet.", "text_encoder.")
CONTROLNET_MARKS = ("control_model.", "input_hint_block.", "zero_convs.", "controlnet_cond_embedding.",
                    "controlnet_down_blocks.", "lora_controlnet")
EMBEDDING_KEYS = ("string_to_param.*", "emb_params", "clip_l", "string_to_token")
HYPERNETWORK_WIDTHS = {"320", "640", "768", "1024", "1280"}
HYPERNETWORK_OPTIONS = {"step", "name", "layer_structure", "activation_func", "is_layer_norm", "weight_initialization",
                        "use_dropout", "sd_checkpoint", "sd_checkpoint_name", "activate_output", "last_layer_dropout",
                        "dropout_structure", "optional_info"}
FAMILY_MARKS = (  # key prefix -> family that only that family has
    ("conditioner.embedders.", "sdxl"), (UNET_PREFIX + "label_emb.", "sdxl"), ("add_embedding.", "sdxl"),
    ("lora_te1_", "sdxl"), ("lora_te2_", "sdxl"),
    ("cond_stage_model.model.", "sd2"),
    (UNET_PREFIX + "joint_blocks.", "sd3"), ("joint_blocks.", "sd3"),
    (UNET_PREFIX + "double_blocks.", "flux"), ("double_blocks.", "flux"),
)


@dataclass(frozen=True)
class Features:
    has_ldm_unet: bool
    has_bare_unet: bool
    has_vae: bool
    has_text_encoder: bool
    has_controlnet: bool
    has_embedding: bool
    has_hypernetwork: bool
    adapter_algorithms: frozenset[str]
    family_mark: str | None
    context_dim: int | None
    unet_in_channels: int | None


def adapter_algorithm(key: str, shape: tuple[int, ...]) -> str | None:
    module, _, weight = key.partition(".")
    if not key.startswith(ADAPTER_PREFIXES):
        return None
    for suffix, algorithm in ADAPTER_SUFFIXES.items():
        if key.endswith("." + suffix) or weight == suffix:
            return algorithm
    if weight == "oft_blocks":
        return "boft" if len(shape) == 4 else "oft"
    return None


def _context_dim(shapes: Mapping[str, tuple[int, ...]]) -> int | None:
    for key, shape in shapes.items():
        if key.endswith("attn2.to_k.weight") and len(shape) == 2 and not key.startswith(ADAPTER_PREFIXES):
            return shape[1]
    return None


def _in_channels(shapes) -> int | None:
    for key in (UNET_PREFIX + "input_blocks.0.0.weight", "input_blocks.0.0.weight", "conv_in.weight"):
        shape = shapes.get(key)
        if shape is not None and len(shape) == 4:
            return shape[1]
    return None


def header_features(shapes: Mapping[str, tuple[int, ...]], top_level_keys: list[str] | None = None) -> Features:
    keys = list(shapes)
    starts = lambda *prefixes: any(k.startswith(prefixes) for k in keys)
    has_controlnet = starts(*CONTROLNET_MARKS)
    algorithms = frozenset(a for k, s in shapes.items() if (a := adapter_algorithm(k, s)))
    top = set(top_level_keys or [])
    family_mark = next((family for prefix, family in FAMILY_MARKS if starts(prefix)), None)
    return Features(
        has_ldm_unet=starts(UNET_PREFIX),
        has_bare_unet=starts("input_blocks.", "down_blocks.", "time_embed.", "time_embedding.")
        and not starts("encoder.", VAE_PREFIX),
        has_vae=starts(VAE_PREFIX) or ("encoder.conv_in.weight" in shapes and "decoder.conv_in.weight" in shapes),
        has_text_encoder=starts(TE_PREFIX, TE_ROOT, "text_model.embeddings.", "embeddings.token_embedding."),
        has_controlnet=has_controlnet,
        has_embedding=any(k.startswith("string_to_param.") or k in EMBEDDING_KEYS for k in keys),
        has_hypernetwork=_is_hypernetwork(top),
        adapter_algorithms=algorithms,
        family_mark=family_mark,
        context_dim=_context_dim(shapes),
        unet_in_channels=_in_channels(shapes),
    )


def _is_hypernetwork(top: set[str]) -> bool:
    """A1111's hypernetwork dict: width keys beside its options; the SD1 widths alone (the NovelAI leak's files)."""
    widths = {k for k in top if k.isdigit()}
    if not widths or not top - widths <= HYPERNETWORK_OPTIONS:
        return False
    return bool(widths & HYPERNETWORK_WIDTHS) or bool({"layer_structure", "name"} & top)
