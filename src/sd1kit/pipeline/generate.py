"""txt2img and img2img as A1111 runs them: prompt schedules per step (over twice the steps for second-order
samplers), AND, CFG, per-image seeds, A1111's img2img step arithmetic, decode, infotext."""

from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from sd1kit import __version__
from sd1kit.adapters.live import adapters_applied
from sd1kit.errors import Sd1kitError
from sd1kit.metadata.infotext import a1111_order, create_infotext
from sd1kit.pipeline import hires, images, inpaint
from sd1kit.pipeline.model import LoadedModel
from sd1kit.pipeline.request import GenerationRequest
from sd1kit.prompts.compose import split_and
from sd1kit.prompts.encode import PromptEncoder
from sd1kit.prompts.extra_networks import parse_extra_networks
from sd1kit.rng import ImageRNG
from sd1kit.sampling.denoisers import CFGDenoiser, Denoiser, unet_model
from sd1kit.sampling.lcm import LCMDenoiser
from sd1kit.sampling.registry import SamplerSpec, get_sigmas, initial_latent, resolve_sampler
from sd1kit.sampling.run import run_sampler
from sd1kit.sampling.timesteps import img2img_noise_level

SEED_MAX = 4294967294


@dataclass
class GeneratedImage:
    image: Image.Image
    seed: int
    subseed: int
    infotext: str
    interrupted: bool = False


@dataclass
class Result:
    images: list[GeneratedImage] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    adapters: list = field(default_factory=list)  # AdapterReport of each LoRA/LyCORIS applied
    controls: object = None  # the ControlSet, when ControlNets ran


def resolve_seed(seed: int) -> int:
    return random.randrange(SEED_MAX) if seed is None or seed < 0 else int(seed)


def _round_size(request: GenerationRequest, warnings: list[str]) -> tuple[int, int]:
    w, h = request.width - request.width % 8, request.height - request.height % 8
    if (w, h) != (request.width, request.height):
        warnings.append(f"size {request.width}x{request.height} rounded down to {w}x{h} (multiples of 8)")
    if w < 64 or h < 64:
        raise Sd1kitError("size", f"{request.width}x{request.height} is too small (at least 64x64)")
    return w, h


def _schedule_at(schedule: list[tuple[int, torch.Tensor]], step: int) -> torch.Tensor:
    """A1111's reconstruct_cond_batch: the first entry whose end step is >= the current step."""
    return next((cond for until, cond in schedule if step <= until), schedule[-1][1])


def _denoiser(model: LoadedModel, spec: SamplerSpec, controls=None, deepcache: int = 0):
    if controls is not None:
        from sd1kit.pipeline.controlnet import controlled_unet_model

        raw = controlled_unet_model(model.modules.unet, controls)
    elif deepcache > 1:
        from sd1kit.pipeline.deepcache import DeepCacheUNet

        raw = unet_model(DeepCacheUNet(model.modules.unet, deepcache))
    else:
        raw = unet_model(model.modules.unet)
    if spec.denoiser == "lcm":
        return LCMDenoiser(raw, model.schedule)
    return Denoiser(raw, model.schedule, model.prediction)


def _schedule_label(request: GenerationRequest, spec: SamplerSpec, sched) -> str:
    """What the request chose: "Automatic" stays (it means the same sampler default everywhere), a schedule
    named or implied by a legacy sampler name ("Euler a Karras") is written out."""
    plain = request.sampler.strip().lower() in (spec.name.lower(), spec.id, *spec.aliases)
    return request.schedule if plain and request.schedule == "Automatic" else sched.name


def infotext_params(request: GenerationRequest, model_name: str, model_hash: str | None, seed: int, subseed: int,
                    w: int, h: int, zero_terminal_snr: bool = False, inpainting_model: bool = False,
                    extra: dict | None = None) -> dict:
    """The parameters of the infotext of one picture of `request`, in A1111's order and form."""
    spec, sched = resolve_sampler(request.sampler, request.schedule)
    extra = {**_inpaint_params(request, inpainting_model), **_hires_params(request, w, h), **(extra or {}),
             **request.extra}
    return a1111_order(_params(request, spec, _schedule_label(request, spec, sched), model_name, model_hash,
                               zero_terminal_snr, seed, subseed, w, h, extra))


