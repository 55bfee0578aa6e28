"""Pictures carrying the metadata of tools "in the wild" the way each writes it (issue 26), built here from the
formats, never copied from real pictures: small Pillow pictures (PNG, JPEG, WebP, animated WebP) whose text chunks
and EXIF follow the writers' code -

- ComfyUI: nodes.py SaveImage (PNG `prompt` / `workflow`), comfy_extras/nodes_images.py SaveAnimatedWEBP (EXIF
  0x0110 `prompt:{...}`, 0x010F `workflow:{...}`), WebP saver custom nodes (0x010F `Prompt:`, 0x010E `Workflow:`),
  the custom-sampler nodes (comfy_extras/nodes_custom_sampler.py), efficiency-nodes-comfyui, the frontend's group
  nodes (groupNode.ts: `extra.groupNodes`, type `workflow>NAME`), ComfyUI-Image-Saver and SD Prompt Saver texts;
- SwarmUI: src/Utils/Image.cs through ImageSharp (UserComment `UNICODE\\0` + UTF-16 little-endian);
- NovelAI: its PNG fields, as JSON in a WebP's EXIF UserComment;
- Civitai's generator: A1111 infotext with `Civitai resources` / `Civitai metadata` in UserComment (UTF-16 BE);
- a Hugging Face Space: a diffusers pipeline call as JSON in `parameters`;
- RuinedFooocus: `parameters` JSON with `"software": "RuinedFooocus"`;
- Stability Matrix: ImageMetadata.cs (`parameters` with `\\r\\n`, `parameters-json`, `smproj`; WebP EXIF
  ImageDescription / Software).

Every builder takes `mangle`, applied to each metadata text before it is written (the tests pass one that cuts
the JSON short), and returns the path written. piexif is not used: EXIF is written with Pillow's Image.Exif.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

EXIF_IFD, USER_COMMENT = 0x8769, 0x9286
MAKE, MODEL, DESCRIPTION, SOFTWARE = 0x010F, 0x0110, 0x010E, 0x0131


def _same(text: str) -> str:
    return text


def picture(size=(64, 48), seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((size[1], size[0], len(mode))) * 255).astype(np.uint8), mode)


def png(path: Path, texts: dict[str, str], mangle=_same, exif: Image.Exif | None = None, size=(64, 48)) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, mangle(value))
    picture(size).save(path, pnginfo=info, **({"exif": exif.tobytes()} if exif is not None else {}))
    return path


def exif(comment: bytes | None = None, strings: dict[int, str] | None = None, mangle=_same) -> Image.Exif:
    """An EXIF block: UserComment bytes in the Exif IFD, string tags (Make, Model, ...) in IFD0."""
    block = Image.Exif()
    for tag, text in (strings or {}).items():
        block[tag] = mangle(text)
    if comment is not None:
        block.get_ifd(EXIF_IFD)[USER_COMMENT] = comment
    return block


def utf16(text: str, order: str = "le", prefix: bytes = b"UNICODE\0") -> bytes:
    return prefix + text.encode(f"utf-16-{order}")


def save(path: Path, block: Image.Exif, fmt: str, size=(64, 48)) -> Path:
    picture(size).save(path, format=fmt, exif=block.tobytes(), quality=90)
    return path


def animated_webp(path: Path, block: Image.Exif, frames: int = 3) -> Path:
    """As SaveAnimatedWEBP saves: the first frame's EXIF, all frames appended, lossless."""
    images = [picture(seed=i) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=166, exif=block, lossless=True,
                   quality=80, method=4)
    return path


# --- ComfyUI API graphs ---

def node(kind: str, **inputs) -> dict:
    return {"class_type": kind, "inputs": inputs, "_meta": {"title": kind}}


