"""Small random-weight upscaler files, built from spandrel's own architecture classes and saved with the key
layouts the real files have, for tests and benchmarks:

- `write_esrgan`: an old-arch ESRGAN (`model.0.weight`, `model.1.sub.N.RDB1.conv1.0.weight` ..., as ESRGAN_4x.pth
  and most user files such as 4x-UltraSharp.pth), a plain state dict;
- `write_realesrgan`: Real-ESRGAN's RRDBNet in the new key layout (`conv_first`, `body.N.rdb1.conv1`, `conv_body`,
  `conv_up1/2`, `conv_hr`, `conv_last`) wrapped in `params_ema`, as RealESRGAN_x4plus(_anime_6B).pth are;
  `write_anime6b` is the 6-block x4 anime model's shape, 64 features wide by default (the real file's; tests pass
  a reduced width to stay fast);
- `write_compact`: SRVGGNetCompact (realesr-general-x4v3, realesr-animevideov3) in `params`;
- `write_swinir`: a small SwinIR (pixelshuffle upsampler) in `params_ema`;
- `write_dat`: a small DAT (pixelshuffle) in `params`, as DAT_x2.pth is;
- `write_not_an_upscaler`: a file of tensors no architecture has.

`.safetensors` targets are written flat (the wrapper dropped), as upscalers saved in that format are.

Random weights alone give a flat or saturated picture, so each model is given a skeleton: its first convolution
maps RGB into the features by a random non-negative matrix, the upsampling convolutions carry the features across
(identity, or into every sub-pixel of a pixel shuffle), the last one maps them back with the pseudo-inverse, and the
mean-subtracting architectures get the biases that undo it. Everything else (the RRDB / transformer bodies, and
small perturbations of the skeleton) is seeded noise, so the output is the picture, upscaled, plus a texture of a
few grey levels that depends mostly on nearby pixels (what a tiling test needs). The same arguments and seed give
the same bytes.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from sd1kit.formats.atomic import atomic_path
from sd1kit.upscalers.spandrel_import import import_spandrel

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # SwinIR's and DAT's


def _noise(state: dict, generator: torch.Generator, gain: float) -> None:
    """Every conv / linear weight as seeded noise of `gain` (per fan-in), its bias zero; norms etc. as built."""
    for key, value in state.items():
        if not key.endswith(".weight") or value.ndim not in (2, 4) or value.numel() == 0:
            continue
        fan_in = value[0].numel()
        state[key] = torch.randn(value.shape, generator=generator) * (gain / fan_in ** 0.5)
        bias = key[:-len("weight")] + "bias"
        if bias in state:
            state[bias] = torch.zeros_like(state[bias])


def _set_center(state: dict, key: str, matrix: torch.Tensor, generator: torch.Generator, jitter: float = 0.02,
                bias: torch.Tensor | None = None) -> None:
    """A 3x3 (or 1x1) conv whose centre tap is `matrix`, plus a little noise on every tap."""
    weight = state[f"{key}.weight"]
    out = torch.randn(weight.shape, generator=generator) * (jitter / weight[0].numel() ** 0.5)
    out[:, :, weight.shape[2] // 2, weight.shape[3] // 2] += matrix
    state[f"{key}.weight"] = out
    if f"{key}.bias" in state:
        state[f"{key}.bias"] = torch.zeros(weight.shape[0]) if bias is None else bias.clone()


def _projection(rows: int, cols: int, generator: torch.Generator) -> torch.Tensor:
    """A random non-negative rows x cols matrix, each row mostly on one column (features stay positive through
    any leaky ReLU, and the map is well conditioned, so its pseudo-inverse does not amplify the texture)."""
    out = torch.full((rows, cols), 0.02)
    out[torch.arange(rows), torch.arange(rows) % cols] += 0.5 + torch.rand(rows, generator=generator)
    return out


def _shuffled(matrix_rows: int, factor: int) -> torch.Tensor:
    """The map of an upsampling conv before PixelShuffle(factor): each feature into all its sub-pixels."""
    return torch.eye(matrix_rows).repeat_interleave(factor * factor, dim=0)


def _built(make, seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make().eval()


def _esrgan_state(num_filters: int, num_blocks: int, scale: int, seed: int, texture: float) -> dict:
    import_spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN

    model = _built(lambda: ESRGAN(num_filters=num_filters, num_blocks=num_blocks, scale=scale), seed)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(seed)
    _noise(state, generator, 1.0)
    state[f"model.1.sub.{num_blocks}.weight"] *= texture  # the conv closing the RRDB body: the texture's strength
    project = _projection(num_filters, 3, generator)
    _set_center(state, "model.0", project, generator)
    last = max(int(k.split(".")[1]) for k in state if k.startswith("model.") and k.endswith(".weight"))
    for index in sorted({int(k.split(".")[1]) for k in state if re.match(r"model\.\d+\.weight$", k)}):
        if 0 < index < last:
            _set_center(state, f"model.{index}", torch.eye(num_filters), generator)
    _set_center(state, f"model.{last}", torch.linalg.pinv(project), generator)
    return state


def _new_arch(state: dict, num_blocks: int) -> dict:
    """Old-arch RRDBNet keys renamed to Real-ESRGAN's (basicsr's RRDBNet)."""
    convs = sorted({int(k.split(".")[1]) for k in state if re.match(r"model\.\d+\.weight$", k)})
    names = {convs[0]: "conv_first", convs[-2]: "conv_hr", convs[-1]: "conv_last"}
    names.update({index: f"conv_up{i + 1}" for i, index in enumerate(convs[1:-2])})
    out = {}
    for key, value in state.items():
        block = re.match(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$", key)
        if block:
            out["body.{}.rdb{}.conv{}.{}".format(*block.groups())] = value
        elif key.startswith(f"model.1.sub.{num_blocks}."):
            out["conv_body." + key.rsplit(".", 1)[1]] = value
        else:
            index, kind = key.split(".")[1], key.rsplit(".", 1)[1]
            out[f"{names[int(index)]}.{kind}"] = value
    return out


def _save(out: str | Path, state: dict, wrap: str | None) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in state.items()}
    if out.suffix.lower() == ".safetensors":
        from sd1kit.formats.safetensors_io import write_safetensors

        write_safetensors(out, state)
        return out
    with atomic_path(out) as tmp:
        torch.save({wrap: state} if wrap else state, tmp)
    return out


def write_esrgan(out: str | Path, num_filters: int = 16, num_blocks: int = 2, scale: int = 4, seed: int = 0,
                 texture: float = 0.1) -> Path:
    """An old-arch ESRGAN file (a plain state dict, `model.N...` keys)."""
    return _save(out, _esrgan_state(num_filters, num_blocks, scale, seed, texture), None)


def write_realesrgan(out: str | Path, num_filters: int = 16, num_blocks: int = 6, scale: int = 4, seed: int = 1,
                     texture: float = 0.1, wrap: str = "params_ema") -> Path:
    """A Real-ESRGAN RRDBNet file in the new key layout, wrapped in `params_ema`."""
    state = _esrgan_state(num_filters, num_blocks, scale, seed, texture)
    return _save(out, _new_arch(state, num_blocks), wrap)


def write_anime6b(out: str | Path, num_filters: int = 64, seed: int = 6) -> Path:
    """RealESRGAN_x4plus_anime_6B.pth's shape: 6 RRDB blocks, x4, 64 features (`num_filters` reduces it)."""
    return write_realesrgan(out, num_filters=num_filters, num_blocks=6, scale=4, seed=seed)


