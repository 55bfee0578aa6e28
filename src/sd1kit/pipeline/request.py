"""GenerationRequest: everything that decides a picture, in A1111's terms."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass
class GenerationRequest:
    prompt: str = ""
    negative_prompt: str = ""
    model: str | None = None  # path; None = the built-in demo model (sd1kit.demo)
    vae: str | None = None  # an external VAE file; None = the checkpoint's own
    embeddings_dir: str | None = None  # textual inversions; None = $SD1KIT_HOME/embeddings when it exists
    lora_dir: str | None = None  # LoRA/LyCORIS folders (os.pathsep between); None = $SD1KIT_HOME/models/{Lora,LyCORIS}
    lora_hashes: dict = field(default_factory=dict)  # name -> short hash (from a picture's "Lora hashes")
    hypernetwork_dir: str | None = None  # `<hypernet:...>` files; None = $SD1KIT_HOME/models/hypernetworks
    hypernet_hashes: dict = field(default_factory=dict)  # name -> hash ("Hypernetwork hashes", old "Hypernet hash")
    upscaler_models_dir: str | None = None  # holds ESRGAN/, RealESRGAN/ ... (upscalers); None = $SD1KIT_HOME/models
    sampler: str = "Euler a"
    schedule: str = "Automatic"
    steps: int = 20
    cfg_scale: float = 7.0
    cfg_rescale: float | None = None  # None: the model's (catalog), else 0
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0.0
    seed_resize_from: tuple[int, int] | None = None
    width: int | None = None  # None: the model's own resolution (its metadata), else 512
    height: int | None = None
    batch_size: int = 1
    batch_count: int = 1
    clip_skip: int | None = None  # None: the model's (catalog), else 1
    eta: float | None = None
    s_noise: float = 1.0
    s_min_uncond: float = 0.0
    ensd: int = 0
    rng: str = "GPU"  # A1111's randn_source: GPU, CPU or NV
    prediction: str | None = None  # override: "epsilon" or "v"
    zero_terminal_snr: bool | None = None  # override
    init_image: Path | None = None  # img2img
    denoising_strength: float = 0.75
    emphasis: str = "original"
    upscaler_tile: int | None = None  # model upscalers' tile (None: the folder's A1111 default; 0: untiled)
    upscaler_tile_overlap: int | None = None
    tiled_vae: bool = False  # decode in bands (exact: whole-picture GroupNorm statistics); on by itself past 1 MP
    token_merging: float = 0.0  # fast mode: ToMe ratio (A1111's "Token merging ratio"; tomesd as A1111 sets it)
    deepcache: int = 0  # fast mode: whole UNet every N calls, the shallow branch between (0/1: off)
    vae_decoder: str = "Full"  # or "TAESD": the tiny decoder (fast mode; A1111's "VAE Decoder")
    taesd: str | None = None  # its weights; None = $SD1KIT_HOME/models/VAE-taesd
    # inpainting (A1111 img2img with a mask)
    mask_image: Path | None = None  # white = repaint
    mask_blur: int = 4
    invert_mask: bool = False
    masked_content: str = "original"  # fill | original | latent noise | latent nothing
    mask_weight: float = 1.0  # A1111 "Conditional mask weight" (inpainting models)
    inpaint_full_res: bool = False  # A1111 "Inpaint area: Only masked": work on the masked region at full size
    inpaint_padding: int = 32  # "Masked area padding" around that region
    # hires fix (A1111's txt2img "Hires. fix")
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_resize: tuple[int, int] | None = None  # (width, height); wins over hr_scale
    hr_upscaler: str = "Latent"
    hr_steps: int = 0  # 0 = the first pass's steps
    hr_denoising_strength: float = 0.7
    hr_sampler: str | None = None  # None = the same sampler
    hr_schedule: str | None = None
    hr_prompt: str | None = None  # None = the same prompt
    hr_negative_prompt: str | None = None
    controlnets: list = field(default_factory=list)  # pipeline.controlnet.ControlUnit, applied in order
    # A1111's compatibility switches (set from an old picture's Version by --from, or given)
    old_prompt_editing: bool = False  # "Old prompt editing timelines"
    pad_conds: bool = False  # "Pad conds": prompt and negative padded to the same length
    pad_conds_v0: bool = False  # "Pad conds v0"
    downcast_alphas_cumprod: bool = False  # "Downcast alphas_cumprod"
    per_image: bool = True  # exact batches: picture i of a batch equals its seed alone (False: one batched call)
    extra: dict = field(default_factory=dict)  # extra infotext parameters carried through
    # where each explicitly set field came from ("cli", "api", "picture", "picture: A1111 v1.5.1 < 1.6.0 ..."):
    # the plan lets the model's own defaults fill only fields no one set
    sources: dict = field(default_factory=dict)

    def with_(self, **changes) -> "GenerationRequest":
        return replace(self, **changes)

    def given(self, source: str, **changes) -> "GenerationRequest":
        """The request with `changes` set and recorded as coming from `source`."""
        return replace(self, **changes, sources={**self.sources, **{k: source for k in changes}})
