"""An exact VAE decode in bounded memory: the decoder run op by op over the whole picture, each op computed in bands
of rows, with every GroupNorm normalised by the statistics of its whole input (summed over the bands first), as the
tiled-VAE extension of A1111 (multidiffusion-upscaler's Tiled VAE) shares them between its tiles. A tile that
normalises by its own statistics changes the picture (the old tiled decode did); this one equals the whole decode
within float rounding (a test checks 1 grey level).

What it saves: diffusers' decoder keeps each op's output beside its input (norm, activation, conv, shortcut: four
or five full-size activations at the largest stage); here a GroupNorm and its SiLU are applied band by band on the
way into the next convolution, so a ResNet block holds its input and two outputs, and an upsampler its input and
output. The mid block (with its global attention) runs whole, at latent size. Falls back to the whole decode for a
decoder of another shape than SD1's (`supports`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

BAND = 64  # output rows per band


def supports(vae) -> bool:
    """SD1's AutoencoderKL decoder: ResNet blocks without time embedding and nearest-2x upsamplers with a conv."""
    dec = getattr(vae, "decoder", None)
    if dec is None or getattr(dec, "up_blocks", None) is None:
        return False
    for block in dec.up_blocks:
        for r in block.resnets:
            if r.time_emb_proj is not None or r.upsample is not None or r.downsample is not None \
                    or r.output_scale_factor != 1 or not isinstance(r.nonlinearity, torch.nn.SiLU):
                return False
        for up in block.upsamplers or []:
            if up.use_conv_transpose or up.norm is not None or not up.use_conv or not up.interpolate \
                    or up.name != "conv":
                return False
    return isinstance(dec.conv_act, torch.nn.SiLU)


def decode(vae, z: torch.Tensor, band: int = BAND) -> torch.Tensor:
    """`vae.decode(z).sample`, computed in bands (z: [b, 4, h, w] already divided by the latent scale)."""
    dec = vae.decoder
    with torch.no_grad():
        if getattr(vae, "post_quant_conv", None) is not None:
            z = vae.post_quant_conv(z)
        x = dec.mid_block(dec.conv_in(z))
        for block in dec.up_blocks:
            for r in block.resnets:
                x = _resnet(r, x, band)
            for up in block.upsamplers or []:
                x = _conv(up.conv, x, band, upsample=True)
        return _conv(dec.conv_out, x, band, pre=_norm_act(dec.conv_norm_out, x, band)).float()


def _stats(norm: torch.nn.GroupNorm, x: torch.Tensor, band: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The GroupNorm's per-(picture, group) mean and 1/std over the whole input, summed band by band in float64."""
    b, c, h, w = x.shape
    g = norm.num_groups
    s = torch.zeros(b, g, dtype=torch.float64)
    s2 = torch.zeros(b, g, dtype=torch.float64)
    for r0 in range(0, h, band):
        part = x[:, :, r0:r0 + band].double().reshape(b, g, -1)
        s += part.sum(-1)
        s2 += (part * part).sum(-1)
    n = c // g * h * w
    mean = s / n
    var = (s2 / n - mean * mean).clamp_min(0)
    return mean.float(), torch.rsqrt(var.float() + norm.eps)


def _norm_act(norm: torch.nn.GroupNorm, x: torch.Tensor, band: int):
    """A function applying GroupNorm (the whole input's statistics) and SiLU to rows of `x`."""
    mean, inv = _stats(norm, x, band)
    b, c = x.shape[:2]
    g = norm.num_groups
    scale = (inv[:, :, None] * norm.weight.float().view(1, g, c // g)).reshape(b, c, 1, 1)
    shift = (norm.bias.float().view(1, g, c // g) - mean[:, :, None] * scale.view(b, g, c // g)).reshape(b, c, 1, 1)

    def apply(rows: torch.Tensor) -> torch.Tensor:
        return F.silu(rows.float() * scale + shift).to(rows.dtype)
    return apply


def _conv(conv: torch.nn.Conv2d, x: torch.Tensor, band: int, pre=None, upsample: bool = False,
          out: torch.Tensor | None = None) -> torch.Tensor:
    """`conv(pre(x))` (a 3x3 or 1x1 convolution, stride 1), or `conv(upsample_nearest_2x(x))`, band by band:
    each band reads the rows it needs (one more above and below for a 3x3) and pads with zeros only at the
    picture's edges, as the whole convolution does. `out`: added to (a ResNet block's shortcut)."""
    b, _, h, w = x.shape
    h, w = (2 * h, 2 * w) if upsample else (h, w)
    k = conv.kernel_size[0] // 2
    result = torch.empty(b, conv.out_channels, h, w, dtype=x.dtype) if out is None else out
    for r0 in range(0, h, band):
        r1 = min(r0 + band, h)
        a, e = max(r0 - k, 0), min(r1 + k, h)
        if upsample:  # upsampled rows [a, e) come from source rows [a // 2, ceil(e / 2))
            src = x[:, :, a // 2:(e + 1) // 2]
            rows = F.interpolate(src, scale_factor=2.0, mode="nearest")[:, :, a - 2 * (a // 2):][:, :, :e - a]
        else:
            rows = x[:, :, a:e]
            rows = pre(rows) if pre is not None else rows
        rows = F.pad(rows, (0, 0, k - (r0 - a), k - (e - r1)))  # zero rows only at the picture's edges
        piece = F.conv2d(rows, conv.weight, conv.bias, padding=(0, k))
        if out is None:
            result[:, :, r0:r1] = piece
        else:
            result[:, :, r0:r1] += piece
    return result


def _resnet(r, x: torch.Tensor, band: int) -> torch.Tensor:
    """diffusers' ResnetBlock2D (no time embedding): shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))))))."""
    h = _conv(r.conv1, x, band, pre=_norm_act(r.norm1, x, band))
    skip = _conv(r.conv_shortcut, x, band) if r.conv_shortcut is not None else x  # x is this decode's own: added
    return _conv(r.conv2, h, band, pre=_norm_act(r.norm2, h, band), out=skip)     # to in place
