"""Pictures carrying each tool's metadata the way that tool writes it, for the reader tests.

The texts follow the formats' public descriptions (formats.md §8) and real pictures' metadata published with the
sd-parsers test suite (the A1111 infotext of `automatic1111_cropped.png`, InvokeAI's `sd-metadata` 2.3.0 and
`invokeai_metadata` examples, ComfyUI's img2img example graph with its old `sample_dpmpp_2m` sampler name);
the rest (NovelAI, Fooocus, SwarmUI, Draw Things, Civitai) from the keys their readers in sd-parsers and
sd-prompt-reader expect.
"""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

A1111_REAL = ("photo of a duck\nNegative prompt: monochrome\n"
              "Steps: 15, Sampler: UniPC, CFG scale: 5, Seed: 235284042, Size: 512x400, "
              "Model hash: c0d1994c73, Model: realistic_realisticVisionV20_v20")

# A1111 1.10-style infotexts, as its writer forms them (quoted values, hires keys, hashes, extension keys)
A1111_TEXTS = [
    A1111_REAL,
    "masterpiece, best quality, 1girl, <lora:nai_style:0.8>, (smile:1.2)\nNegative prompt: lowres, bad anatomy\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3804923541, Size: 512x768, "
    "Model hash: 89d59c3dde, Model: nai-animefull-final-pruned, VAE hash: f921fb3f29, VAE: animevae.pt, "
    "Denoising strength: 0.55, Clip skip: 2, ENSD: 31337, Hires upscale: 2, Hires steps: 14, "
    'Hires upscaler: Latent (nearest-exact), Lora hashes: "nai_style: 0123456789ab", TI hashes: "EasyNegative: c74b4e810b03", '
    "Version: v1.10.1",
    'a "quoted" prompt, with: colons\nsecond line\nNegative prompt: neg one\nneg two\n'
    "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 6.5, Seed: 1, Size: 768x512, "
    "Model hash: 0123456789, Model: easyfluff_v11.2, CFG Rescale phi: 0.7, "
    'ControlNet 0: "Module: none, Model: control_v1p_sd15_qrcode_monster [a6e58995], Weight: 1.35, '
    'Resize Mode: Crop and Resize, Processor Res: 512, Threshold A: 0.5, Threshold B: 0.5, Guidance Start: 0, '
    'Guidance End: 1, Pixel Perfect: False, Control Mode: Balanced", Version: f2.0.1v1.10.1-previous-313-g8a042934',
    "cat\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: 6ce0161689, "
    'Model: v1-5-pruned-emaonly, Hashes: {"vae": "c6a580b13a", "model": "6ce0161689", "lora:x": "1,2"}, '
    "Version: v1.5.1",
    "prompt with tags, <lyco:hll4-sd15:0.6:1.0>\nSteps: 30, Sampler: DDIM, Schedule type: Uniform, CFG scale: 9, "
    "Seed: 7, Size: 512x512, Model hash: 5f0e2ba8b0, Model: based66_v3, Variation seed: 12, "
    "Variation seed strength: 0.3, Seed resize from: 768x768, Clip skip: 2, RNG: CPU, NGMS: 0.5, Eta: 0.3, "
    'Hires prompt: "a, b", Version: v1.9.4',
]

NOVELAI_COMMENT = {"prompt": "masterpiece, 1girl, {smile}", "steps": 28, "height": 768, "width": 512, "scale": 11,
                   "uncond_scale": 1.0, "cfg_rescale": 0, "seed": 2837451207, "n_samples": 1, "strength": 0.7,
                   "noise": 0.2, "noise_schedule": "native", "sampler": "k_euler_ancestral",
                   "uc": "lowres, bad anatomy, bad hands"}