def write_compact(out: str | Path, num_feat: int = 16, num_conv: int = 4, scale: int = 4, seed: int = 2,
                  texture: float = 0.15) -> Path:
    """SRVGGNetCompact (realesr-general-x4v3's architecture) in `params`: the input, upscaled by nearest, plus
    a learned residual (here small noise)."""
    import_spandrel()
    from spandrel.architectures.Compact import Compact

    model = _built(lambda: Compact(num_feat=num_feat, num_conv=num_conv, upscale=scale), seed)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(seed)
    _noise(state, generator, 1.0)
    last = max(int(k.split(".")[1]) for k in state if k.startswith("body.") and state[k].ndim == 4)
    state[f"body.{last}.weight"] *= texture
    return _save(out, state, "params")


def _transformer_skeleton(state: dict, embed_dim: int, scale: int, generator: torch.Generator) -> None:
    """SwinIR's / DAT's path around the body: conv_first, conv_before_upsample, upsample, conv_last."""
    num_feat = state["conv_before_upsample.0.weight"].shape[0]
    mean = torch.tensor(RGB_MEAN)
    first = _projection(embed_dim, 3, generator)
    _set_center(state, "conv_first", first, generator, bias=first @ mean)
    before = _projection(num_feat, embed_dim, generator) / embed_dim ** 0.5
    _set_center(state, "conv_before_upsample.0", before, generator)
    factors = [3] if scale == 3 else [2] * (scale.bit_length() - 1)
    for i, factor in enumerate(factors):
        _set_center(state, f"upsample.{2 * i}", _shuffled(num_feat, factor), generator, jitter=0.005)
    _set_center(state, "conv_last", torch.linalg.pinv(before @ first), generator, bias=-mean)