COMFY_ADVANCED = {  # KSamplerAdvanced, SDXL encoder fed by primitives and a concatenation, an unknown custom node
    "4": node("CheckpointLoaderSimple", ckpt_name="anything-v4.5.safetensors"),
    "10": node("LoraLoader", lora_name="style\\flat_color.safetensors", strength_model=0.7, strength_clip=0.5,
               model=["4", 0], clip=["4", 1]),
    "11": node("CLIPSetLastLayer", stop_at_clip_layer=-2, clip=["10", 1]),
    "20": node("PrimitiveString", value="1girl, solo"),
    "21": node("PrimitiveStringMultiline", value="cherry blossoms, night"),
    "22": node("StringConcatenate", string_a=["20", 0], string_b=["21", 0], delimiter=", "),
    "6": node("CLIPTextEncodeSDXL", width=1024, height=1024, crop_w=0, crop_h=0, target_width=1024,
              target_height=1024, text_g=["22", 0], text_l=["22", 0], clip=["11", 0]),
    "30": node("ImpactWildcardProcessor", wildcard_text="__negative__", populated_text="lowres", mode="populate",
               seed=5),
    "7": node("CLIPTextEncode", text=["30", 0], clip=["11", 0]),
    "5": node("EmptyLatentImage", width=512, height=768, batch_size=1),
    "3": node("KSamplerAdvanced", add_noise="enable", noise_seed=1234567890, steps=30, cfg=6.5,
              sampler_name="dpmpp_2m_sde_gpu", scheduler="karras", start_at_step=0, end_at_step=20,
              return_with_leftover_noise="disable", model=["10", 0], positive=["6", 0], negative=["7", 0],
              latent_image=["5", 0]),
    "8": node("VAEDecode", samples=["3", 0], vae=["4", 2]),
    "9": node("SaveImage", filename_prefix="ComfyUI", images=["8", 0]),
}

COMFY_CUSTOM_ADVANCED = {  # SamplerCustomAdvanced with RandomNoise, CFGGuider, KSamplerSelect, BasicScheduler
    "1": node("CheckpointLoaderSimple", ckpt_name="EasyFluffV11.2.safetensors"),
    "2": node("ModelSamplingDiscrete", sampling="v_prediction", zsnr=True, model=["1", 0]),
    "3": node("CLIPTextEncode", text="anthro fox, forest", clip=["1", 1]),
    "4": node("CLIPTextEncode", text="blurry", clip=["1", 1]),
    "5": node("RandomNoise", noise_seed=42),
    "6": node("CFGGuider", cfg=5.5, model=["2", 0], positive=["3", 0], negative=["4", 0]),
    "7": node("KSamplerSelect", sampler_name="euler_ancestral"),
    "8": node("BasicScheduler", scheduler="karras", steps=28, denoise=1.0, model=["2", 0]),
    "9": node("EmptyLatentImage", width=576, height=832, batch_size=1),
    "10": node("SamplerCustomAdvanced", noise=["5", 0], guider=["6", 0], sampler=["7", 0], sigmas=["8", 0],
               latent_image=["9", 0]),
    "11": node("VAEDecode", samples=["10", 0], vae=["1", 2]),
    "12": node("SaveImage", filename_prefix="ComfyUI", images=["11", 0]),
}

COMFY_DUAL_GUIDER = {**COMFY_CUSTOM_ADVANCED,
                     "13": node("CLIPTextEncode", text="watercolor", clip=["1", 1]),
                     "6": node("DualCFGGuider", cfg_conds=6.0, cfg_cond2_negative=2.0, model=["2", 0],
                               cond1=["3", 0], cond2=["13", 0], negative=["4", 0])}

COMFY_SAMPLER_CUSTOM = {  # SamplerCustom with a KarrasScheduler and KSamplerSelect
    "1": node("CheckpointLoaderSimple", ckpt_name="v1-5-pruned-emaonly.safetensors"),
    "2": node("CLIPTextEncode", text="a lighthouse", clip=["1", 1]),
    "3": node("CLIPTextEncode", text="text, watermark", clip=["1", 1]),
    "4": node("KSamplerSelect", sampler_name="dpmpp_2m"),
    "5": node("KarrasScheduler", steps=20, sigma_max=14.614642, sigma_min=0.0291675, rho=7.0),
    "6": node("EmptyLatentImage", width=512, height=512, batch_size=1),
    "7": node("SamplerCustom", add_noise=True, noise_seed=7, cfg=7.0, model=["1", 0], positive=["2", 0],
              negative=["3", 0], sampler=["4", 0], sigmas=["5", 0], latent_image=["6", 0]),
}