def _params(request, spec, schedule_name, model_name, model_hash, ztsnr, seed, subseed, w, h, extra) -> dict:
    return {
        "Steps": request.steps, "Sampler": spec.name, "Schedule type": schedule_name,
        "CFG scale": request.cfg_scale, "Seed": seed, "Size": f"{w}x{h}",
        "Model hash": model_hash, "Model": model_name,
        "Variation seed": subseed if request.subseed_strength else None,
        "Variation seed strength": request.subseed_strength or None,
        "Seed resize from": "{}x{}".format(*request.seed_resize_from) if request.seed_resize_from else None,
        "Denoising strength": request.denoising_strength if request.init_image else None,  # hires: in extra
        "Clip skip": request.clip_skip if request.clip_skip > 1 else None,
        "ENSD": request.ensd if request.ensd and spec.noise == "rng" else None,
        "RNG": request.rng if request.rng != "GPU" else None,
        "NGMS": request.s_min_uncond or None,
        "Eta": request.eta if request.eta is not None and request.eta != spec.options.get("eta", 1.0) else None,
        "CFG Rescale phi": request.cfg_rescale or None,
        "VAE Decoder": "TAESD" if request.vae_decoder == "TAESD" else None,
        "DeepCache": request.deepcache if request.deepcache > 1 else None,
        "Token merging ratio": request.token_merging or None,
        "Noise Schedule": "Zero Terminal SNR" if ztsnr else None,
        **extra, "Version": f"sd1kit {__version__}",
    }


def _conditioning(encoder: PromptEncoder, prompt: str, negative: str, steps: int, hires_steps: int | None):
    """Per-step schedules of each AND part (with weights) and of the negative prompt."""
    parts = [(encoder.encode_schedule(t, steps, hires_steps), weight) for t, weight in split_and(prompt)]
    return parts, encoder.encode_schedule(negative, steps, hires_steps)


def _inpaint_params(request: GenerationRequest, inpainting_model: bool) -> dict:
    params = {"Conditional mask weight": request.mask_weight if inpainting_model and request.init_image else None}
    if request.mask_image is not None:
        params.update({
            "Mask blur": request.mask_blur or None,
            "Mask mode": "Inpaint not masked" if request.invert_mask else None,
            "Masked content": request.masked_content,
            "Inpaint area": "Only masked" if request.inpaint_full_res else None,
            "Masked area padding": request.inpaint_padding if request.inpaint_full_res else None,
        })
    return params


def _hires_params(request: GenerationRequest, w: int, h: int) -> dict:
    if not request.enable_hr:
        return {}
    return {
        "Denoising strength": request.hr_denoising_strength,
        "Hires upscale": request.hr_scale if not request.hr_resize else None,
        "Hires resize": "{}x{}".format(*request.hr_resize) if request.hr_resize else None,
        "Hires steps": request.hr_steps or None, "Hires upscaler": request.hr_upscaler,
        "Hires sampler": request.hr_sampler, "Hires schedule type": request.hr_schedule,
        "Hires prompt": request.hr_prompt, "Hires negative prompt": request.hr_negative_prompt,
    }


def _embeddings(request: GenerationRequest, model: LoadedModel, warnings: list[str]):
    import os
    from pathlib import Path

    from sd1kit.prompts.embeddings import load_embedding_dir

    folder = request.embeddings_dir or Path(os.environ.get("SD1KIT_HOME", ".")) / "embeddings"
    if not request.embeddings_dir and not Path(folder).is_dir():
        return None
    width = model.modules.text_encoder_config.hidden_size
    db = load_embedding_dir(folder, model.tokenizer, width=width)
    warnings += [f"embedding {path} skipped: {why}" for path, why in db.skipped.items()]
    return db


