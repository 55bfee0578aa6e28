"""A1111's Extras upscale (`/sdapi/v1/extra-single-image`, `/sdapi/v1/extra-batch-images`) and the ControlNet
extension's `/controlnet/detect`: work on given pictures, run on the job queue like generation (one at a time,
bounded before it starts). Answered in A1111's shapes: `{"html_info", "image"}` / `{"html_info", "images"}` (the
PNGs keep their text chunks, the upscale named in a "postprocessing" one, as A1111 keeps them), and the
extension's `{"images", "info"}`."""

from __future__ import annotations

import asyncio
import html

import numpy as np
from fastapi import APIRouter
from PIL import Image

from sd1kit.errors import Sd1kitError
from sd1kit.server.a1111 import decode_image, encode_png
from sd1kit.server.payloads import DetectRequest, ExtrasBatchImagesRequest, ExtrasSingleImageRequest
from sd1kit.server.routes_generate import released
from sd1kit.server.state import State

router = APIRouter()


def html_info(text: str) -> str:
    """A1111's `plaintext_to_html`."""
    return "<p>" + "<br>\n".join(html.escape(line) for line in text.split("\n")) + "</p>"


def _upscaled(image: Image.Image, spec) -> tuple[str, str]:
    from sd1kit.pipeline.upscale import kept_texts, run_upscale

    out = run_upscale(image, spec)
    texts = kept_texts(image, spec)
    return encode_png(out, texts=texts), texts.get("postprocessing", "")


@router.post("/sdapi/v1/extra-single-image")
async def extra_single_image(body: ExtrasSingleImageRequest, state: State):
    spec = body.upscale(state.config.models_dir, state.options)
    spec.check()
    state.jobs.check_room()
    image = await asyncio.to_thread(decode_image, body.image, "image")
    spec.check(image)

    def work(job):
        encoded, info = _upscaled(image, spec)
        return {"html_info": html_info(info), "image": encoded}
    return await state.run("extras", released(work))


@router.post("/sdapi/v1/extra-batch-images")
async def extra_batch_images(body: ExtrasBatchImagesRequest, state: State):
    spec = body.upscale(state.config.models_dir, state.options)
    spec.check()
    state.jobs.check_room()

    def decoded():
        images = [decode_image(item.data, f"imageList[{i}]") for i, item in enumerate(body.imageList)]
        for image in images:
            spec.check(image)
        return images
    images = await asyncio.to_thread(decoded)

    def work(job):
        encoded, info = [], ""
        for image in images:
            picture, info = _upscaled(image, spec)
            encoded.append(picture)
        return {"html_info": html_info(info), "images": encoded}
    return await state.run("extras", released(work))


@router.post("/controlnet/detect")
async def controlnet_detect(body: DetectRequest, state: State):
    from sd1kit.pipeline.controlnet import MODULES, detect_map, detect_size
    from sd1kit.server.a1111 import MODULE_ALIASES

    module = MODULE_ALIASES.get(body.controlnet_module, body.controlnet_module)
    if module not in MODULES:
        raise Sd1kitError("controlnet_module", f"{body.controlnet_module!r} is not one of {', '.join(MODULES)} "
                                               "(detectors that need downloaded weights are not included)")
    state.jobs.check_room()

    def decoded():
        out = [decode_image(data, f"controlnet_input_images[{i}]").convert("RGB")
               for i, data in enumerate(body.controlnet_input_images)]
        for picture in out:
            detect_size(picture.width, picture.height, body.controlnet_processor_res)
        return out
    images = await asyncio.to_thread(decoded)
    a, b = body.controlnet_threshold_a, body.controlnet_threshold_b

    def work(job):
        maps = [detect_map(np.asarray(image), module, body.controlnet_processor_res, a if a >= 0 else None,
                           b if b >= 0 else None) for image in images]
        return {"images": [encode_png(Image.fromarray(m)) for m in maps], "info": "Success"}
    return await state.run("detect", released(work))