COMFY_EFFICIENT = {  # efficiency-nodes-comfyui: Efficient Loader + LoRA Stacker + KSampler (Efficient)
    "1": node("Efficient Loader", ckpt_name="based66_v3.safetensors", vae_name="Baked VAE", clip_skip=-2,
              lora_name="hll4-sd15.safetensors", lora_model_strength=0.6, lora_clip_strength=1.0,
              positive="masterpiece, 1girl, smile", negative="lowres, bad hands", token_normalization="none",
              weight_interpretation="A1111", empty_latent_width=512, empty_latent_height=640, batch_size=1,
              lora_stack=["2", 0]),
    "2": node("LoRA Stacker", input_mode="advanced", lora_count=2, lora_name_1="add_detail.safetensors",
              lora_wt_1=1.0, model_str_1=0.8, clip_str_1=0.4, lora_name_2="None", lora_wt_2=1.0, model_str_2=1.0,
              clip_str_2=1.0, lora_name_3="not_counted.safetensors", lora_wt_3=1.0, model_str_3=1.0, clip_str_3=1.0),
    "3": node("KSampler (Efficient)", seed=99, steps=24, cfg=7.0, sampler_name="euler", scheduler="normal",
              denoise=1.0, preview_method="auto", vae_decode="true", model=["1", 0], positive=["1", 1],
              negative=["1", 2], latent_image=["1", 3], optional_vae=["1", 4]),
    "4": node("SaveImage", filename_prefix="eff", images=["3", 5]),
}


# --- ComfyUI UI workflows ---

def ui_node(node_id: int, kind: str, widgets=None, inputs=(), outputs=(), mode: int = 0, **extra) -> dict:
    """A workflow node as the frontend serialises it: inputs [{name, type, link(, widget)}], outputs
    [{name, type, links}]."""
    return {"id": node_id, "type": kind, "pos": [0, 0], "size": [300, 100], "flags": {}, "order": node_id,
            "mode": mode, "inputs": [dict(i) for i in inputs], "outputs": [dict(o) for o in outputs],
            "properties": {"Node name for S&R": kind}, "widgets_values": widgets if widgets is not None else [],
            **extra}


def slot(name: str, kind: str, link=None, widget: str | None = None) -> dict:
    out = {"name": name, "type": kind, "link": link}
    if widget:
        out["widget"] = {"name": widget}
    return out


def out(name: str, kind: str, links=()) -> dict:
    return {"name": name, "type": kind, "links": list(links), "slot_index": 0}