def _with_vae(model: LoadedModel, request: GenerationRequest) -> tuple[LoadedModel, dict]:
    """The model with the request's external VAE in place of its own, and the infotext keys naming it."""
    if not request.vae:
        return model, {}
    from dataclasses import replace

    from sd1kit.pipeline.vae import load_vae

    external = load_vae(request.vae, model.device, model.dtype)
    modules = replace(model.modules, vae=external.module)
    return replace(model, modules=modules), {"VAE hash": external.short_hash, "VAE": external.name}


def generate(request: GenerationRequest, model: LoadedModel, callback: Callable | None = None,
             should_stop: Callable[[], bool] | None = None) -> Result:
    model, vae_params = _with_vae(model, request)
    result = Result(warnings=list(model.warnings))
    spec, sched = resolve_sampler(request.sampler, request.schedule)
    w, h = _round_size(request, result.warnings)
    text, networks = parse_extra_networks(request.prompt)
    neg_text, neg_networks = parse_extra_networks(request.negative_prompt)
    if neg_networks:
        result.warnings.append("extra networks in the negative prompt are not applied; their tags were removed ("
                               + ", ".join(n.tag for n in neg_networks) + ")")
    stack, lora_params = _adapter_stack(request, model, networks, result.warnings)
    with token_merging(model.modules.unet, request.token_merging):
        if stack is None:
            return _generate(request, model, result, spec, sched, w, h, text, neg_text, vae_params, callback,
                             should_stop)
        return _generate_with_adapters(request, model, result, spec, sched, w, h, text, neg_text, vae_params,
                                       lora_params, stack, callback, should_stop)


@contextmanager
def token_merging(unet, ratio: float):
    """ToMe on the UNet's self-attention for the generation (tomesd with A1111's settings: no random merge
    choice, so pictures stay reproducible), removed afterwards."""
    if not ratio:
        yield
        return
    import tomesd

    tomesd.apply_patch(unet, ratio=ratio, use_rand=False, sx=2, sy=2, merge_attn=True, merge_crossattn=False,
                       merge_mlp=False)
    try:
        yield
    finally:
        tomesd.remove_patch(unet)


def _generate_with_adapters(request, model, result, spec, sched, w, h, text, neg_text, vae_params, lora_params,
                            stack, callback, should_stop):
    with adapters_applied(model.modules, stack):
        result.adapters = stack.reports
        result.warnings += [f"LoRA {r.summary()}: " + ", ".join((r.unused + r.mismatched)[:5])
                            for r in stack.reports if r.unused or r.mismatched]
        return _generate(request, model, result, spec, sched, w, h, text, neg_text, {**vae_params, **lora_params},
                         callback, should_stop)


def _adapter_stack(request: GenerationRequest, model: LoadedModel, networks, warnings: list[str]):
    """The prompt's `<lora:...>` / `<lyco:...>` files found and stacked, and the infotext's `Lora hashes`."""
    from sd1kit.adapters.file import open_adapter
    from sd1kit.adapters.library import adapter_folders, find_adapter, short_hash
    from sd1kit.adapters.live import live_shapes
    from sd1kit.adapters.stack import ActiveAdapter, AdapterStack
    from sd1kit.merge.blocks import parse_lbw

    adapters, hashes = [], []
    folders = [Path(request.lora_dir)] if request.lora_dir else adapter_folders()
    for net in networks:
        warnings += [f"{net.tag}: {p}" for p in net.problems]
        if net.kind not in ("lora", "lyco"):
            warnings.append(f"{net.tag}: {net.kind} networks are not supported; ignored")
            continue
        path = find_adapter(net.name, folders, request.lora_hashes.get(net.name))
        m = net.multipliers
        blocks = parse_lbw(m["lbw"], net.tag) if m.get("lbw") else None
        adapters.append(ActiveAdapter(open_adapter(path), net.name, m["te"], m["unet"], m["dyn"], blocks))
        alias = net.name.replace(":", "").replace(",", "")
        hashes.append(f"{alias}: {short_hash(path)}")
    if not adapters:
        return None, {}
    return AdapterStack(adapters, live_shapes(model.modules)), {"Lora hashes": ", ".join(hashes)}


