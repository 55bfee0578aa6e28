"""An SD1-topology VAE built by hand, as the starting point the demo VAE is fine-tuned from.

At tiny widths the SD1 VAE trains very slowly from random weights: GroupNorm(32) takes each group's mean and scale
over the picture, so with one or two channels per group a flat colour cannot pass the encoder's and decoder's last
norm. Built by hand instead, with every residual branch zeroed (so only the two `conv_norm_out` norms act), each
4-channel group carries a signal x as (x+K, -x-K, K-x, x-K): the group's mean is 0 and its variance K² + mean(x²),
so the norm passes x/K to second order, and silu(1+u) - silu(1-u) = 2·silu'(1)·u + O(u³) reads it back. The
encoder averages 8x8 cells of RGB into three latent channels (the fourth stays 0); the decoder repeats them
(nearest upsampling; a smoothing kernel would darken the border through the convolutions' zero padding).
Fine-tuning the decoder then only has to sharpen edges."""

from __future__ import annotations

import math

import torch

K = 4.0  # the carrier: large against the signal (|x| <= 1) for linearity, small enough for fp16/bf16 compute
SILU_SLOPE = 1 / (1 + math.exp(-1)) * (1 + 1 * math.exp(-1) / (1 + math.exp(-1)))  # silu'(1)


def zero_residuals(module: torch.nn.Module) -> torch.nn.Module:
    """Residual branches start at zero (each ResNet block's second conv, each attention output), as ADM and LDM
    initialise them: the network starts as its shallow skip path and trains several times faster."""
    with torch.no_grad():
        for name, layer in module.named_modules():
            if name.endswith(("conv2", "to_out.0", "proj_out")) and hasattr(layer, "weight"):
                _zero(layer)
    return module


def _zero(layer: torch.nn.Module) -> None:
    layer.weight.zero_()
    if getattr(layer, "bias", None) is not None:
        layer.bias.zero_()


def _quads(conv: torch.nn.Conv2d, sources: list[int]) -> None:
    """conv's centre tap writes input channel sources[g] into output group g as (x+K, -x-K, K-x, x-K); the other
    groups get the carrier alone."""
    _zero(conv)
    centre = conv.kernel_size[0] // 2
    for g in range(conv.out_channels // 4):
        conv.bias[4 * g:4 * g + 4] = torch.tensor([K, -K, K, -K])
        if g < len(sources):
            for i, sign in enumerate((1, -1, -1, 1)):
                conv.weight[4 * g + i, sources[g], centre, centre] = sign


def _read_quads(conv: torch.nn.Conv2d, groups: int, scale: float = 1.0) -> None:
    """conv reads group g's signal back (after norm and SiLU) into output channel g."""
    _zero(conv)
    centre = conv.kernel_size[0] // 2
    for g in range(groups):
        conv.weight[g, 4 * g, centre, centre] = scale * K / (2 * SILU_SLOPE)
        conv.weight[g, 4 * g + 2, centre, centre] = -scale * K / (2 * SILU_SLOPE)


def _identity(conv: torch.nn.Conv2d, kernel: torch.Tensor | None = None) -> None:
    _zero(conv)
    kernel = kernel if kernel is not None else torch.zeros(conv.kernel_size)
    if kernel.abs().sum() == 0:
        kernel[conv.kernel_size[0] // 2, conv.kernel_size[1] // 2] = 1
    for c in range(min(conv.in_channels, conv.out_channels)):
        conv.weight[c, c] = kernel


@torch.no_grad()
def analytic_vae(vae):
    """Sets an AutoencoderKL of SD1 topology (equal widths, a multiple of 4 channels per GroupNorm group) to the
    hand-built cell-average VAE; returns it."""
    zero_residuals(vae)
    for layer in vae.modules():
        if isinstance(layer, torch.nn.GroupNorm):
            layer.weight.fill_(1)
            layer.bias.zero_()
    enc, dec = vae.encoder, vae.decoder
    _quads(enc.conv_in, [0, 1, 2])
    average = torch.zeros(3, 3)
    average[:2, :2] = 0.25  # stride 2 over the right/bottom-padded input: the mean of each 2x2 cell
    for block in enc.down_blocks:
        for down in block.downsamplers or []:
            _identity(down.conv, average.clone())
    _read_quads(enc.conv_out, 3)
    enc.conv_out.bias[4:] = -12.0  # log-variance: a near-deterministic posterior
    _identity(vae.quant_conv)
    _identity(vae.post_quant_conv)
    _quads(dec.conv_in, [0, 1, 2])
    for block in dec.up_blocks:
        for up in block.upsamplers or []:
            _identity(up.conv)
    _read_quads(dec.conv_out, 3)
    return vae