def workflow_plain() -> dict:
    """txt2img with a reroute, a bypassed LoRA loader, a primitive feeding the negative text, a note, a muted
    node and a node type sd1kit does not know."""
    nodes = [
        ui_node(4, "CheckpointLoaderSimple", ["v1-5-pruned-emaonly.safetensors"],
                outputs=[out("MODEL", "MODEL", [1]), out("CLIP", "CLIP", [3, 5]), out("VAE", "VAE", [17])]),
        ui_node(10, "LoraLoader", ["skip_me.safetensors", 1, 1], mode=4,
                inputs=[slot("model", "MODEL", 1), slot("clip", "CLIP", 3)],
                outputs=[out("MODEL", "MODEL", [11]), out("CLIP", "CLIP", [12])]),
        ui_node(6, "CLIPTextEncode", ["a castle on a hill, sunset"], inputs=[slot("clip", "CLIP", 12)],
                outputs=[out("CONDITIONING", "CONDITIONING", [14])]),
        ui_node(15, "PrimitiveNode", ["fog, low quality"],
                outputs=[{"name": "STRING", "type": "STRING", "links": [20], "widget": {"name": "text"}}]),
        ui_node(7, "CLIPTextEncode", ["fog, low quality"],
                inputs=[slot("clip", "CLIP", 5), slot("text", "STRING", 20, widget="text")],
                outputs=[out("CONDITIONING", "CONDITIONING", [15])]),
        ui_node(5, "EmptyLatentImage", [640, 448, 1], outputs=[out("LATENT", "LATENT", [16])]),
        ui_node(30, "Reroute", inputs=[slot("", "*", 11)], outputs=[out("MODEL", "MODEL", [13])]),
        ui_node(3, "KSampler", [777, "fixed", 25, 7.5, "dpmpp_2m", "karras", 1],
                inputs=[slot("model", "MODEL", 13), slot("positive", "CONDITIONING", 14),
                        slot("negative", "CONDITIONING", 15), slot("latent_image", "LATENT", 16)],
                outputs=[out("LATENT", "LATENT", [18])]),
        ui_node(8, "VAEDecode", inputs=[slot("samples", "LATENT", 18), slot("vae", "VAE", 17)],
                outputs=[out("IMAGE", "IMAGE", [19])]),
        ui_node(9, "SaveImage", ["ComfyUI"], inputs=[slot("images", "IMAGE", 19)]),
        ui_node(40, "Note", ["remember the castle"]),
        ui_node(41, "UpscaleModelLoader", ["4x-UltraSharp.pth"], mode=2),
        ui_node(42, "Image Comparer (rgthree)", [{"name": "A"}, "slide"]),
    ]
    links = [[1, 4, 0, 10, 0, "MODEL"], [3, 4, 1, 10, 1, "CLIP"], [5, 4, 1, 7, 0, "CLIP"],
             [11, 10, 0, 30, 0, "MODEL"], [12, 10, 1, 6, 0, "CLIP"], [13, 30, 0, 3, 0, "MODEL"],
             [14, 6, 0, 3, 1, "CONDITIONING"], [15, 7, 0, 3, 2, "CONDITIONING"], [16, 5, 0, 3, 3, "LATENT"],
             [17, 4, 2, 8, 1, "VAE"], [18, 3, 0, 8, 0, "LATENT"], [19, 8, 0, 9, 0, "IMAGE"],
             [20, 15, 0, 7, 1, "STRING"]]
    return {"last_node_id": 42, "last_link_id": 20, "nodes": nodes, "links": links, "groups": [], "config": {},
            "extra": {"ds": {"scale": 1, "offset": [0, 0]}}, "version": 0.4}


GROUP = "txt2img core"


def workflow_group(prefix: str = "workflow>", with_definition: bool = True) -> dict:
    """Two text encoders, an empty latent and a KSampler made into one group node (ComfyUI frontend: its
    definition in extra.groupNodes, its widgets the inner nodes' widgets in order)."""
    inner = [
        ui_node(0, "CLIPTextEncode", [""], inputs=[slot("clip", "CLIP")],
                outputs=[out("CONDITIONING", "CONDITIONING", [])]),
        ui_node(1, "CLIPTextEncode", [""], inputs=[slot("clip", "CLIP")],
                outputs=[out("CONDITIONING", "CONDITIONING", [])]),
        ui_node(2, "EmptyLatentImage", [512, 512, 1], outputs=[out("LATENT", "LATENT", [])]),
        ui_node(3, "KSampler", [0, "randomize", 20, 8, "euler", "normal", 1],
                inputs=[slot("model", "MODEL"), slot("positive", "CONDITIONING"), slot("negative", "CONDITIONING"),
                        slot("latent_image", "LATENT")], outputs=[out("LATENT", "LATENT", [])]),
    ]
    definition = {"nodes": inner, "links": [[0, 0, 3, 1, 10, "CONDITIONING"], [1, 0, 3, 2, 11, "CONDITIONING"],
                                            [2, 0, 3, 3, 12, "LATENT"]], "external": [[3, 0, "LATENT"]]}
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["dreamshaper_8.safetensors"],
                outputs=[out("MODEL", "MODEL", [1]), out("CLIP", "CLIP", [2, 3]), out("VAE", "VAE", [5])]),
        ui_node(50, prefix + GROUP,
                ["a red fox in the snow", "blurry, lowres", 768, 512, 1, 12345, "fixed", 22, 6.0, "euler_ancestral",
                 "normal", 1],
                inputs=[slot("clip", "CLIP", 2), slot("CLIP Text Encode (Prompt) clip", "CLIP", 3),
                        slot("model", "MODEL", 1)],
                outputs=[out("LATENT", "LATENT", [4])]),
        ui_node(60, "VAEDecode", inputs=[slot("samples", "LATENT", 4), slot("vae", "VAE", 5)],
                outputs=[out("IMAGE", "IMAGE", [6])]),
        ui_node(61, "SaveImage", ["ComfyUI"], inputs=[slot("images", "IMAGE", 6)]),
    ]
    links = [[1, 1, 0, 50, 2, "MODEL"], [2, 1, 1, 50, 0, "CLIP"], [3, 1, 1, 50, 1, "CLIP"],
             [4, 50, 0, 60, 0, "LATENT"], [5, 1, 2, 60, 1, "VAE"], [6, 60, 0, 61, 0, "IMAGE"]]
    extra = {"groupNodes": {GROUP: definition}} if with_definition else {}
    return {"last_node_id": 61, "last_link_id": 6, "nodes": nodes, "links": links, "groups": [], "config": {},
            "extra": extra, "version": 0.4}