def _generate(request, model, result, spec, sched, w, h, text, neg_text, vae_params, callback, should_stop):
    embeddings = _embeddings(request, model, result.warnings)
    encoder = PromptEncoder(model.modules.text_encoder, model.tokenizer, embeddings=embeddings,
                            clip_skip=request.clip_skip, emphasis=request.emphasis)
    first_steps = request.steps * (2 if spec.second_order else 1)  # A1111's fix for second-order samplers
    first = _conditioning(encoder, text, neg_text, first_steps, None)
    hires = _prepare_hires(request, encoder, text, neg_text, first_steps, w, h) if request.enable_hr else None
    src = _prepare_init(request, model, w, h)
    image_cond = None
    if model.modules.unet_config.in_channels == 9:  # an inpainting checkpoint
        image_cond = inpaint.model_conditioning(model.modules.vae, src.picture, src.mask, w, h, model.latent_scale,
                                                request.mask_weight)
    inpainting = None
    if src.mask is not None:
        inpainting = {"keep": inpaint.latent_mask(src.mask, w, h), "content": request.masked_content}
    seed, subseed = resolve_seed(request.seed), resolve_seed(request.subseed)
    controls = None
    if request.controlnets:
        from sd1kit.pipeline.controlnet import ControlSet, infotext_units

        controls = ControlSet(request.controlnets, model.device, model.dtype)
        controls.check_fits(model.modules.unet)
        vae_params = {**vae_params, **infotext_units(controls)}
        result.controls = controls
    if encoder.used_embeddings:  # A1111's "TI hashes": name: first 12 hex of the file's sha256
        ti = ", ".join(f"{n}: {embeddings.embeddings[n].short_hash}" for n in sorted(encoder.used_embeddings))
        vae_params = {**vae_params, "TI hashes": ti}
    for batch in range(request.batch_count):
        seeds = [seed + batch * request.batch_size + i for i in range(request.batch_size)]
        subseeds = [subseed + batch * request.batch_size + i for i in range(request.batch_size)]
        latents, interrupted = _sample(request, model, spec, sched, request.steps, *first, seeds, subseeds, w, h,
                                       src.latent, request.denoising_strength, callback, should_stop, image_cond,
                                       inpainting, controls)
        if hires is not None and not interrupted:
            latents, interrupted = _hires_pass(request, model, hires, latents, seeds, subseeds, callback, should_stop,
                                               controls)
        pictures, retried = _decode(request, model, latents)
        if retried:
            result.warnings.append("the VAE overflowed in reduced precision; decoded again in fp32")
        if src.region is not None:
            pictures = [inpaint.overlay(inpaint.paste_back(p, src.original, src.region), src.original, src.full_mask)
                        for p in pictures]
        elif src.mask is not None:
            pictures = [inpaint.overlay(p, src.original, src.mask) for p in pictures]
        for s, sub, picture in zip(seeds, subseeds, pictures):
            params = infotext_params(request, model.name, model.short_hash, s, sub, w, h, model.zero_terminal_snr,
                                     model.modules.unet_config.in_channels == 9, vae_params)
            info = create_infotext(request.prompt, request.negative_prompt, params)
            result.images.append(GeneratedImage(picture, s, sub, info, interrupted))
        if interrupted:
            break
    return result


@dataclass
class _Source:
    """What img2img / inpainting start from: the picture as the model sees it, its latent, the mask, and for
    "Only masked" the region of the full original it came from."""

    picture: Image.Image | None = None
    latent: torch.Tensor | None = None
    mask: Image.Image | None = None
    original: Image.Image | None = None  # what the result is laid over
    full_mask: Image.Image | None = None
    region: tuple[int, int, int, int] | None = None