COMFY_GRAPH = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 280823642470253, "steps": 20, "cfg": 8.0, "sampler_name": "sample_dpmpp_2m", "scheduler": "normal",
        "denoise": 0.87, "model": ["11", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["12", 0]}},
    "4": {"class_type": "CheckpointLoader", "inputs": {"config_name": "v1-inference.yaml",
                                                       "ckpt_name": "v1-5-pruned-emaonly.ckpt"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {
        "text": "photograph of victorian woman with wings, sky clouds, meadow grass", "clip": ["13", 0]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "watermark, text", "clip": ["13", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    "10": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
    "11": {"class_type": "LoraLoader", "inputs": {"lora_name": "styles\\nai_style.safetensors", "strength_model": 0.8,
                                                  "strength_clip": 0.6, "model": ["4", 0], "clip": ["4", 1]}},
    "12": {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}},
    "13": {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -2, "clip": ["11", 1]}},
}

COMFY_TXT2IMG_V = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "EasyFluffV11.2.safetensors"}},
    "2": {"class_type": "ModelSamplingDiscrete", "inputs": {"sampling": "v_prediction", "zsnr": True,
                                                            "model": ["1", 0]}},
    "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 1}},
    "4": {"class_type": "PrimitiveString", "inputs": {"value": "anthro fox, forest, detailed fur"}},
    "5": {"class_type": "CLIPTextEncode", "inputs": {"text": ["4", 0], "clip": ["1", 1]}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
    "7": {"class_type": "KSamplerAdvanced", "inputs": {
        "add_noise": "enable", "noise_seed": 99, "steps": 30, "cfg": 6.0, "sampler_name": "euler_ancestral",
        "scheduler": "karras", "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable",
        "model": ["2", 0], "positive": ["5", 0], "negative": ["6", 0], "latent_image": ["3", 0]}},
}

INVOKE_V3 = {"generation_mode": "txt2img", "positive_prompt": "digital artwork, oil painting, holidays",
             "negative_prompt": "grainy, photo, blurry", "width": 512, "height": 512, "seed": 3293022630,
             "rand_device": "cpu", "cfg_scale": 8.0, "cfg_rescale_multiplier": 0.0, "steps": 35,
             "scheduler": "dpmpp_2m_k", "clip_skip": 2,
             "model": {"model_name": "anything-v3", "base_model": "sd-1", "model_type": "main"},
             "loras": [{"lora": {"model_name": "nai_style", "base_model": "sd-1"}, "weight": 0.75}],
             "vae": {"model_name": "animevae", "base_model": "sd-1"}, "app_version": "3.4.0"}

INVOKE_V2 = {"model": "stable diffusion", "model_weights": "deliberateForInvoke_v08",
             "model_hash": "56d1442a0feefd64836a19ac8e3527ec71c884fc962e246ddf67b03e42921272",
             "app_id": "invoke-ai/InvokeAI", "app_version": "2.3.0",
             "image": {"prompt": [{"prompt": "professional full body photo of young woman, city background "
                                             "[rendering, glowing eyes, skinny]", "weight": 1.0}],
                       "steps": 50, "cfg_scale": 5, "threshold": 0, "perlin": 0, "height": 768, "width": 512,
                       "seed": 2980747362, "seamless": False, "hires_fix": False, "type": "txt2img",
                       "sampler": "k_lms", "variations": []}}

INVOKE_DREAM = ('"professional full body photo of young woman, city background [rendering, glowing eyes, skinny]" '
                "-s 50 -S 2980747362 -W 512 -H 768 -C 5.0 -A k_lms")

FOOOCUS = {"prompt": "a cat in a hat", "negative_prompt": "ugly", "full_prompt": ["a cat in a hat, cinematic"],
           "full_negative_prompt": ["ugly"], "styles": "['Fooocus V2']", "performance": "Speed",
           "resolution": "(1024, 1024)", "guidance_scale": 4, "sharpness": 2, "adm_guidance": "(1.5, 0.8, 0.3)",
           "base_model": "juggernautXL_v8Rundiffusion", "base_model_hash": "aeb7e9e689", "refiner_model": "None",
           "refiner_switch": 0.5, "sampler": "dpmpp_2m_sde_gpu", "scheduler": "karras", "seed": "12345",
           "loras": [["sd_xl_offset_example-lora_1.0.safetensors", 0.1, "4852686128"]], "steps": 30,
           "metadata_scheme": "fooocus", "version": "Fooocus v2.3.1"}