def comfy_png(path: Path, graph: dict | None, workflow: dict | None = None, mangle=_same, **texts) -> Path:
    chunks = {}
    if graph is not None:
        chunks["prompt"] = json.dumps(graph)
    if workflow is not None:
        chunks["workflow"] = json.dumps(workflow)
    chunks.update(texts)
    return png(path, chunks, mangle)


def comfy_animated_webp(path: Path, graph: dict, workflow: dict, mangle=_same) -> Path:
    """SaveAnimatedWEBP: 0x0110 = "prompt:" + json, then the extra_pnginfo keys from 0x010F down."""
    return animated_webp(path, exif(strings={MODEL: "prompt:" + json.dumps(graph),
                                             MAKE: "workflow:" + json.dumps(workflow)}, mangle=mangle))


def comfy_saver_webp(path: Path, graph: dict, workflow: dict, mangle=_same) -> Path:
    """A WebP saver custom node: 0x010F = "Prompt:" + json, 0x010E = "Workflow:" + json."""
    return save(path, exif(strings={MAKE: "Prompt:" + json.dumps(graph), DESCRIPTION: "Workflow: " +
                                    json.dumps(workflow)}, mangle=mangle), "WEBP")


# --- ComfyUI saver nodes' A1111 texts ---

IMAGE_SAVER_TEXT = (
    "masterpiece, 1girl, garden\nNegative prompt: lowres, bad anatomy\n"
    "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234567890, Size: 512x768, Clip skip: 2, "
    'Model hash: 7F96A1A9CA, Model: anything-v4.5, Hashes: {"anything-v4.5":"7F96A1A9CA"}, Version: ComfyUI, '
    'Civitai resources: [{"modelName":"Flat Color","versionName":"v2","weight":0.7,'
    '"air":"urn:air:sd1:lora:civitai:108131@116428"}]')

PROMPT_SAVER_TEXT = (  # spelling variants: CFG Scale, Scheduler; the ComfyUI sampler name with its scheduler
    "a knight in armour\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: dpmpp_2m_karras, CFG Scale: 7.5, Seed: 42, Size: 512x768, Model hash: abc1234567, "
    "Model: dreamshaper_8, Version: ComfyUI")


def image_saver_jpeg(path: Path, graph: dict, mangle=_same) -> Path:
    """ComfyUI-Image-Saver's JPEG: the A1111 text in UserComment (piexif, UTF-16 BE), prompt and workflow in IFD0
    as SaveAnimatedWEBP puts them."""
    block = exif(utf16(mangle(IMAGE_SAVER_TEXT), "be"), {MODEL: "prompt:" + json.dumps(graph),
                                                         MAKE: "workflow:" + json.dumps({"nodes": []})}, mangle)
    return save(path, block, "JPEG")


# --- SwarmUI ---

SWARM = {"sui_image_params": {"prompt": "a cozy café, warm light ☕", "negativeprompt": "blurry, text",
                              "model": "OfficialStableDiffusion/sd_xl_base_1.0", "seed": 1187434210, "steps": 30,
                              "cfgscale": 6.5, "aspectratio": "1:1", "width": 1024, "height": 1024,
                              "sampler": "dpmpp_2m", "scheduler": "karras", "loras": ["detail_tweaker"],
                              "loraweights": ["0.5"], "swarm_version": "0.9.5.2", "date": "2025-01-12"},
         "sui_models": [{"name": "sd_xl_base_1.0.safetensors", "param": "model", "hash": "0x31e35c80fc"}]}


