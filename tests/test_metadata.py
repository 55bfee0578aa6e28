"""Generation metadata: where it is stored, every tool's reader, A1111's parser and writer (byte-identical round
trips), fuzzing, interoperability with sd-parsers and sd-prompt-reader, and `sd1kit info`."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import metadata_samples as S
from sd1kit.metadata.infotext import PARAM, create_infotext, param_pairs, split_infotext
from sd1kit.metadata.readers import read_picture, read_text
from sd1kit.pipeline.from_picture import request_from_infotext
from sd1kit.pipeline.options import WriteContext, infotext_params
from sd1kit.sampling.registry import resolve_sampler
from sd1kit.pipeline.request import GenerationRequest
from sd1kit.sampling.registry import SAMPLERS, SCHEDULES


# --- A1111's parser and writer ---

@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet='ab :,"\\-/\t1K', max_size=40))
def test_linear_param_scan_equals_a1111s_regex(line):
    assert param_pairs(line) == PARAM.findall(line)


@pytest.mark.parametrize("text", S.A1111_TEXTS)
def test_a1111_written_infotext_is_written_back_byte_identical(text):
    prompt, negative, params = split_infotext(text)
    assert create_infotext(prompt, negative, params) == text


def test_a1111_parser_rules():
    prompt, negative, params = split_infotext(S.A1111_TEXTS[2])
    assert prompt == 'a "quoted" prompt, with: colons\nsecond line' and negative == "neg one\nneg two"
    assert params["ControlNet 0"].startswith("Module: none, Model: control_v1p_sd15_qrcode_monster [a6e58995]")
    assert list(params)[-1] == "Version"
    _, _, params = split_infotext(S.A1111_TEXTS[3])
    assert json.loads(params["Hashes"]) == {"vae": "c6a580b13a", "model": "6ce0161689", "lora:x": "1,2"}
    assert list(params) == ["Steps", "Sampler", "CFG scale", "Seed", "Size", "Model hash", "Model", "Hashes", "Version"]
    # a last line with fewer than 3 pairs is prompt, as in A1111
    assert split_infotext("just a prompt: with a colon") == ("just a prompt: with a colon", "", {})


def test_a1111_defaults_for_missing_keys():
    info = read_text(S.A1111_REAL)
    j = info.as_json()
    assert (j["clip_skip"], j["schedule_type"]) == (1, "Automatic")
    legacy = read_text(S.A1111_TEXTS[3]).as_json()  # "DPM++ 2M Karras" from before 1.9
    assert (legacy["sampler"], legacy["schedule_type"]) == ("DPM++ 2M", "Karras")
    request, _ = request_from_infotext(S.A1111_REAL)
    assert (request.clip_skip, request.rng, request.schedule) == (1, "GPU", "Automatic")


_words = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
                                        exclude_categories=("Cs", "Cc")), max_size=30)
_prompt = st.lists(_words.map(str.strip).filter(lambda s: not s.startswith("Negative prompt:")), min_size=1,
                   max_size=3).map("\n".join).filter(lambda s: s.strip() == s)


@st.composite
def _requests(draw):
    hires = draw(st.booleans())
    return GenerationRequest(
        prompt=draw(_prompt), negative_prompt=draw(_prompt), sampler=draw(st.sampled_from([s.name for s in SAMPLERS])),
        schedule=draw(st.sampled_from([s.name for s in SCHEDULES])), steps=draw(st.integers(1, 150)),
        cfg_scale=draw(st.sampled_from([1.0, 4.5, 7.0, 11.0, 30.0])), cfg_rescale=draw(st.sampled_from([0.0, 0.7])),
        width=draw(st.integers(8, 256)) * 8, height=draw(st.integers(8, 256)) * 8, clip_skip=draw(st.integers(1, 4)),
        ensd=draw(st.sampled_from([0, 31337])), rng=draw(st.sampled_from(["GPU", "CPU", "NV"])),
        subseed_strength=draw(st.sampled_from([0.0, 0.25])), s_min_uncond=draw(st.sampled_from([0.0, 0.5])),
        enable_hr=hires, hr_scale=draw(st.sampled_from([1.5, 2.0])), hr_steps=draw(st.integers(0, 30)),
        hr_upscaler=draw(st.sampled_from(["Latent", "Latent (bicubic antialiased)", "Lanczos"])),
        hr_denoising_strength=draw(st.sampled_from([0.3, 0.7])),
        hr_prompt=draw(st.one_of(st.none(), _prompt)) if hires else None,
    )


RECORDED = ("prompt", "negative_prompt", "steps", "cfg_scale", "cfg_rescale", "width", "height", "clip_skip", "rng",
            "subseed_strength", "s_min_uncond", "enable_hr")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests(), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_parse_of_written_request_is_the_request(request, seed, subseed):
    from sd1kit.metadata.infotext import a1111_order
    from sd1kit.sampling.registry import a1111_names

    spec, _ = resolve_sampler(request.sampler, request.schedule)
    ctx = WriteContext(seed, subseed, (request.width, request.height), spec, a1111_names(request.sampler,
                                                                                       request.schedule)[1])
    params = a1111_order({**infotext_params(request, ctx), "Model hash": "0123456789", "Model": "model_v1"})
    text = create_infotext(request.prompt, request.negative_prompt, params)
    back, _ = request_from_infotext(text)
    for attr in RECORDED:
        assert getattr(back, attr) == getattr(request, attr), attr
    assert back.seed == seed and (back.subseed == subseed or not request.subseed_strength)
    assert resolve_sampler(back.sampler, back.schedule) == resolve_sampler(request.sampler, request.schedule)
    if request.enable_hr:
        assert (back.hr_scale, back.hr_upscaler, back.hr_denoising_strength) == \
            (request.hr_scale, request.hr_upscaler, request.hr_denoising_strength)
        assert back.hr_steps == request.hr_steps and (back.hr_prompt or None) == (request.hr_prompt or None)
    assert back.ensd == (request.ensd if resolve_sampler(request.sampler)[0].noise == "rng" else 0)
    assert create_infotext(*split_infotext(text)) == text  # and written back byte-identical


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_infotext_reader_never_raises(text):
    info = read_text(text)
    assert info.tool in ("a1111", "civitai", "fooocus", "comfyui", "swarmui", "invokeai", "unknown", None)
    info.as_json(), info.to_infotext()


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                     max_leaves=12)
_node = st.fixed_dictionaries({"class_type": st.sampled_from(["KSampler", "CLIPTextEncode", "LoraLoader",
                                                              "CheckpointLoaderSimple", "EmptyLatentImage", "X"]),
                               "inputs": st.dictionaries(
                                   st.sampled_from(["seed", "steps", "cfg", "text", "model", "positive", "negative",
                                                    "latent_image", "lora_name", "ckpt_name", "width", "clip"]),
                                   _json | st.tuples(st.sampled_from(["1", "2", "3", 1]), st.integers(0, 2)).map(list),
                                   max_size=6)})


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["1", "2", "3", "4"]), _node | _json, max_size=4))
def test_comfyui_reader_never_raises(graph):
    info = read_text(json.dumps(graph))
    info.as_json(), info.to_infotext()


# --- storage ---

def test_png_text_chunks_of_every_kind_and_place(tmp_path):
    for kind in ("tEXt", "iTXt", "iTXt-z", "zTXt"):
        path = S.png(tmp_path / f"{kind}.png", {"parameters": S.A1111_REAL}, {"parameters": kind})
        assert read_picture(path).prompt == "photo of a duck", kind
    after = S.png_text_after_idat(tmp_path / "after.png", "parameters", S.A1111_REAL)
    assert read_picture(after).as_json()["seed"] == 235284042
    unicode = S.png(tmp_path / "u.png", {"parameters": "少女, 笑顔\nSteps: 20, Sampler: Euler a, Seed: 1, Size: 8x8"})
    assert read_picture(unicode).prompt == "少女, 笑顔"  # Pillow writes iTXt for non-Latin-1 text


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_exif_user_comment_unicode_and_ascii(tmp_path, fmt):
    utf16 = S.exif_picture(tmp_path / f"u.{fmt}", b"UNICODE\0" + S.A1111_REAL.encode("utf-16-be"), fmt)
    ascii_ = S.exif_picture(tmp_path / f"a.{fmt}", b"ASCII\0\0\0" + S.A1111_REAL.encode("ascii"), fmt)
    for path in (utf16, ascii_):
        j = read_picture(path).as_json()
        assert (j["tool"], j["prompt"], j["steps"], j["model_hash"]) == ("a1111", "photo of a duck", 15, "c0d1994c73")


@pytest.mark.parametrize("signature, mode", [("stealth_pnginfo", "RGBA"), ("stealth_pngcomp", "RGBA"),
                                             ("stealth_rgbinfo", "RGB"), ("stealth_rgbcomp", "RGB")])
def test_stealth_metadata_in_the_pixels(tmp_path, signature, mode):
    path = S.stealth(tmp_path / "s.png", S.A1111_REAL, signature, mode)
    info = read_picture(path)
    assert (info.tool, info.prompt, info.parameters["Seed"]) == ("a1111", "photo of a duck", "235284042")
    assert "stealth" in info.raw


def test_novelai_stealth_json_in_alpha(tmp_path):
    data = {"Description": "1girl, smile", "Software": "NovelAI", "Source": "Stable Diffusion XL C1E1DE52",
            "Comment": json.dumps(S.NOVELAI_COMMENT)}
    info = read_picture(S.stealth(tmp_path / "nai.png", json.dumps(data), size=(128, 128)))
    assert (info.tool, info.prompt, info.parameters["Seed"]) == ("novelai", "1girl, smile", "2837451207")


def test_sidecar_txt(tmp_path):
    pic = tmp_path / "x.png"
    S.picture().save(pic)
    (tmp_path / "x.txt").write_text(S.A1111_REAL, encoding="utf-8")
    assert read_picture(pic).as_json()["cfg_scale"] == 5.0


# --- readers ---

def test_novelai_as_a1111_converts_it(tmp_path):
    info = read_picture(S.novelai_png(tmp_path / "nai.png"))
    assert info.tool == "novelai" and info.app == "Stable Diffusion 1D44365E"
    assert (info.prompt, info.negative_prompt) == ("masterpiece, 1girl, {smile}", "lowres, bad anatomy, bad hands")
    assert info.to_infotext().endswith("Steps: 28, Sampler: Euler a, CFG scale: 11, Seed: 2837451207, Size: 512x768, "
                                       "Clip skip: 2, ENSD: 31337")


def test_comfyui_graph_is_walked(tmp_path):
    path = S.png(tmp_path / "c.png", {"prompt": json.dumps(S.COMFY_GRAPH), "workflow": "{}"})
    info = read_picture(path)
    j = info.as_json()
    assert (j["tool"], j["prompt"], j["negative_prompt"]) == \
        ("comfyui", "photograph of victorian woman with wings, sky clouds, meadow grass", "watermark, text")
    assert (j["seed"], j["steps"], j["cfg_scale"], j["sampler"], j["schedule_type"]) == \
        (280823642470253, 20, 8.0, "DPM++ 2M", "Normal")
    assert (j["model"], j["clip_skip"], info.parameters["Denoising strength"]) == ("v1-5-pruned-emaonly", 2, "0.87")
    assert j["loras"] == [{"name": "nai_style", "weight": 0.8, "hash": None}] and info.graph == S.COMFY_GRAPH
    assert "<lora:nai_style:0.6:0.8>" in info.to_infotext() and "workflow" in j["raw"]


def test_comfyui_v_prediction_and_primitive_text(tmp_path):
    info = read_picture(S.png(tmp_path / "c.png", {"prompt": json.dumps(S.COMFY_TXT2IMG_V)}))
    assert info.prompt == "anthro fox, forest, detailed fur" and info.parameters["Prediction"] == "v"
    assert (info.parameters["Seed"], info.parameters["Size"], info.parameters["Sampler"]) == ("99", "512x768", "Euler a")
    request, _ = request_from_infotext(info.to_infotext())
    assert (request.prediction, request.schedule, request.width, request.height) == ("v", "Karras", 512, 768)


@pytest.mark.parametrize("key, data, expected", [
    ("invokeai_metadata", S.INVOKE_V3, ("digital artwork, oil painting, holidays", "grainy, photo, blurry", 35,
                                        "DPM++ 2M", "Karras", "anything-v3", 2)),
    ("sd-metadata", S.INVOKE_V2, ("professional full body photo of young woman, city background",
                                  "rendering, glowing eyes, skinny", 50, "LMS", None, "deliberateForInvoke_v08", None)),
    ("Dream", S.INVOKE_DREAM, ("professional full body photo of young woman, city background",
                               "rendering, glowing eyes, skinny", 50, "LMS", None, None, None)),
])
def test_invokeai_formats(tmp_path, key, data, expected):
    text = data if isinstance(data, str) else json.dumps(data)
    j = read_picture(S.png(tmp_path / "i.png", {key: text})).as_json()
    assert j["tool"] == "invokeai"
    assert (j["prompt"], j["negative_prompt"], j["steps"], j["sampler"], j["schedule_type"], j["model"],
            j["clip_skip"]) == expected
    assert j["seed"] in (3293022630, 2980747362)


def test_invokeai_v3_loras():
    assert read_text(json.dumps(S.INVOKE_V3)).as_json()["loras"] == [{"name": "nai_style", "weight": 0.75,
                                                                      "hash": None}]


def test_fooocus_swarmui_drawthings_civitai(tmp_path):
    fooocus = read_picture(S.png(tmp_path / "f.png", {"parameters": json.dumps(S.FOOOCUS),
                                                      "fooocus_scheme": "fooocus"})).as_json()
    assert (fooocus["tool"], fooocus["prompt"], fooocus["seed"], fooocus["width"], fooocus["sampler"],
            fooocus["model_hash"]) == ("fooocus", "a cat in a hat", 12345, 1024, "DPM++ 2M SDE", "aeb7e9e689")
    assert fooocus["loras"][0]["name"] == "sd_xl_offset_example-lora_1.0"
    swarm = read_picture(S.png(tmp_path / "s.png", {"parameters": json.dumps(S.SWARM)})).as_json()
    assert (swarm["tool"], swarm["negative_prompt"], swarm["clip_skip"], swarm["loras"]) == \
        ("swarmui", "blurry", 2, [{"name": "hll4", "weight": 0.6, "hash": None}])
    swarm_jpeg = S.exif_picture(tmp_path / "s.jpg", b"UNICODE\0" + json.dumps(S.SWARM).encode("utf-16-be"), "JPEG")
    assert read_picture(swarm_jpeg).tool == "swarmui"
    draw = read_picture(S.png(tmp_path / "d.png", {"XML:com.adobe.xmp": S.drawthings_xmp()}, {"XML:com.adobe.xmp":
                                                                                             "iTXt"})).as_json()
    assert (draw["tool"], draw["prompt"], draw["sampler"], draw["schedule_type"], draw["loras"][0]["name"]) == \
        ("drawthings", "a lighthouse at dusk", "DPM++ 2M", "Karras", "nai_style_lora_f16")
    civitai = S.A1111_REAL + ', Civitai resources: [{"type":"checkpoint","modelVersionId":29460}]'
    assert read_text(civitai).tool == "civitai"


def test_a1111_family_apps():
    assert read_text(S.A1111_TEXTS[2]).app.startswith("f2.0.1")  # Forge
    lora = read_text(S.A1111_TEXTS[1]).as_json()["loras"]
    assert lora == [{"name": "nai_style", "weight": 0.8, "hash": "0123456789ab"}]
    lyco = read_text(S.A1111_TEXTS[4]).loras[0]
    assert (lyco.name, lyco.te_weight, lyco.weight) == ("hll4-sd15", 0.6, 1.0)
    assert read_text(S.A1111_TEXTS[3]).loras == []


# --- bad input ---

def test_bad_pictures_give_warnings_not_exceptions(tmp_path):
    plain = tmp_path / "plain.png"
    S.picture().save(plain)
    assert read_picture(plain).tool is None and read_picture(plain).as_json()["prompt"] is None
    full = S.png(tmp_path / "full.png", {"parameters": S.A1111_REAL})
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    info = read_picture(truncated)
    assert info.tool == "a1111" and any("truncated" in w for w in info.warnings)
    broken = tmp_path / "broken.jpg"
    data = S.exif_picture(tmp_path / "ok.jpg", b"UNICODE\0" + "x".encode("utf-16-be"), "JPEG").read_bytes()
    at = data.index(b"Exif")
    broken.write_bytes(data[:at + 10] + b"\xff" * 40 + data[at + 50:])
    assert read_picture(broken).tool in (None, "a1111", "unknown")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 7)
    assert read_picture(garbage).tool is None and read_picture(garbage).warnings
    not_picture = tmp_path / "x.png"
    not_picture.write_text("hello")
    assert read_picture(not_picture).warnings


def test_huge_text_chunk_is_read_without_hanging(tmp_path):
    huge = "word another thing " * 550_000  # ~10 MB, one line: no parameters
    info = read_picture(S.png(tmp_path / "huge.png", {"parameters": huge}, {"parameters": "zTXt"}))
    assert info.tool == "a1111" and info.parameters == {} and info.warnings


def test_reading_never_changes_the_file(tmp_path):
    paths = [S.novelai_png(tmp_path / "n.png"), S.stealth(tmp_path / "s.png", S.A1111_REAL),
             S.exif_picture(tmp_path / "e.jpg", b"UNICODE\0" + S.A1111_REAL.encode("utf-16-be"), "JPEG")]
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    for p in paths:
        read_picture(p)
    assert before == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


# --- interoperability and CLI ---

@pytest.fixture(scope="module")
def sd1kit_pictures(tiny_models, tmp_path_factory):
    from sd1kit.pipeline.generate import generate
    from sd1kit.pipeline.model import load_model
    from sd1kit.pipeline.save import save_image

    folder = tmp_path_factory.mktemp("pictures")
    request = GenerationRequest(prompt="masterpiece, 1girl, red: eyes", negative_prompt="lowres, bad anatomy",
                                sampler="DPM++ 2M", schedule="Karras", steps=3, cfg_scale=6.5, seed=424242,
                                width=64, height=72, clip_skip=2)
    item = generate(request, load_model(tiny_models["sd15"])).images[0]
    return {fmt: save_image(item.image, item.infotext, folder, item.seed, request.prompt, fmt)
            for fmt in ("png", "jpg", "webp")}, item.infotext


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_sd_parsers_reads_our_pictures(sd1kit_pictures, fmt):
    from sd_parsers import ParserManager

    pictures, infotext = sd1kit_pictures
    model_hash = split_infotext(infotext)[2]["Model hash"]
    info = ParserManager().parse(pictures[fmt])
    sampler = info.samplers[0]
    assert str(info.generator).endswith("AUTOMATIC1111")
    assert sampler.prompts[0].value == "masterpiece, 1girl, red: eyes"
    assert sampler.negative_prompts[0].value == "lowres, bad anatomy"
    assert (sampler.name, sampler.parameters["scheduler"]) == ("DPM++ 2M", "Karras")
    assert (sampler.parameters["seed"], sampler.parameters["steps"], sampler.parameters["cfg_scale"]) == \
        ("424242", "3", "6.5")
    assert sampler.model.hash == model_hash and info.metadata["Size"] == "64x72"


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_sd_prompt_reader_reads_our_pictures(sd1kit_pictures, fmt):
    from sd_prompt_reader.image_data_reader import ImageDataReader

    pictures, infotext = sd1kit_pictures
    reader = ImageDataReader(str(pictures[fmt]))
    assert reader.status.name == "READ_SUCCESS" and reader.tool.startswith("A1111")
    assert (reader.positive, reader.negative) == ("masterpiece, 1girl, red: eyes", "lowres, bad anatomy")
    p = reader.parameter
    assert (p["seed"], p["steps"], p["sampler"], p["cfg"], p["size"]) == ("424242", "3", "DPM++ 2M", "6.5", "64x72")
    assert f"Model hash: {split_infotext(infotext)[2]['Model hash']}" in reader.setting


def test_cli_info_json_fields(cli, tmp_path):
    nai = S.novelai_png(tmp_path / "nai.png")
    comfy = S.png(tmp_path / "c.png", {"prompt": json.dumps(S.COMFY_GRAPH)})
    plain = tmp_path / "plain.png"
    S.picture().save(plain)
    r = cli("info", nai, comfy, plain, "--json")
    assert r.code == 0, r.err
    rows = json.loads(r.out)
    required = {"path", "tool", "prompt", "negative_prompt", "steps", "sampler", "schedule_type", "cfg_scale", "seed",
                "width", "height", "model", "model_hash", "clip_skip", "loras", "parameters", "raw"}
    assert all(required <= row.keys() for row in rows)
    assert [row["tool"] for row in rows] == ["novelai", "comfyui", None]
    assert rows[0]["clip_skip"] == 2 and rows[0]["seed"] == 2837451207 and rows[2]["prompt"] is None
    human = cli("info", comfy)
    assert human.code == 0 and "comfyui" in human.out and "photograph of victorian woman" in human.out
    missing = cli("info", tmp_path / "nope.png")
    assert missing.code == 2 and "no such file" in missing.err


@pytest.mark.parametrize("make", [
    lambda d: S.png(d / "a.png", {"parameters": S.A1111_REAL, "prompt": "{}"}),
    lambda d: S.png_text_after_idat(d / "b.png", "parameters", S.A1111_REAL),
    lambda d: S.exif_picture(d / "c.jpg", b"UNICODE\0" + S.A1111_REAL.encode("utf-16-be"), "JPEG"),
    lambda d: S.exif_picture(d / "d.webp", b"UNICODE\0" + S.A1111_REAL.encode("utf-16-be"), "WEBP"),
])
def test_cli_strip_keeps_pixels_and_drops_metadata(cli, tmp_path, make):
    src = make(tmp_path)
    before = src.read_bytes()
    out = tmp_path / ("clean" + src.suffix)
    r = cli("info", "--strip", src, "--out", out)
    assert r.code == 0, r.err
    assert src.read_bytes() == before
    assert read_picture(out).tool is None
    with Image.open(src) as a, Image.open(out) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert cli("info", "--strip", src, "--out", src).code == 2 and src.read_bytes() == before


def test_generate_from_comfyui_and_novelai_pictures(cli, tmp_path, tiny_models):
    import shutil

    models = tmp_path / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    shutil.copy(tiny_models["sd15"], models / "v1-5-pruned-emaonly.safetensors")
    comfy = S.png(tmp_path / "c.png", {"prompt": json.dumps(S.COMFY_GRAPH)})
    args = ("generate", "--from", comfy, "--models-dir", tmp_path / "models", "--steps", "1", "--size", "64x64",
            "--out", tmp_path / "out", "--quiet")
    r = cli(*args)
    assert r.code == 2 and "'nai_style'" in r.err and not (tmp_path / "out").exists()  # its LoRA is not there
    from sd1kit.dev.adapters import write_synthetic_adapter
    from sd1kit.formats.source import open_source

    (tmp_path / "models" / "Lora").mkdir()
    write_synthetic_adapter(tmp_path / "models" / "Lora" / "nai_style.safetensors",
                            open_source(tiny_models["sd15"]).shapes)
    r = cli(*args)
    assert r.code == 0, r.err
    written = read_picture(next((tmp_path / "out").glob("*.png")))
    assert written.parameters["Seed"] == "280823642470253" and written.parameters["Model"] == "v1-5-pruned-emaonly"
    assert written.parameters["Sampler"] == "DPM++ 2M" and written.parameters["Clip skip"] == "2"
    assert written.prompt.startswith("photograph of victorian woman") and "<lora:nai_style:0.6:0.8>" in written.prompt
    assert written.loras[0].hash and written.parameters["Lora hashes"].startswith("nai_style: ")
    nai = S.novelai_png(tmp_path / "nai.png")
    r = cli("generate", "--from", nai, "--models-dir", tmp_path / "models", "--steps", "1", "--out", tmp_path / "o")
    assert r.code == 2 and "does not say which checkpoint" in r.err
    r = cli("generate", "--from", nai, "--model", tiny_models["sd15"], "--steps", "1", "--size", "64x64",
            "--out", tmp_path / "o2", "--quiet")
    assert r.code == 0, r.err
    again = read_picture(next((tmp_path / "o2").glob("*.png")))
    assert "ENSD: 31337" in again.to_infotext() and again.parameters["Seed"] == "2837451207"
    plain = tmp_path / "plain.png"
    S.picture().save(plain)
    r = cli("generate", "--from", plain, "--steps", "1", "--out", tmp_path / "o3")
    assert r.code == 2 and "no generation parameters" in r.err
