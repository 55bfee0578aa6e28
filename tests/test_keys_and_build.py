"""LDM <-> diffusers names: bijective, equal to diffusers' own single-file converter, lossless round trips."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st

from sd1kit.dev.manifest import sd1_manifest
from sd1kit.dev.tiny import TINY_UNET, TINY_VAE, tiny_modules, tiny_state_dict
from sd1kit.formats.keys.diffusers import UNetLayout, VAELayout, unet_keymap, vae_keymap
from sd1kit.formats.keys.ldm import TE_PREFIX, UNET_PREFIX, VAE_PREFIX, canonical_name, ema_name
from sd1kit.formats.source import open_source
from sd1kit.models.build import (
    load_modules, modules_to_ldm, unet_ldm_to_diffusers, vae_ldm_to_diffusers,
)
from sd1kit.models.configs import SD1_UNET, SD1_VAE, infer_text_encoder_config, infer_unet_config, infer_vae_config


@pytest.fixture(scope="module")
def tiny_sd():
    return tiny_state_dict(seed=1)


@pytest.fixture(scope="module")
def full_manifest():
    return sd1_manifest()


def _strip(sd, prefix):
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def test_full_size_sd1_key_counts(full_manifest):
    """The real SD1.5 single-file layout: 686 UNet, 248 VAE, 196 CLIP tensors (+ position_ids)."""
    count = lambda p: sum(k.startswith(p) for k in full_manifest)
    assert (count(UNET_PREFIX), count(VAE_PREFIX), count(TE_PREFIX)) == (686, 248, 197)
    params = lambda p: sum(i.numel for k, i in full_manifest.items() if k.startswith(p))
    assert params(UNET_PREFIX) == 859_520_964
    assert params(VAE_PREFIX) == 83_653_863


def test_config_inference_on_real_shapes(full_manifest):
    shapes = {k: i.shape for k, i in full_manifest.items()}
    assert infer_unet_config(shapes) == SD1_UNET
    assert infer_vae_config(shapes) == SD1_VAE
    te = infer_text_encoder_config(shapes)
    assert (te.hidden_size, te.num_layers, te.num_heads, te.vocab_size, te.max_positions) == (768, 12, 12, 49408, 77)


@pytest.mark.parametrize("layout", [UNetLayout(), TINY_UNET.layout, UNetLayout(3, 1, (True, True, False))])
def test_unet_map_is_a_bijection(layout):
    from sd1kit.formats.keys.diffusers import unet_module_map

    modules = unet_module_map(layout)
    assert len(set(d for d, _ in modules.values())) == len(modules)
    km = unet_keymap(layout)
    for ldm in modules:
        for suffix in ("weight", "in_layers.0.bias", "skip_connection.weight", "transformer_blocks.0.attn1.to_q.weight"):
            key = f"{ldm}.{suffix}"
            assert km.to_ldm(km.to_diffusers(key)) == key


def test_unet_names_match_diffusers_converter(tiny_sd):
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    ours = unet_ldm_to_diffusers(_strip(tiny_sd, UNET_PREFIX), TINY_UNET)
    reference = convert_ldm_unet_checkpoint(tiny_sd, TINY_UNET.to_diffusers())
    assert set(ours) == set(reference)
    assert all(torch.equal(ours[k], reference[k]) for k in ours)


def test_vae_names_match_diffusers_converter(tiny_sd):
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    ours = vae_ldm_to_diffusers(_strip(tiny_sd, VAE_PREFIX), TINY_VAE)
    reference = convert_ldm_vae_checkpoint(tiny_sd, TINY_VAE.to_diffusers())
    assert set(ours) == set(reference)
    for k in ours:
        assert torch.equal(ours[k], reference[k].reshape(ours[k].shape)), k


def test_full_size_names_match_diffusers_modules(full_manifest):
    """Every real-size LDM key maps onto a parameter of diffusers' SD1 UNet/VAE with the same shape."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD1_UNET.to_diffusers())
        vae = AutoencoderKL(**SD1_VAE.to_diffusers())
    for prefix, module, keymap in ((UNET_PREFIX, unet, unet_keymap(SD1_UNET.layout)),
                                   (VAE_PREFIX, vae, vae_keymap(SD1_VAE.layout))):
        params = dict(module.state_dict())
        mapped = {keymap.to_diffusers(k[len(prefix):]): i for k, i in full_manifest.items() if k.startswith(prefix)}
        assert set(mapped) == set(params)
        for name, info in mapped.items():
            assert params[name].numel() == info.numel, name


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_every_real_key_round_trips(full_manifest, data):
    key = data.draw(st.sampled_from(sorted(k for k in full_manifest if k.startswith((UNET_PREFIX, VAE_PREFIX)))))
    prefix, keymap = (UNET_PREFIX, unet_keymap(SD1_UNET.layout)) if key.startswith(UNET_PREFIX) \
        else (VAE_PREFIX, vae_keymap(SD1_VAE.layout))
    inner = key[len(prefix):]
    assert keymap.to_ldm(keymap.to_diffusers(inner)) == inner


def test_ema_name_matches_diffusers_formula():
    key = "model.diffusion_model.input_blocks.5.0.out_layers.0.weight"
    assert ema_name(key) == "model_ema.diffusion_modelinput_blocks50out_layers0weight"
    assert ema_name(key) == "model_ema." + "".join(key.split(".")[1:])


def test_old_clip_layout_is_canonicalised():
    assert canonical_name("cond_stage_model.transformer.encoder.layers.0.mlp.fc1.weight") == \
        "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight"
    assert canonical_name("cond_stage_model.transformer.text_model.final_layer_norm.bias") == \
        "cond_stage_model.transformer.text_model.final_layer_norm.bias"
    assert canonical_name("model.diffusion_model.out.0.weight") == "model.diffusion_model.out.0.weight"


def test_ldm_modules_ldm_round_trip_is_lossless(tiny_sd):
    again = modules_to_ldm(load_modules(tiny_sd))
    assert set(again) == set(tiny_sd)
    assert all(torch.equal(again[k], tiny_sd[k]) and again[k].dtype == tiny_sd[k].dtype for k in tiny_sd)


def _outputs(modules, seed=0):
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(1, 4, 16, 16, generator=g)
    ids = torch.tensor([[49406, 320, 1125, 539, 320, 2368, 49407] + [49407] * 70])
    with torch.no_grad():
        context = modules.text_encoder(ids).last_hidden_state
        eps = modules.unet(latent, torch.tensor([500]), encoder_hidden_states=context).sample
        image = modules.vae.decode(latent).sample
    return context, eps, image


def test_ldm_file_and_diffusers_folder_give_identical_outputs(tiny_models):
    """Two loading paths, same tiny model (seed 0): LDM single file vs diffusers folder."""
    from_file = load_modules(open_source(tiny_models["sd15"]).load_state_dict())
    from_folder = load_modules(open_source(tiny_models["diffusers"]).load_state_dict())
    for module in (from_file, from_folder):
        for m in (module.unet, module.vae, module.text_encoder):
            m.float()
    for a, b in zip(_outputs(from_file), _outputs(from_folder)):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)  # the file is fp16, the folder fp32


def test_loaded_modules_equal_the_originals():
    """Weights assigned from an LDM dict reproduce the original diffusers modules' outputs exactly."""
    original = tiny_modules(seed=3)
    rebuilt = load_modules(modules_to_ldm(original))
    for a, b in zip(_outputs(original), _outputs(rebuilt)):
        assert torch.equal(a, b)
