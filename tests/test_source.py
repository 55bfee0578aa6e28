"""Opening files: canonical names, the real-world quirks, lazy tensor access, diffusers folders."""

from __future__ import annotations

import shutil

import torch

from sd1kit.dev.manifest import sd1_manifest, write_header_only
from sd1kit.dev.tiny import tiny_state_dict
from sd1kit.formats.keys.ldm import POSITION_IDS, UNET_PREFIX, VAE_PREFIX
from sd1kit.formats.safetensors_io import write_safetensors
from sd1kit.formats.source import open_source
from sd1kit.models.detect import detect


def test_lazy_access_reads_one_tensor_of_a_2gb_file(tmp_path):
    path = write_header_only(tmp_path / "big.safetensors", sd1_manifest())
    source = open_source(path)
    w = source.get_tensor(UNET_PREFIX + "input_blocks.0.0.weight")
    assert w.shape == (320, 4, 3, 3) and w.dtype == torch.float16 and not w.any()


def test_float_position_ids_and_mixed_dtypes(tmp_path):
    sd = tiny_state_dict()
    sd = {k: (v.half() if k.startswith(UNET_PREFIX) else v.bfloat16() if k.startswith(VAE_PREFIX) else v)
          for k, v in sd.items()}
    sd[POSITION_IDS] = torch.arange(77, dtype=torch.float32).unsqueeze(0) - 1e-4  # a merge's drift
    path = tmp_path / "merge.safetensors"
    write_safetensors(path, sd)
    source = open_source(path)
    assert "position_ids stored as F32 (ignored; rebuilt as 0..76)" in source.quirks
    assert POSITION_IDS not in source.tensors
    d = detect(source)
    assert d.dtypes == {"BF16": 244, "F16": 684, "F32": 36}
    assert [d.components[c]["dtype"] for c in ("unet", "vae", "text_encoder")] == ["F16", "BF16", "F32"]


def test_mixed_dtypes_inside_one_component(tmp_path):
    sd = tiny_state_dict()
    key = UNET_PREFIX + "out.2.weight"
    sd[key] = sd[key].half()
    path = tmp_path / "m.safetensors"
    write_safetensors(path, sd)
    assert detect(open_source(path)).components["unet"]["dtype"] == "mixed"


def test_diffusers_folder_with_bin_weights(tiny_models, tmp_path):
    """Older diffusers folders (e.g. hakurei/waifu-diffusion) ship pickled .bin files: read them safely."""
    folder = tmp_path / "wd-diffusers"
    shutil.copytree(tiny_models["diffusers"], folder)
    for part, name in (("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"), ("text_encoder", "model")):
        st = folder / part / f"{name}.safetensors"
        sd = open_source(st).load_state_dict()
        torch.save(sd, folder / part / ("pytorch_model.bin" if part == "text_encoder" else f"{name}.bin"))
        st.unlink()
    a, b = open_source(folder), open_source(tiny_models["diffusers"])
    assert a.shapes == b.shapes and {k: i.dtype for k, i in a.tensors.items()} == {k: i.dtype for k, i in b.tensors.items()}
    key = VAE_PREFIX + "decoder.mid.attn_1.q.weight"
    assert a.get_tensor(key).shape[-2:] == (1, 1) and torch.equal(a.get_tensor(key), b.get_tensor(key))


def test_official_nai_layout_is_unet_and_vae(tiny_models):
    source = open_source(tiny_models["nai-official"])
    assert source.container == "diffusers"
    assert "diffusers folder without text_encoder" in source.quirks
    assert {k.split(".")[0] for k in source.tensors} == {"model", "first_stage_model"}


def test_a1111_side_files_are_recognised(tmp_path, cli):
    """Textual inversion .pt, hypernetwork .pt and .vae.pt, pickled the way A1111 and LDM write them."""
    emb = tmp_path / "bad_prompt.pt"
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": torch.randn(8, 768)},
                "name": "bad_prompt", "step": 1500}, emb)
    hyper = tmp_path / "aini.pt"
    layer = {"linear.0.weight": torch.randn(8, 4), "linear.0.bias": torch.zeros(8)}
    torch.save({768: [layer, layer], 320: [layer, layer], "name": "aini", "layer_structure": [1, 2, 1],
                "activation_func": "linear"}, hyper)
    vae = tmp_path / "animevae.pt"
    vae_sd = {k[len(VAE_PREFIX):]: v for k, v in tiny_state_dict().items() if k.startswith(VAE_PREFIX)}
    torch.save({"state_dict": {**vae_sd, "loss.logvar": torch.zeros(())}}, vae)
    reports = cli("inspect", "--json", emb, hyper, vae).json()
    assert [r["kind"] for r in reports] == ["embedding", "hypernetwork", "vae"]
    assert all(r["safe"] and r["family"] == "sd1" for r in reports)