def swarm(path: Path, fmt: str, order: str = "le", prefix: bytes = b"UNICODE\0", mangle=_same) -> Path:
    text = mangle(json.dumps(SWARM, indent=2, ensure_ascii=False))
    comment = prefix + text.encode("utf-8") if prefix.startswith(b"ASCII") else utf16(text, order, prefix)
    return save(path, exif(comment), fmt)


# --- NovelAI in WebP ---

NOVELAI_SETTINGS = {"prompt": "1girl, cherry blossoms, {{smile}}", "steps": 28, "height": 832, "width": 512,
                    "scale": 5.0, "uncond_scale": 1.0, "cfg_rescale": 0.0, "seed": 3012345678, "n_samples": 1,
                    "noise_schedule": "karras", "sampler": "k_euler_ancestral", "legacy": False,
                    "uc": "lowres, bad anatomy, bad hands",
                    "v4_prompt": {"caption": {"base_caption": "1girl, cherry blossoms, {{smile}}",
                                              "char_captions": [{"char_caption": "girl, pink hair",
                                                                 "centers": [{"x": 0.5, "y": 0.5}]}]},
                                  "use_coords": False}}


def novelai_webp(path: Path, layout: str = "fields", mangle=_same) -> Path:
    """`fields`: UserComment = JSON of NovelAI's PNG fields; `settings`: UserComment = the Comment JSON itself,
    the prompt in ImageDescription and NovelAI in Software."""
    if layout == "fields":
        fields = {"Title": "NovelAI generated image", "Description": NOVELAI_SETTINGS["prompt"],
                  "Software": "NovelAI", "Source": "NovelAI Diffusion V4 4F49EC75", "Generation time": "6.2",
                  "Comment": json.dumps(NOVELAI_SETTINGS)}
        block = exif(utf16(mangle(json.dumps(fields)), "be"), {DESCRIPTION: NOVELAI_SETTINGS["prompt"]})
    else:
        block = exif(utf16(mangle(json.dumps(NOVELAI_SETTINGS)), "le"),
                     {DESCRIPTION: NOVELAI_SETTINGS["prompt"], SOFTWARE: "NovelAI"})
    return save(path, block, "WEBP", size=(64, 104))


# --- Civitai's generator ---

CIVITAI_TEXT = (
    "masterpiece, 1girl, cherry blossoms, night sky\nNegative prompt: lowres, worst quality\n"
    "Steps: 28, CFG scale: 5.5, Sampler: DPM++ 2M Karras, Seed: 2027225909, Size: 832x1216, Clip skip: 2, "
    "Created Date: 2024-11-02T10:11:12.1234567Z, Civitai resources: "
    '[{"type":"checkpoint","modelVersionId":1190596,"modelName":"WAI-illustrious-SDXL","modelVersionName":"v11.0"},'
    '{"type":"lora","weight":0.8,"modelVersionId":456789,"modelName":"Detailer, Illustrious [v1]",'
    '"modelVersionName":"v1.0"},'
    '{"type":"embed","weight":1,"modelVersionId":222,"modelName":"lazyneg","modelVersionName":"v1"}], '
    'Civitai metadata: {"remixOfId":12345,"aspectRatio":{"value":"2:3","width":832,"height":1216},'
    '"negativePrompt":"lowres, worst quality"}')


def civitai_jpeg(path: Path, mangle=_same) -> Path:
    return save(path, exif(utf16(mangle(CIVITAI_TEXT), "be")), "JPEG")


def civitai_png(path: Path, mangle=_same) -> Path:
    """Civitai's PNG export: the same text in the eXIf chunk's UserComment."""
    return png(path, {}, exif=exif(utf16(mangle(CIVITAI_TEXT), "be")))


# --- a Hugging Face Space (diffusers) ---