def _prepare_init(request: GenerationRequest, model: LoadedModel, w: int, h: int) -> _Source:
    if request.mask_image is not None and request.init_image is None:
        raise Sd1kitError("mask", "a mask needs an init image (--init) to paint into")
    if request.masked_content not in inpaint.MASKED_CONTENT:
        raise Sd1kitError("masked content", f"one of {', '.join(inpaint.MASKED_CONTENT)}, not {request.masked_content!r}")
    src = _Source()
    if request.init_image is None:
        return src
    src.picture = src.original = images.load_image(request.init_image, w, h)
    if request.mask_image is not None and request.inpaint_full_res:  # the masked region, grown, at full size
        src.original = images.load_image(request.init_image, None, None)
        src.full_mask = inpaint.load_mask(request.mask_image, *src.original.size, request.mask_blur,
                                          request.invert_mask)
        src.region = inpaint.expand_to_ratio(inpaint.crop_region(src.full_mask, request.inpaint_padding), w, h,
                                             *src.original.size)
        src.picture = src.original.crop(src.region).resize((w, h), Image.LANCZOS)
        src.mask = src.full_mask.crop(src.region).resize((w, h), Image.LANCZOS)
    elif request.mask_image is not None:
        src.mask = inpaint.load_mask(request.mask_image, w, h, request.mask_blur, request.invert_mask)
    if src.mask is not None and request.masked_content == "fill":
        src.picture = inpaint.fill_masked(src.picture, src.mask)
    src.latent = images.encode(model.modules.vae, src.picture, model.latent_scale)
    return src


def _prepare_hires(request, encoder, text, neg_text, first_steps, w, h) -> dict:
    hires.check_upscaler(request.hr_upscaler)
    spec, sched = resolve_sampler(request.hr_sampler or request.sampler,
                                  request.hr_schedule or (request.schedule if not request.hr_sampler else None))
    steps = request.hr_steps or request.steps
    hr_text = parse_extra_networks(request.hr_prompt)[0] if request.hr_prompt is not None else text
    hr_neg = parse_extra_networks(request.hr_negative_prompt)[0] if request.hr_negative_prompt is not None else neg_text
    conds = _conditioning(encoder, hr_text, hr_neg, first_steps, steps * (2 if spec.second_order else 1))
    tw, th = hires.target_size(w, h, request.hr_scale, request.hr_resize)
    return {"spec": spec, "sched": sched, "steps": steps, "conds": conds, "size": (tw - tw % 8, th - th % 8)}


def _decode(request, model, latents):
    if request.vae_decoder == "TAESD":
        from sd1kit.pipeline.taesd import decode_taesd, find_taesd, load_taesd

        taesd = load_taesd(request.taesd or find_taesd(None), model.device, model.dtype)
        return images.to_pictures(decode_taesd(taesd, latents)), False
    if request.vae_decoder != "Full":
        raise Sd1kitError("VAE decoder", f"{request.vae_decoder!r} is not Full or TAESD")
    return images.decode(model.modules.vae, latents, model.latent_scale, request.tiled_vae)


def _hires_pass(request, model, hr, latents, seeds, subseeds, callback, should_stop, controls=None):
    tw, th = hr["size"]
    if request.hr_upscaler in hires.LATENT_UPSCALERS:
        init = hires.upscale_latents(latents, request.hr_upscaler, tw, th)
    else:
        pictures, _ = images.decode(model.modules.vae, latents, model.latent_scale)
        init = torch.cat([images.encode(model.modules.vae, p, model.latent_scale)
                          for p in hires.upscale_pictures(pictures, request.hr_upscaler, tw, th)])
    image_cond = None
    if model.modules.unet_config.in_channels == 9:  # inpainting checkpoints see "paint everything" at the new size
        image_cond = inpaint.model_conditioning(model.modules.vae, None, None, tw, th, model.latent_scale)
    return _sample(request, model, hr["spec"], hr["sched"], hr["steps"], *hr["conds"], seeds, subseeds, tw, th,
                   init, request.hr_denoising_strength, callback, should_stop, image_cond, controls=controls)


