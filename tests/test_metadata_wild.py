"""The pictures of issue 26 ("in the wild"): ComfyUI graphs from newer and custom nodes (KSamplerAdvanced,
SamplerCustom / SamplerCustomAdvanced with their noise, guider, sampler and sigmas nodes, SDXL text encoders fed by
primitives and concatenations, efficiency nodes, UI workflows with reroutes / primitives / bypassed nodes / group
nodes, saver nodes' A1111 texts, animated WebP from SaveAnimatedWEBP), SwarmUI's UTF-16 EXIF, NovelAI in WebP
EXIF, Civitai's generator, a Hugging Face Space's diffusers JSON, RuinedFooocus and Stability Matrix; each read
with the tool named, what could not be read named in a warning, and every picture, cut short or with its JSON
broken, read with warnings and no exception. The fixtures are built by tests/wild_samples.py."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import wild_samples as W
from sd1kit.cli.info import _format_info
from sd1kit.metadata.containers import Containers
from sd1kit.metadata.exif import decode_user_comment
from sd1kit.metadata.readers import read_found, read_picture, read_text
from sd1kit.pipeline.from_picture import request_from_infotext

CORE = ("tool", "prompt", "negative_prompt", "seed", "steps", "cfg_scale", "sampler", "schedule_type", "width",
        "height", "model")


def core(info) -> tuple:
    j = info.as_json()
    return tuple(j[k] for k in CORE)


def warned(info, *words) -> bool:
    return any(all(w in warning for w in words) for warning in info.warnings)


# --- ComfyUI: API graphs from newer and custom nodes ---

def test_comfyui_ksampler_advanced_with_primitives_concatenation_and_an_unknown_node(tmp_path):
    info = read_picture(W.comfy_png(tmp_path / "a.png", W.COMFY_ADVANCED))
    assert core(info) == ("comfyui", "1girl, solo, cherry blossoms, night", "", 1234567890, 30, 6.5, "DPM++ 2M SDE",
                          "Karras", 512, 768, "anything-v4.5")
    assert info.as_json()["clip_skip"] == 2 and info.graph == W.COMFY_ADVANCED
    assert [(lo.name, lo.weight, lo.te_weight) for lo in info.loras] == [("flat_color", 0.7, 0.5)]
    assert warned(info, "node 30", "ImpactWildcardProcessor", "negative prompt")  # named, not guessed through
    assert warned(info, "KSamplerAdvanced", "steps 0 to 20 of 30")
    assert "Negative prompt" not in info.to_infotext()


def test_comfyui_ksampler_advanced_second_half_without_noise():
    graph = dict(W.COMFY_ADVANCED)
    graph["3"] = dict(graph["3"], inputs=dict(graph["3"]["inputs"], add_noise="disable", start_at_step=10,
                                             end_at_step=10000))
    info = read_text(json.dumps(graph))
    assert warned(info, "adds no noise") and warned(info, "steps 10 to 10000 of 30")
    assert info.parameters["Seed"] == "1234567890"  # as written; the warning says it does not count


def test_comfyui_sampler_custom_advanced_noise_guider_sampler_sigmas(tmp_path):
    info = read_picture(W.comfy_png(tmp_path / "b.png", W.COMFY_CUSTOM_ADVANCED))
    assert core(info) == ("comfyui", "anthro fox, forest", "blurry", 42, 28, 5.5, "Euler a", "Karras", 576, 832,
                          "EasyFluffV11.2")
    assert info.parameters["Prediction"] == "v" and warned(info, "zsnr")
    request, _ = request_from_infotext(info.to_infotext())
    assert (request.prediction, request.seed, request.sampler, request.schedule) == ("v", 42, "Euler a", "Karras")


def test_comfyui_dual_and_basic_guiders_say_what_they_leave_out(tmp_path):
    dual = read_picture(W.comfy_png(tmp_path / "c.png", W.COMFY_DUAL_GUIDER))
    assert (dual.prompt, dual.negative_prompt, dual.parameters["CFG scale"]) == ("anthro fox, forest", "blurry", "6")
    assert warned(dual, "DualCFGGuider", "cond2")
    basic = dict(W.COMFY_CUSTOM_ADVANCED, **{"6": W.node("BasicGuider", model=["2", 0], conditioning=["3", 0])})
    info = read_text(json.dumps(basic))
    assert (info.prompt, info.negative_prompt) == ("anthro fox, forest", "") and "CFG scale" not in info.parameters
    assert warned(info, "BasicGuider", "no negative prompt")


def test_comfyui_sampler_custom_with_karras_scheduler(tmp_path):
    info = read_picture(W.comfy_png(tmp_path / "d.png", W.COMFY_SAMPLER_CUSTOM))
    assert core(info) == ("comfyui", "a lighthouse", "text, watermark", 7, 20, 7.0, "DPM++ 2M", "Karras", 512, 512,
                          "v1-5-pruned-emaonly")
    assert not info.warnings


def test_comfyui_efficiency_nodes_loader_stacker_and_sampler(tmp_path):
    info = read_picture(W.comfy_png(tmp_path / "e.png", W.COMFY_EFFICIENT))
    assert core(info) == ("comfyui", "masterpiece, 1girl, smile", "lowres, bad hands", 99, 24, 7.0, "Euler",
                          "Normal", 512, 640, "based66_v3")
    assert info.as_json()["clip_skip"] == 2
    assert sorted((lo.name, lo.weight, lo.te_weight) for lo in info.loras) == \
        [("add_detail", 0.8, 0.4), ("hll4-sd15", 0.6, 1.0)]  # "None" and the slot past lora_count are not LoRAs


def test_comfyui_conditioning_nodes_and_unknown_text_sources():
    graph = dict(W.COMFY_SAMPLER_CUSTOM)
    graph["8"] = W.node("CLIPTextEncode", text="a storm", clip=["1", 1])
    graph["9"] = W.node("ConditioningCombine", conditioning_1=["2", 0], conditioning_2=["8", 0])
    graph["10"] = W.node("ConditioningZeroOut", conditioning=["3", 0])
    graph["7"] = dict(graph["7"], inputs=dict(graph["7"]["inputs"], positive=["9", 0], negative=["10", 0]))
    info = read_text(json.dumps(graph))
    assert (info.prompt, info.negative_prompt) == ("a lighthouse AND a storm", "")
    assert warned(info, "ConditioningCombine") and warned(info, "zeroed")
    graph["2"] = W.node("CLIPTextEncodeSDXL", text_g="a lighthouse", text_l="oil painting", clip=["1", 1])
    graph["11"] = W.node("SomeCustomModelPatch", model=["1", 0], strength=0.3)
    graph["7"] = dict(graph["7"], inputs=dict(graph["7"]["inputs"], positive=["2", 0], model=["11", 0]))
    info = read_text(json.dumps(graph))
    assert info.prompt == "a lighthouse" and warned(info, "text_l differ from text_g")
    assert warned(info, "SomeCustomModelPatch", "changes the model")
    assert info.parameters["Model"] == "v1-5-pruned-emaonly"  # the model path is followed past it, by name


# --- ComfyUI: UI workflows ---

def test_comfyui_ui_workflow_alone_reroute_primitive_bypassed_and_muted_nodes(tmp_path):
    info = read_picture(W.comfy_png(tmp_path / "f.png", None, W.workflow_plain()))
    assert core(info) == ("comfyui", "a castle on a hill, sunset", "fog, low quality", 777, 25, 7.5, "DPM++ 2M",
                          "Karras", 640, 448, "v1-5-pruned-emaonly")
    assert info.loras == []  # the LoRA loader is bypassed (mode 4): the model passes through it
    assert info.app == "ComfyUI (from the UI workflow)" and info.graph is None and "workflow" in info.raw
    assert warned(info, "Image Comparer (rgthree)")


@pytest.mark.parametrize("prefix", ["workflow>", "workflow/"])
def test_comfyui_group_node_expanded_from_its_definition(tmp_path, prefix):
    info = read_picture(W.comfy_png(tmp_path / "g.png", None, W.workflow_group(prefix)))
    assert core(info) == ("comfyui", "a red fox in the snow", "blurry, lowres", 12345, 22, 6.0, "Euler a", "Normal",
                          768, 512, "dreamshaper_8")


def test_comfyui_group_node_without_definition_is_named():
    info = read_text(json.dumps(W.workflow_group(with_definition=False)))
    assert info.tool == "comfyui" and info.parameters == {}
    assert warned(info, "group node", W.GROUP, "lacks")


def test_comfyui_pasted_workflow_text_is_read():
    info = read_text(json.dumps(W.workflow_plain()))
    assert (info.tool, info.parameters["Seed"]) == ("comfyui", "777")


# --- ComfyUI: saver nodes and WebP ---

def test_comfyui_saver_texts_with_civitai_resources_and_spelling_variants(tmp_path):
    saver = read_picture(W.comfy_png(tmp_path / "j.png", W.COMFY_ADVANCED, parameters=W.IMAGE_SAVER_TEXT))
    assert (saver.tool, saver.app) == ("comfyui", "ComfyUI (A1111-compatible saver)")
    j = saver.as_json()
    assert (j["sampler"], j["schedule_type"], j["model_hash"], j["seed"]) == ("DPM++ 2M", "Karras", "7F96A1A9CA",
                                                                            1234567890)
    assert j["loras"] == [{"name": "Flat Color", "weight": 0.7, "hash": None, "civitai_version_id": 116428,
                           "civitai_version": "v2"}]
    variant = read_picture(W.comfy_png(tmp_path / "k.png", W.COMFY_ADVANCED, parameters=W.PROMPT_SAVER_TEXT))
    j = variant.as_json()
    assert (j["cfg_scale"], j["sampler"], j["schedule_type"], j["model"]) == (7.5, "DPM++ 2M", "Karras",
                                                                             "dreamshaper_8")
    assert "CFG Scale" not in variant.parameters and warned(variant, "'CFG Scale'", "'CFG scale'")
    assert [lo.name for lo in variant.loras] == ["flat_color"]  # the text names none: the graph's
    jpeg = read_picture(W.image_saver_jpeg(tmp_path / "l.jpg", W.COMFY_ADVANCED))
    assert (jpeg.tool, jpeg.prompt, jpeg.graph) == ("comfyui", "masterpiece, 1girl, garden", W.COMFY_ADVANCED)


def test_comfyui_animated_webp_from_save_animated_webp(tmp_path):
    path = W.comfy_animated_webp(tmp_path / "h.webp", W.COMFY_ADVANCED, W.workflow_plain())
    with Image.open(path) as image:
        assert image.n_frames == 3
    info = read_picture(path)
    assert core(info) == ("comfyui", "1girl, solo, cherry blossoms, night", "", 1234567890, 30, 6.5, "DPM++ 2M SDE",
                          "Karras", 512, 768, "anything-v4.5")
    assert info.graph == W.COMFY_ADVANCED and info.raw["exif:Make"].startswith("workflow:")
    other = read_picture(W.comfy_saver_webp(tmp_path / "i.webp", W.COMFY_CUSTOM_ADVANCED, W.workflow_plain()))
    assert (other.tool, other.prompt, other.parameters["Seed"]) == ("comfyui", "anthro fox, forest", "42")
    workflow_only = W.animated_webp(tmp_path / "w.webp", W.exif(strings={W.MAKE: "workflow:" +
                                                                        json.dumps(W.workflow_group())}))
    assert read_picture(workflow_only).parameters["Seed"] == "12345"


# --- SwarmUI, NovelAI, Civitai, Hugging Face, RuinedFooocus, Stability Matrix ---

@pytest.mark.parametrize("fmt, order, prefix", [("JPEG", "le", b"UNICODE\0"), ("WEBP", "le", b"UNICODE\0"),
                                                ("JPEG", "be", b"UNICODE\0"), ("WEBP", "be", b"UNICODE\0"),
                                                ("JPEG", "le", b"ASCII\0\0\0")])
def test_swarmui_user_comment_in_either_byte_order(tmp_path, fmt, order, prefix):
    info = read_picture(W.swarm(tmp_path / f"s.{fmt.lower()}", fmt, order, prefix))
    assert core(info) == ("swarmui", "a cozy café, warm light ☕", "blurry, text", 1187434210, 30, 6.5, "DPM++ 2M",
                          "Karras", 1024, 1024, "OfficialStableDiffusion/sd_xl_base_1.0")
    assert info.app == "SwarmUI 0.9.5.2" and info.loras[0].name == "detail_tweaker"


def test_user_comment_decoding():
    text = 'Steps: 20, {"a": "é"}'
    assert decode_user_comment(b"UNICODE\0" + text.encode("utf-16-le")) == text  # SwarmUI / ImageSharp
    assert decode_user_comment(b"UNICODE\0" + text.encode("utf-16-be")) == text  # A1111 / piexif
    assert decode_user_comment(b"UNICODE\0\xff\xfe" + text.encode("utf-16-le")) == text
    assert decode_user_comment(b"UNICODE\0\xfe\xff" + text.encode("utf-16-be")) == text
    assert decode_user_comment(b"UNICODE\0" + text.encode("utf-8")) == text  # a writer that ignored the prefix
    assert decode_user_comment(b"ASCII\0\0\0" + text.encode("utf-8")) == text


@pytest.mark.parametrize("layout", ["fields", "settings"])
def test_novelai_in_webp_exif(tmp_path, layout):
    info = read_picture(W.novelai_webp(tmp_path / "n.webp", layout))
    assert core(info) == ("novelai", "1girl, cherry blossoms, {{smile}}", "lowres, bad anatomy, bad hands",
                          3012345678, 28, 5.0, "Euler a", None, 64, 104, None)
    assert info.to_infotext().endswith("Clip skip: 2, ENSD: 31337")
    assert warned(info, "character prompts")
    assert info.app == ("NovelAI Diffusion V4 4F49EC75" if layout == "fields" else "NovelAI")


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_civitai_generator_resources_and_metadata(tmp_path, fmt):
    path = W.civitai_jpeg(tmp_path / "c.jpg") if fmt == "jpeg" else W.civitai_png(tmp_path / "c.png")
    info = read_picture(path)
    assert core(info) == ("civitai", "masterpiece, 1girl, cherry blossoms, night sky", "lowres, worst quality",
                          2027225909, 28, 5.5, "DPM++ 2M", "Karras", 832, 1216, "WAI-illustrious-SDXL")
    assert info.as_json()["loras"] == [{"name": "Detailer, Illustrious [v1]", "weight": 0.8, "hash": None,
                                        "civitai_version_id": 456789, "civitai_version": "v1.0"}]
    assert json.loads(info.parameters["Civitai metadata"])["aspectRatio"]["value"] == "2:3"  # kept whole
    from sd1kit.metadata.readers.civitai import resources

    assert [(r.type, r.version_id) for r in resources(info.parameters)] == \
        [("checkpoint", 1190596), ("lora", 456789), ("embed", 222)]
    assert not info.warnings


def test_hugging_face_space_diffusers_json(tmp_path):
    info = read_picture(W.hf_space_png(tmp_path / "h.png"))
    assert core(info) == ("diffusers", "an astronaut riding a horse, photo", "cartoon, lowres", 1234, 25, 7.5,
                          "DPM++ 2M", "Karras", 512, 512, "stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert info.app == "Hugging Face Space someuser/sd15-demo"


def test_ruinedfooocus_is_not_fooocus(tmp_path):
    info = read_picture(W.ruined_png(tmp_path / "r.png"))
    assert core(info) == ("ruinedfooocus", "cinematic film still, a sunflower field, shallow depth of field",
                          "anime, cartoon, text", 3864674281, 30, 8.5, "DPM++ 2M SDE", "Karras", 1152, 896,
                          "sd_xl_base_1.0_0.9vae")
    assert [(lo.name, lo.weight, lo.hash) for lo in info.loras] == \
        [("sd_xl_offset_example-lora_1.0", 0.1, "4852686128"), ("helios-beasts", 0.8, "BFA3BB4FBE")]
    assert info.as_json()["model_hash"] == "be9edd61" and not info.warnings
    old = read_picture(W.ruined_png(tmp_path / "o.png", W.RUINED_OLD))
    assert (old.tool, old.parameters["Denoising strength"], [(lo.name, lo.weight) for lo in old.loras]) == \
        ("ruinedfooocus", "0.75", [("add_detail", 0.5)])
    assert warned(old, "refiner", "sd_xl_refiner_1.0")


def test_stability_matrix_crlf_infotext_json_and_project(tmp_path):
    info = read_picture(W.stability_matrix_png(tmp_path / "m.png"))
    assert core(info) == ("stabilitymatrix", "(cat:1.2), by artist, detailed, [shaded]", "blurry, jpg artifacts",
                          124825529, 30, 7.0, "DPM++ 2M", "Karras", 640, 896, "ExampleMix7")
    assert list(info.parameters)[-1] == "Model"  # the last parameter, before the trailing separator, is kept
    texts = [info.prompt, info.negative_prompt, *info.parameters, *info.parameters.values()]
    assert not any("\r" in t for t in texts)
    assert info.app == "Stability Matrix (TextToImage)" and info.graph == W.COMFY_SAMPLER_CUSTOM
    assert info.as_json()["model_hash"] == "b899d188a1"  # the infotext's; the JSON only fills what it lacks
    for only_json in (W.stability_matrix_png(tmp_path / "j.png", None), W.stability_matrix_webp(tmp_path / "w.webp")):
        j = read_picture(only_json).as_json()
        assert (j["tool"], j["prompt"], j["seed"], j["width"], j["height"], j["sampler"], j["schedule_type"]) == \
            ("stabilitymatrix", "(cat:1.2), by artist, detailed, [shaded]", 124825529, 640, 896, "DPM++ 2M", "Karras")


@pytest.mark.parametrize("text", [
    "a cat\r\nNegative prompt: dog\r\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x512, Model: m",
    "a cat\r\nNegative prompt: dog\r\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x512, Model: m, ",
    "a cat\r\nNegative prompt: dog\r\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x512, Model: m,\r\n",
    "a cat\rNegative prompt: dog\rSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x512, Model: m\r\n\r\n",
])
def test_crlf_infotexts_keep_their_last_parameter(text):
    info = read_text(text)
    assert (info.prompt, info.negative_prompt, info.parameters["Model"]) == ("a cat", "dog", "m")
    assert not any("\r" in v for v in (*info.parameters.values(), info.prompt, info.negative_prompt))


def test_stability_matrix_empty_negative_without_space():
    info = read_text("a cat\r\nNegative prompt:\r\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 8x8")
    assert (info.prompt, info.negative_prompt, info.parameters["Size"]) == ("a cat", "", "8x8")


# --- damaged pictures: warnings, never an exception ---

def _cut(text: str) -> str:
    return text[: len(text) * 3 // 5]


BUILDERS = {
    "comfyui-advanced": lambda p, m: W.comfy_png(p / "a.png", W.COMFY_ADVANCED, mangle=m),
    "comfyui-custom-advanced": lambda p, m: W.comfy_png(p / "b.png", W.COMFY_CUSTOM_ADVANCED, mangle=m),
    "comfyui-efficient": lambda p, m: W.comfy_png(p / "e.png", W.COMFY_EFFICIENT, mangle=m),
    "comfyui-workflow": lambda p, m: W.comfy_png(p / "f.png", None, W.workflow_plain(), mangle=m),
    "comfyui-group": lambda p, m: W.comfy_png(p / "g.png", None, W.workflow_group(), mangle=m),
    "comfyui-saver": lambda p, m: W.comfy_png(p / "j.png", W.COMFY_ADVANCED, mangle=m,
                                              parameters=W.IMAGE_SAVER_TEXT + ', "x": [1'),
    "comfyui-saver-jpeg": lambda p, m: W.image_saver_jpeg(p / "l.jpg", W.COMFY_ADVANCED, mangle=m),
    "comfyui-animated-webp": lambda p, m: W.comfy_animated_webp(p / "h.webp", W.COMFY_ADVANCED, W.workflow_plain(),
                                                                mangle=m),
    "comfyui-saver-webp": lambda p, m: W.comfy_saver_webp(p / "i.webp", W.COMFY_CUSTOM_ADVANCED,
                                                          W.workflow_plain(), mangle=m),
    "swarmui-jpeg": lambda p, m: W.swarm(p / "s.jpg", "JPEG", mangle=m),
    "swarmui-webp": lambda p, m: W.swarm(p / "s.webp", "WEBP", mangle=m),
    "novelai-webp": lambda p, m: W.novelai_webp(p / "n.webp", mangle=m),
    "novelai-webp-settings": lambda p, m: W.novelai_webp(p / "n2.webp", "settings", mangle=m),
    "civitai-jpeg": lambda p, m: W.civitai_jpeg(p / "c.jpg", mangle=m),
    "civitai-png": lambda p, m: W.civitai_png(p / "c.png", mangle=m),
    "huggingface": lambda p, m: W.hf_space_png(p / "h.png", mangle=m),
    "ruinedfooocus": lambda p, m: W.ruined_png(p / "r.png", mangle=m),
    "stabilitymatrix": lambda p, m: W.stability_matrix_png(p / "m.png", mangle=m),
    "stabilitymatrix-webp": lambda p, m: W.stability_matrix_webp(p / "m.webp", mangle=m),
}


def _read_all_ways(path):
    info = read_picture(path)
    info.as_json(), info.to_infotext(), _format_info(info)
    json.dumps(info.as_json())
    assert all(isinstance(v, str) for v in info.parameters.values())
    return info


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_damaged_fixture_gives_warnings_not_exceptions(tmp_path, name):
    whole = BUILDERS[name](tmp_path, lambda t: t)
    assert _read_all_ways(whole).tool is not None
    data = whole.read_bytes()
    for fraction in (0.1, 0.5, 0.9):
        cut = tmp_path / f"cut{fraction}{whole.suffix}"
        cut.write_bytes(data[: int(len(data) * fraction)])
        assert _read_all_ways(cut).warnings, (name, fraction)
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    broken = _read_all_ways(BUILDERS[name](broken_dir, _cut))
    assert broken.warnings, name


_ids = st.integers(0, 6)
_value = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=4) | st.lists(st.integers(0, 3),
                                                                                          max_size=3)
_ui_slot = st.fixed_dictionaries({"name": st.sampled_from(["model", "clip", "positive", "text", "seed", "x"]),
                                  "type": st.sampled_from(["MODEL", "CLIP", "STRING", "*"]),
                                  "link": st.none() | _ids}, optional={"widget": st.just({"name": "text"})})
_ui_node = st.fixed_dictionaries({
    "id": _ids, "type": st.sampled_from(["KSampler", "CLIPTextEncode", "Reroute", "PrimitiveNode", "LoraLoader",
                                         "CheckpointLoaderSimple", "workflow>g", "workflow/h", "Unknown"]) | _value,
    "mode": st.sampled_from([0, 2, 4]) | _value, "inputs": st.lists(_ui_slot, max_size=3) | _value,
    "outputs": st.lists(st.fixed_dictionaries({"type": st.sampled_from(["MODEL", "LATENT"])}), max_size=2),
    "widgets_values": st.lists(_value, max_size=8) | _value})
_workflow = st.fixed_dictionaries({
    "nodes": st.lists(_ui_node, max_size=6),
    "links": st.lists(st.lists(_ids | _value, min_size=5, max_size=6) | st.dictionaries(
        st.sampled_from(["id", "origin_id", "origin_slot", "target_id", "target_slot"]), _ids), max_size=6),
    "extra": st.fixed_dictionaries({"groupNodes": st.dictionaries(st.sampled_from(["g", "h"]), st.fixed_dictionaries(
        {"nodes": st.lists(_ui_node, max_size=3), "links": st.lists(st.lists(_ids, min_size=4, max_size=6),
                                                                    max_size=3),
         "external": st.lists(st.lists(_ids | _value, min_size=2, max_size=3), max_size=2)}), max_size=2)})})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_workflow)
def test_fuzzed_ui_workflows_never_raise(workflow):
    info = read_found(Containers("fuzz.png", "PNG", (64, 64), "RGB", {"workflow": json.dumps(workflow)}))
    info.as_json(), info.to_infotext(), _format_info(info)
    assert all(isinstance(v, str) for v in info.parameters.values())