HF_SPACE = {"prompt": "an astronaut riding a horse, photo", "negative_prompt": "cartoon, lowres",
            "num_inference_steps": 25, "guidance_scale": 7.5, "seed": 1234, "width": 512, "height": 512,
            "model_id": "stable-diffusion-v1-5/stable-diffusion-v1-5", "scheduler": "DPMSolverMultistepScheduler",
            "use_karras_sigmas": True, "space_id": "someuser/sd15-demo"}


def hf_space_png(path: Path, mangle=_same) -> Path:
    return png(path, {"parameters": json.dumps(HF_SPACE)}, mangle)


# --- RuinedFooocus ---

RUINED = {"Prompt": "cinematic film still, a sunflower field, shallow depth of field",
          "Negative": "anime, cartoon, text", "steps": 30, "cfg": 8.5, "width": 1152, "height": 896,
          "seed": 3864674281, "sampler_name": "dpmpp_2m_sde_gpu", "scheduler": "karras",
          "base_model_name": "sd_xl_base_1.0_0.9vae.safetensors", "base_model_hash": "be9edd61",
          "loras": [["4852686128", "0.1 - sd_xl_offset_example-lora_1.0.safetensors"],
                    ["BFA3BB4FBE", "0.8 - styles\\helios-beasts.safetensors"]],
          "start_step": 0, "denoise": None, "clip_skip": 1, "software": "RuinedFooocus"}

RUINED_OLD = {"Prompt": "a dog", "Negative": "ugly", "steps": 24, "switch": 0.5, "cfg": 4.5, "width": 1024,
              "height": 1024, "seed": 7, "sampler_name": "dpmpp_2m", "scheduler": "simple",
              "base_model_name": "juggernautXL.safetensors", "refiner_model_name": "sd_xl_refiner_1.0.safetensors",
              "loras": "Loras:<add_detail.safetensors:0.5>,<None:1.0>", "start_step": 0, "denoise": 0.75,
              "software": "RuinedFooocus"}


def ruined_png(path: Path, data: dict = RUINED, mangle=_same) -> Path:
    return png(path, {"parameters": json.dumps(data)}, mangle, size=(72, 56))


# --- Stability Matrix ---

SM_TEXT = ("(cat:1.2), by artist, detailed, [shaded]\r\nNegative prompt: blurry, jpg artifacts\r\n"
           "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 124825529, Size: 640x896, "
           "Model hash: b899d188a1, Model: ExampleMix7, \r\n")
SM_JSON = {"PositivePrompt": "(cat:1.2), by artist, detailed, [shaded]", "NegativePrompt": "blurry, jpg artifacts",
           "Steps": 30, "Sampler": "DPM++ 2M Karras", "CfgScale": 7.0, "Seed": 124825529, "Height": 896, "Width": 640,
           "ModelHash": "b899d188a1ac7356bfb9399b2277d5b21712aa360f8f9514fba6fcce021baff7", "ModelName": "ExampleMix7",
           "FrameCount": 0, "MotionBucketId": 0, "VideoQuality": 0, "Lossless": False, "Fps": 0, "OutputFps": 0,
           "MinCfg": 0, "AugmentationLevel": 0, "VideoOutputMethod": None, "ModelVersionId": None,
           "ExtraNetworkModelVersionIds": None}
SM_PROJECT = {"Version": 2, "ProjectType": "TextToImage", "State": {"Prompt": {"PositivePrompt": "(cat:1.2)"}}}


def stability_matrix_png(path: Path, text: str | None = SM_TEXT, mangle=_same) -> Path:
    chunks = {"parameters": text} if text is not None else {}
    chunks.update({"parameters-json": json.dumps(SM_JSON), "smproj": json.dumps(SM_PROJECT, indent=2),
                   "prompt": json.dumps(COMFY_SAMPLER_CUSTOM)})
    return png(path, chunks, mangle, size=(64, 90))


def stability_matrix_webp(path: Path, mangle=_same) -> Path:
    block = exif(strings={DESCRIPTION: json.dumps(SM_JSON), SOFTWARE: json.dumps(SM_PROJECT)}, mangle=mangle)
    return save(path, block, "WEBP", size=(64, 90))
