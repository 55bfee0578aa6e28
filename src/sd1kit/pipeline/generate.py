"""Running a generation plan as A1111 runs txt2img and img2img: prompt schedules per step (over twice the steps for
second-order samplers), AND, CFG, per-image seeds, A1111's img2img step arithmetic, hires fix, decode. Every
decision was taken by `pipeline.plan`; functions here take the plan or one of its passes."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import torch
from PIL import Image

from sd1kit.pipeline import hires, images, inpaint
from sd1kit.pipeline.memory import release
from sd1kit.pipeline.model import LoadedModel
from sd1kit.pipeline.modifiers import composed_raw
from sd1kit.pipeline.plan import GenerationPlan, Pass, plan
from sd1kit.pipeline.request import GenerationRequest
from sd1kit.prompts.compose import split_and
from sd1kit.prompts.encode import PromptEncoder, pad_by_last_vector, pad_cond_uncond_v0, pad_to_same_length
from sd1kit.prompts.schedule import prompt_schedule
from sd1kit.rng import ImageRNG
from sd1kit.sampling.denoisers import CFGDenoiser, Denoiser
from sd1kit.sampling.lcm import LCMDenoiser
from sd1kit.sampling.registry import get_sigmas, initial_latent
from sd1kit.sampling.run import run_sampler
from sd1kit.sampling.timesteps import img2img_noise_level


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
    plan: GenerationPlan | None = None


@dataclass
class Batch:
    """One batch of a run: its seeds, what it starts from, how it reports and stops."""

    seeds: list[int]
    subseeds: list[int]
    callback: Callable | None = None
    should_stop: Callable[[], bool] | None = None
    stopped: bool = False

    def stop(self) -> bool:
        self.stopped = self.stopped or bool(self.should_stop and self.should_stop())
        return self.stopped


def generate(request: GenerationRequest, model: LoadedModel, callback: Callable | None = None,
             should_stop: Callable[[], bool] | None = None) -> Result:
    """txt2img / img2img of `request` with `model`: plan it, then run the plan."""
    return run(plan(request, model), callback, should_stop)


def run(p: GenerationPlan, callback: Callable | None = None,
        should_stop: Callable[[], bool] | None = None) -> Result:
    from sd1kit.pipeline.memory import check_room

    check_room(p)  # a job that cannot fit is refused before any work
    result = Result(warnings=list(p.warnings), plan=p)
    with ExitStack() as applied:
        for m in p.modifiers:
            if m.only is None:
                applied.enter_context(m.applied(p.model))
        _note_modifiers(p, result)
        encoder = PromptEncoder(p.model.modules.text_encoder, p.model.tokenizer, embeddings=p.embeddings,
                                clip_skip=p.request.clip_skip, emphasis=p.request.emphasis)
        conds = {}
        for ps in p.passes:
            with _pass_modifiers(p, ps):
                conds[ps.name] = _conditioning(p, encoder, ps)
        release(p.model.modules.text_encoder, drop=_low_memory(p))
        src = _prepare_init(p)
        for number in range(p.request.batch_count):
            batch = Batch(*p.seeds(number), callback, should_stop)
            with _pass_modifiers(p, p.first):
                latents = _sample(p, p.first, conds["first"], batch, src)
            if p.hires is not None and not batch.stopped:
                with _pass_modifiers(p, p.hires):
                    latents = _sample(p, p.hires, conds["hires"], batch, _hires_source(p, latents))
            _add_pictures(p, result, src, _decode(p, latents, result), batch)
            if batch.stopped:
                break
    return result


def _pass_modifiers(p: GenerationPlan, ps) -> ExitStack:
    """The modifiers that act on pass `ps` only (a hires prompt's own LoRAs), applied around it."""
    stack = ExitStack()
    for m in p.modifiers:
        if m.only == ps.name:
            stack.enter_context(m.applied(p.model))
    return stack


def _did_not_run(p: GenerationPlan, result: Result, batch: Batch) -> frozenset:
    """Modifiers that were planned but did not act (so no infotext may name them), said once."""
    idle = frozenset(m.kind for m in p.modifiers if not m.ran())
    if idle and not batch.stopped and not any("did not run" in w for w in result.warnings):
        result.warnings.append(f"{', '.join(sorted(idle))} did not run; the infotext does not name "
                               f"{'it' if len(idle) == 1 else 'them'}")
    return idle


def _note_modifiers(p: GenerationPlan, result: Result) -> None:
    for m in p.modifiers:
        if m.kind == "lora":
            result.adapters = m.stack.reports
            result.warnings += [f"LoRA {r.summary()}: " + ", ".join((r.unused + r.mismatched)[:5])
                                for r in m.stack.reports if r.unused or r.mismatched]
        elif m.kind == "controlnet":
            result.controls = m.controls


def _add_pictures(p: GenerationPlan, result: Result, src, pictures: list, batch: Batch) -> None:
    if src.region is not None:
        pictures = [inpaint.overlay(inpaint.paste_back(pic, src.original, src.region), src.original, src.full_mask)
                    for pic in pictures]
    elif src.mask is not None:
        pictures = [inpaint.overlay(pic, src.original, src.mask) for pic in pictures]
    skip = _did_not_run(p, result, batch)
    for seed, subseed, picture in zip(batch.seeds, batch.subseeds, pictures):
        result.images.append(GeneratedImage(picture, seed, subseed, p.infotext(seed, subseed, skip), batch.stopped))


@dataclass
class Conditioning:
    """Per-step schedules of each AND part (with weights) and of the negative prompt: [(until_step, tensor)]."""

    parts: list
    uncond: list
    encoder: PromptEncoder

    def empty_chunk(self) -> torch.Tensor:
        """The empty prompt's encoding (A1111's padding chunk)."""
        return self.encoder.encode("")


def _conditioning(p: GenerationPlan, encoder: PromptEncoder, ps: Pass) -> Conditioning:
    old = p.request.old_prompt_editing

    def schedule(text: str):
        return [(until, encoder.encode(t)) for until, t in prompt_schedule(text, ps.prompt_steps, ps.hires_steps, old)]
    return Conditioning([(schedule(t), weight) for t, weight in split_and(ps.prompt)], schedule(ps.negative), encoder)


def _schedule_at(schedule: list, step: int) -> torch.Tensor:
    """A1111's reconstruct_cond_batch: the first entry whose end step is >= the current step."""
    return next((cond for until, cond in schedule if step <= until), schedule[-1][1])


def _padded(p: GenerationPlan, encoder_empty, cond: torch.Tensor, uncond: torch.Tensor):
    """A1111's padding switches: "Pad conds v0" (negative padded with its last vector / cut, pre-1.6 DDIM/PLMS)
    and "Pad conds" (the shorter padded with empty-prompt chunks)."""
    if cond.shape[1] == uncond.shape[1]:
        return cond, uncond
    if p.request.pad_conds_v0:
        return pad_cond_uncond_v0(cond, uncond)
    if p.request.pad_conds:
        return pad_to_same_length(cond, uncond, encoder_empty())
    return cond, uncond


@dataclass
class _Source:
    """What img2img / inpainting / a hires pass start from: the picture as the model sees it, its latent, the
    mask, and for "Only masked" the region of the full original it came from."""

    picture: Image.Image | None = None
    latent: torch.Tensor | None = None
    mask: Image.Image | None = None
    original: Image.Image | None = None  # what the result is laid over
    full_mask: Image.Image | None = None
    region: tuple[int, int, int, int] | None = None
    image_cond: torch.Tensor | None = None  # inpainting models' mask + masked-image latent
    keep: torch.Tensor | None = None  # latent mask, 1 = keep the init latent


def _prepare_init(p: GenerationPlan) -> _Source:
    r, model, (w, h) = p.request, p.model, p.first.size
    src = _Source()
    if r.init_image is not None:
        src.picture = src.original = images.load_image(r.init_image, w, h)
        if r.mask_image is not None and r.inpaint_full_res:  # the masked region, grown, at full size
            src.original = images.load_image(r.init_image, None, None)
            src.full_mask = inpaint.load_mask(r.mask_image, *src.original.size, r.mask_blur, r.invert_mask)
            src.region = inpaint.expand_to_ratio(inpaint.crop_region(src.full_mask, r.inpaint_padding), w, h,
                                                 *src.original.size)
            src.picture = src.original.crop(src.region).resize((w, h), Image.LANCZOS)
            src.mask = src.full_mask.crop(src.region).resize((w, h), Image.LANCZOS)
        elif r.mask_image is not None:
            src.mask = inpaint.load_mask(r.mask_image, w, h, r.mask_blur, r.invert_mask)
        if src.mask is not None and r.masked_content == "fill":
            src.picture = inpaint.fill_masked(src.picture, src.mask)
        src.latent = images.encode(model.modules.vae, src.picture, model.latent_scale)
    if model.modules.unet_config.in_channels == 9:  # an inpainting checkpoint
        src.image_cond = inpaint.model_conditioning(model.modules.vae, src.picture, src.mask, w, h,
                                                    model.latent_scale, r.mask_weight)
    if src.mask is not None:
        src.keep = inpaint.latent_mask(src.mask, w, h)
    return src


def _hires_source(p: GenerationPlan, latents: torch.Tensor) -> _Source:
    model, (tw, th), upscaler = p.model, p.hires.size, p.hires.upscaler
    if upscaler in hires.LATENT_UPSCALERS:
        init = hires.upscale_latents(latents, upscaler, tw, th)
    else:
        pictures, _ = images.decode(model.modules.vae, latents, model.latent_scale)
        init = torch.cat([images.encode(model.modules.vae, pic, model.latent_scale)
                          for pic in hires.upscale_pictures(pictures, upscaler, tw, th, p.hires.upscaler_file,
                                                            p.hires.upscaler_tiles, str(model.device))])
    src = _Source(latent=init)
    if model.modules.unet_config.in_channels == 9:  # inpainting checkpoints see "paint everything" at the new size
        src.image_cond = inpaint.model_conditioning(model.modules.vae, None, None, tw, th, model.latent_scale)
    return src


def _decode(p: GenerationPlan, latents: torch.Tensor, result: Result) -> list:
    decoder = next((m for m in p.modifiers if m.kind == "taesd"), None)
    if decoder is not None:
        return decoder.decode(p.model, latents)
    release(p.model.modules.unet, drop=_low_memory(p))  # --low-memory on OpenVINO: compiled again next picture
    pictures, retried = images.decode(p.model.modules.vae, latents, p.model.latent_scale, p.request.tiled_vae)
    release(p.model.modules.vae, drop=_low_memory(p))
    if retried:
        result.warnings.append("the VAE overflowed in reduced precision; decoded again in fp32")
    return pictures


def _low_memory(p: GenerationPlan) -> bool:
    return bool(p.model.runtime and p.model.runtime.low_memory)


def _img2img_start(p: GenerationPlan, ps: Pass, init: torch.Tensor, noise: torch.Tensor):
    """The sigmas and the starting latent of img2img as A1111 sets them up: t_enc = int(min(strength, 0.999) *
    steps); k-diffusion samplers run the last t_enc + 1 sigmas of the full schedule from init + noise * sigma;
    the timestep samplers run the t_enc lowest timesteps from init noised one timestep higher (VP)."""
    t_enc = int(min(ps.denoise, 0.999) * ps.steps)
    if not ps.sampler.timesteps:
        sigmas = get_sigmas(ps.sampler, ps.schedule, ps.steps, p.noise_schedule)
        sigmas = sigmas[len(sigmas) - t_enc - 2:].to(noise.device)
        return sigmas, init + noise * sigmas[0]
    a = img2img_noise_level(ps.steps, t_enc, p.noise_schedule).to(noise.device)
    x_vp = init * a.sqrt().float() + noise * (1 - a).sqrt().float()
    if t_enc == 0:  # no timestep left to sample from: the noised init stands (A1111's UniPC fails here)
        return None, x_vp
    sigmas = ps.sampler.sigma_grid(ps.steps, p.noise_schedule, t_enc).to(noise.device)
    return sigmas, x_vp * (1 + sigmas[0] ** 2) ** 0.5  # the VE latent whose VP form at sigmas[0] is x_vp


def _rng(p: GenerationPlan, ps: Pass, batch: Batch) -> ImageRNG:
    r = p.request
    w, h = ps.size
    return ImageRNG((4, h // 8, w // 8), batch.seeds, source=r.rng, device=p.model.device,
                    subseeds=batch.subseeds if r.subseed_strength else None, subseed_strength=r.subseed_strength,
                    seed_resize_from=r.seed_resize_from, eta_noise_seed_delta=r.ensd)


def _start(p: GenerationPlan, ps: Pass, src: _Source, noise: torch.Tensor):
    """(sigmas, x, init) of a pass: from noise, or from its source latent (img2img, inpainting, hires)."""
    if src.latent is None:
        sigmas = get_sigmas(ps.sampler, ps.schedule, ps.steps, p.noise_schedule).to(noise.device)
        return sigmas, initial_latent(ps.sampler, noise, sigmas), None
    init = src.latent.expand(noise.shape[0], -1, -1, -1)
    if src.keep is not None:
        init = inpaint.inpaint_init(p.request.masked_content, init, src.keep, noise)
    sigmas, x = _img2img_start(p, ps, init, noise)
    return sigmas, x, init


def _denoiser(p: GenerationPlan, ps: Pass):
    raw = composed_raw(p.model.modules.unet, p.modifiers)
    if ps.sampler.denoiser == "lcm":
        return LCMDenoiser(raw, p.noise_schedule)
    return Denoiser(raw, p.noise_schedule, p.prediction)


def _guidance(p: GenerationPlan, ps: Pass, conds: Conditioning, src: _Source, init, n: int) -> CFGDenoiser:
    r, device = p.request, p.model.device

    @lru_cache(maxsize=2)  # asked once per image and once for the negative at each step
    def at(step):
        cond = [(_schedule_at(s, step), wt) for s, wt in conds.parts]
        longest = max(c.shape[1] for c, _ in cond)  # A1111 (reconstruct_multicond_batch): AND parts of other
        cond = [(pad_by_last_vector(c, longest), wt) for c, wt in cond]  # lengths padded with their last vector
        uncond = _schedule_at(conds.uncond, step)
        if r.pad_conds or r.pad_conds_v0:
            padded = [_padded(p, conds.empty_chunk, c, uncond) for c, _ in cond]
            cond = [(c, wt) for (c, _), (_, wt) in zip(padded, cond)]
            uncond = padded[0][1]
        return cond, uncond
    keep = src.keep.to(device) if src.keep is not None else None
    return CFGDenoiser(_denoiser(p, ps), lambda step: [at(step)[0] for _ in range(n)],
                       lambda step: at(step)[1].expand(n, -1, -1), r.cfg_scale, r.cfg_rescale, r.s_min_uncond,
                       image_cond=None if src.image_cond is None else src.image_cond.to(device).expand(n, -1, -1, -1),
                       mask=keep, init_latent=init if keep is not None else None,
                       mask_before_denoising=ps.sampler.timesteps, per_image=r.per_image)


def _sample(p: GenerationPlan, ps: Pass, conds: Conditioning, batch: Batch, src: _Source) -> torch.Tensor:
    n = len(batch.seeds)
    rng = _rng(p, ps, batch)
    noise = rng.first().float()
    sigmas, x, init = _start(p, ps, src, noise)
    if sigmas is not None:
        for m in p.modifiers:
            m.begin_pass(sigmas, p.noise_schedule)
    cfg = _guidance(p, ps, conds, src, init, n)
    if sigmas is None:
        out = x
    else:
        out = run_sampler(ps.sampler, cfg, x, sigmas, rng=rng, seeds=batch.seeds, eta=p.request.eta,
                          callback=batch.callback, should_stop=batch.stop, schedule=p.noise_schedule,
                          s_noise=p.request.s_noise)
    if src.keep is not None:  # A1111: the kept area is the init latent exactly
        keep = src.keep.to(out.device)
        out = out * (1 - keep) + init * keep
    return out