def _img2img_start(spec, sched, steps, denoise, schedule, init, noise):
    """The sigmas and the starting latent of img2img as A1111 sets them up: t_enc = int(min(strength, 0.999) *
    steps); k-diffusion samplers run the last t_enc + 1 sigmas of the full schedule from init + noise * sigma;
    the timestep samplers run the t_enc lowest timesteps from init noised one timestep higher (VP)."""
    t_enc = int(min(denoise, 0.999) * steps)
    if not spec.timesteps:
        sigmas = get_sigmas(spec, sched, steps, schedule)
        sigmas = sigmas[len(sigmas) - t_enc - 2:].to(noise.device)
        return sigmas, init + noise * sigmas[0]
    a = img2img_noise_level(steps, t_enc, schedule).to(noise.device)
    x_vp = init * a.sqrt().float() + noise * (1 - a).sqrt().float()
    if t_enc == 0:  # no timestep left to sample from: the noised init stands (A1111's UniPC fails here)
        return None, x_vp
    sigmas = spec.sigma_grid(steps, schedule, t_enc).to(noise.device)
    return sigmas, x_vp * (1 + sigmas[0] ** 2) ** 0.5  # the VE latent whose VP form at sigmas[0] is x_vp


def _sample(request, model, spec, sched, steps, parts, uncond, seeds, subseeds, w, h, init, denoise, callback,
            should_stop, image_cond=None, inpainting=None, controls=None):
    n = len(seeds)
    device = model.device
    rng = ImageRNG((4, h // 8, w // 8), seeds, source=request.rng, device=device,
                   subseeds=subseeds if request.subseed_strength else None, subseed_strength=request.subseed_strength,
                   seed_resize_from=request.seed_resize_from, eta_noise_seed_delta=request.ensd)
    noise = rng.first().float()
    if init is None:
        sigmas = get_sigmas(spec, sched, steps, model.schedule).to(device)
        x = initial_latent(spec, noise, sigmas)
    else:
        init = init.expand(n, -1, -1, -1)
        if inpainting is not None:
            init = inpaint.inpaint_init(inpainting["content"], init, inpainting["keep"], noise)
        sigmas, x = _img2img_start(spec, sched, steps, denoise, model.schedule, init, noise)
    conds_at = lambda step: [[(_schedule_at(s, step), wt) for s, wt in parts] for _ in range(n)]
    uncond_at = lambda step: _schedule_at(uncond, step).expand(n, -1, -1)
    keep = inpainting["keep"].to(device) if inpainting is not None else None
    if controls is not None and sigmas is not None:
        controls.begin_pass(sigmas, model.schedule)
    cfg = CFGDenoiser(_denoiser(model, spec, controls, request.deepcache), conds_at, uncond_at, request.cfg_scale, request.cfg_rescale,
                      request.s_min_uncond,
                      image_cond=None if image_cond is None else image_cond.to(device).expand(n, -1, -1, -1),
                      mask=keep, init_latent=init if keep is not None else None,
                      mask_before_denoising=spec.timesteps)
    stopped = {"flag": False}

    def stop() -> bool:
        stopped["flag"] = bool(should_stop and should_stop())
        return stopped["flag"]

    if sigmas is None:
        out = x
    else:
        out = run_sampler(spec, cfg, x, sigmas, rng=rng, seeds=seeds, eta=request.eta, callback=callback,
                          should_stop=stop, schedule=model.schedule, s_noise=request.s_noise)
    if keep is not None:  # A1111: the kept area is the init latent exactly
        out = out * (1 - keep) + init * keep
    return out, stopped["flag"]
