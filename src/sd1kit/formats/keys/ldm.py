"""The canonical LDM single-file namespace (formats.md §2) and its known quirks."""

from __future__ import annotations

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TE_PREFIX = "cond_stage_model.transformer.text_model."
TE_ROOT = "cond_stage_model.transformer."
EMA_PREFIX = "model_ema."
EMA_BOOKKEEPING = ("model_ema.decay", "model_ema.num_updates")
POSITION_IDS = TE_PREFIX + "embeddings.position_ids"
SCHEDULE_BUFFERS = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
)
COMPONENT_PREFIXES = {"unet": UNET_PREFIX, "vae": VAE_PREFIX, "text_encoder": TE_ROOT}

# Old CLIP layout (NAI leak, some SD1.4 files): no `text_model.` segment (A1111 checkpoint_dict_replacements_sd1).
_OLD_TE_PARTS = ("embeddings.", "encoder.", "final_layer_norm.")


def canonical_name(name: str) -> str:
    """Canonical spelling of one single-file key (old CLIP layout -> new)."""
    if name.startswith(TE_ROOT) and name[len(TE_ROOT):].startswith(_OLD_TE_PARTS):
        return TE_PREFIX + name[len(TE_ROOT):]
    return name


def ema_name(param_name: str) -> str:
    """EMA key of a UNet parameter: drop the leading `model.`, remove all dots, prefix `model_ema.`."""
    return EMA_PREFIX + param_name[len("model."):].replace(".", "")