SWARM = {"sui_image_params": {"prompt": "a red fox", "negativeprompt": "blurry", "model": "EasyFluffV11.2",
                              "seed": 1187434210, "steps": 25, "cfgscale": 7, "aspectratio": "1:1", "width": 512,
                              "height": 512, "sampler": "dpmpp_2m", "scheduler": "karras", "clipstopatlayer": -2,
                              "loras": ["hll4"], "loraweights": ["0.6"], "swarm_version": "0.9.2.1"},
         "sui_extra_data": {"date": "2024-08-01"}}

DRAWTHINGS = {"c": "a lighthouse at dusk", "uc": "text, watermark", "seed": 1234, "steps": 20, "scale": 7,
              "sampler": "DPM++ 2M Karras", "size": "512x512", "model": "sd_v1.5_f16.ckpt", "strength": 1,
              "lora": [{"file": "nai_style_lora_f16.ckpt", "weight": 0.7}]}


def picture(mode: str = "RGB", size=(64, 48), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = len(mode)
    return Image.fromarray((rng.random((size[1], size[0], channels)) * 255).astype(np.uint8), mode)


def png(path: Path, texts: dict[str, str], kinds: dict[str, str] | None = None, image=None) -> Path:
    """A PNG with `texts` as tEXt (default), iTXt or zTXt chunks (`kinds`)."""
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        kind = (kinds or {}).get(key, "tEXt")
        if kind == "iTXt":
            info.add_itxt(key, value)
        elif kind == "iTXt-z":
            info.add_itxt(key, value, zip=True)
        elif kind == "zTXt":
            info.add_text(key, value, zip=True)
        else:
            info.add_text(key, value)
    (image or picture()).save(path, pnginfo=info)
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_text_after_idat(path: Path, key: str, text: str) -> Path:
    """A PNG whose text chunk stands after the image data (before IEND), as some tools append it."""
    picture().save(path)
    data = path.read_bytes()
    iend = data.rindex(b"IEND") - 4
    path.write_bytes(data[:iend] + _chunk(b"tEXt", key.encode() + b"\0" + text.encode("latin-1")) + data[iend:])
    return path


def exif_picture(path: Path, comment: bytes, fmt: str) -> Path:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = comment
    picture().save(path, format=fmt, exif=exif.tobytes(), quality=95)
    return path


def stealth(path: Path, text: str, signature: str = "stealth_pngcomp", mode: str = "RGBA", size=(64, 64)) -> Path:
    """The stealth-pnginfo layout: signature, 32-bit bit count, data, in the LSBs column by column."""
    payload = text.encode("utf-8")
    if signature.endswith("comp"):
        payload = gzip.compress(payload)
    bits = np.unpackbits(np.frombuffer(signature.encode() + struct.pack(">I", len(payload) * 8) + payload, np.uint8))
    image = np.asarray(picture(mode, size)).copy()
    columns = image.transpose(1, 0, 2)
    target = columns[..., 3].reshape(-1) if mode == "RGBA" else columns[..., :3].reshape(-1)
    assert len(bits) <= len(target), "picture too small for the payload"
    target[: len(bits)] = (target[: len(bits)] & 0xFE) | bits
    if mode == "RGBA":
        columns[..., 3] = target.reshape(columns.shape[:2])
    else:
        columns[..., :3] = target.reshape(*columns.shape[:2], 3)
    Image.fromarray(columns.transpose(1, 0, 2).copy(), mode).save(path)
    return path


def novelai_png(path: Path) -> Path:
    return png(path, {"Title": "AI generated image", "Description": NOVELAI_COMMENT["prompt"], "Software": "NovelAI",
                      "Source": "Stable Diffusion 1D44365E", "Generation time": "4.5",
                      "Comment": json.dumps(NOVELAI_COMMENT)}, image=picture(size=(512, 768)))


def drawthings_xmp() -> str:
    body = json.dumps(DRAWTHINGS).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/"><exif:UserComment><rdf:Alt>'
            f'<rdf:li xml:lang="x-default">{body}</rdf:li></rdf:Alt></exif:UserComment></rdf:Description>'
            "</rdf:RDF></x:xmpmeta>")
