"""Benchmark: seconds per sampling step and peak memory of sd1kit's txt2img on the full-size SD1.5 topology
(random weights: the cost is the real one), against plain diffusers modules run the same way in the same run.

Each size runs in its own process so that peak RSS is that size's alone. Prints a table.

    .venv/bin/python bench/generate.py [--sizes 512,768,1088] [--steps 2] [--dtype fp32|bf16]
"""

from __future__ import annotations

import os
import sys

# bench/inspect.py is named like the stdlib module: keep this folder off the import path.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402


def _full_size_model(dtype):
    import torch

    from sd1kit.models.build import SD1Modules, build_text_encoder, build_unet, build_vae
    from sd1kit.models.configs import SD1_TEXT_ENCODER, SD1_UNET, SD1_VAE
    from sd1kit.pipeline.model import LoadedModel
    from sd1kit.sampling.schedules import DiscreteSchedule, sd1_alphas_cumprod

    torch.manual_seed(0)
    modules = SD1Modules(build_unet(SD1_UNET), build_vae(SD1_VAE), build_text_encoder(SD1_TEXT_ENCODER),
                         SD1_UNET, SD1_VAE, SD1_TEXT_ENCODER)
    for m in (modules.unet, modules.vae, modules.text_encoder):
        m.to(dtype).eval()
    return LoadedModel("random-sd15", None, None, modules, "epsilon", False,
                       DiscreteSchedule(sd1_alphas_cumprod()), torch.device("cpu"), dtype, [])


def run_one(size: int, steps: int, dtype_name: str, tiled: bool) -> dict:
    """In a child process: our pipeline's s/step and decode time, then the plain-diffusers loop's."""
    import torch

    from sd1kit.pipeline import images
    from sd1kit.pipeline.generate import generate
    from sd1kit.pipeline.request import GenerationRequest

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    model = _full_size_model(dtype)
    stamps = []
    request = GenerationRequest(prompt="masterpiece, 1girl", negative_prompt="lowres", sampler="Euler",
                                steps=steps, width=size, height=size, seed=1, tiled_vae=tiled)
    t0 = time.perf_counter()
    generate(request, model, callback=lambda *a: stamps.append(time.perf_counter()))
    total = time.perf_counter() - t0
    ours_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else float("nan")
    ours_decode = total - (stamps[-1] - t0)  # after the last step's model call: its update and the decode
    # plain diffusers: the same UNet called on a cond+uncond batch, the VAE decoding directly
    unet, vae = model.modules.unet, model.modules.vae
    latents = torch.randn(2, 4, size // 8, size // 8, dtype=dtype)
    context = torch.randn(2, 77, 768, dtype=dtype)
    with torch.no_grad():
        t = time.perf_counter()
        for _ in range(steps):
            unet(latents, torch.tensor([500, 500]), encoder_hidden_states=context)
        plain_step = (time.perf_counter() - t) / steps
        t = time.perf_counter()
        if tiled:
            images.decode_tiled(vae, latents[:1].float(), 0.18215)
        else:
            vae.decode(latents[:1])
        plain_decode = time.perf_counter() - t
    return {"size": size, "ours_step": ours_step, "plain_step": plain_step, "ours_decode": ours_decode,
            "plain_decode": plain_decode, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--tiled", choices=("off", "on", "both"), default="both")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        size, tiled = args.child.split(":")
        print(json.dumps(run_one(int(size), args.steps, args.dtype, tiled == "on")))
        return 0
    rows = []
    modes = {"off": ["off"], "on": ["on"], "both": ["off", "on"]}[args.tiled]
    for size in (int(s) for s in args.sizes.split(",")):
        for mode in modes:
            print(f"running {size}x{size}, tiled VAE {mode} ...", file=sys.stderr)
            out = subprocess.run([sys.executable, __file__, "--child", f"{size}:{mode}", "--steps", str(args.steps),
                                  "--dtype", args.dtype], capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                return 1
            rows.append({**json.loads(out.stdout.strip().splitlines()[-1]), "tiled": mode})
    print(f"\nfull-size SD1.5 topology, random weights, {args.dtype}, {os.cpu_count()} CPUs, "
          f"torch threads {__import__('torch').get_num_threads()}, sampler Euler, CFG batch of 2\n")
    print(f"{'size':>6} {'tiled':>5} {'s/step':>8} {'plain s/step':>12} {'ratio':>6} {'decode s':>9} "
          f"{'plain decode':>12} {'ratio':>6} {'peak RSS GB':>11}")
    for r in rows:
        print(f"{r['size']:>6} {r['tiled']:>5} {r['ours_step']:8.2f} {r['plain_step']:12.2f} "
              f"{r['ours_step'] / r['plain_step']:6.2f} {r['ours_decode']:9.2f} {r['plain_decode']:12.2f} "
              f"{r['ours_decode'] / r['plain_decode']:6.2f} {r['peak_rss_gb']:11.2f}")
    print("\nratio: sd1kit / plain diffusers modules, measured in the same process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