def _transformer_state(model, embed_dim: int, scale: int, seed: int, texture: float) -> dict:
    """A built SwinIR / DAT's tensors: seeded noise, the body's share scaled to `texture`, and the skeleton."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(seed)
    _noise(state, generator, 1.0)
    state["conv_after_body.weight"] *= texture  # the body's share: the texture's strength
    _transformer_skeleton(state, embed_dim, scale, generator)
    return state


def write_swinir(out: str | Path, embed_dim: int = 16, depths=(2,), num_heads=(2,), window_size: int = 8,
                 scale: int = 4, img_size: int = 32, seed: int = 3, texture: float = 0.05) -> Path:
    """A small SwinIR (pixelshuffle upsampler, as the classical SR models) in `params_ema`."""
    import_spandrel()
    from spandrel.architectures.SwinIR import SwinIR

    model = _built(lambda: SwinIR(img_size=img_size, embed_dim=embed_dim, depths=list(depths),
                                  num_heads=list(num_heads), window_size=window_size, upscale=scale,
                                  upsampler="pixelshuffle", mlp_ratio=2.0), seed)
    return _save(out, _transformer_state(model, embed_dim, scale, seed, texture), "params_ema")


def write_dat(out: str | Path, embed_dim: int = 32, depth=(2,), num_heads=(2,), split_size=(2, 4), scale: int = 2,
              seed: int = 4, texture: float = 0.05) -> Path:
    """A small DAT (pixelshuffle upsampler) in `params`, as DAT_x2.pth is (32 features at least: DAT's position
    bias has embed_dim // 4 // heads... channels, none below that)."""
    import_spandrel()
    from spandrel.architectures.DAT import DAT

    model = _built(lambda: DAT(img_size=64, embed_dim=embed_dim, depth=list(depth), num_heads=list(num_heads),
                               split_size=list(split_size), expansion_factor=2.0, upscale=scale), seed)
    return _save(out, _transformer_state(model, embed_dim, scale, seed, texture), "params")


def write_not_an_upscaler(out: str | Path, seed: int = 5) -> Path:
    """Tensors under keys no spandrel architecture has (a text encoder's, say)."""
    generator = torch.Generator().manual_seed(seed)
    state = {f"text_model.encoder.layers.{i}.mlp.fc1.weight": torch.randn(8, 4, generator=generator)
             for i in range(2)}
    return _save(out, state, None)
