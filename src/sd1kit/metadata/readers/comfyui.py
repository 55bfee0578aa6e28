"""ComfyUI pictures (https://github.com/comfyanonymous/ComfyUI). Where the graphs are: the PNG text chunks `prompt`
(the API graph, {id: {class_type, inputs}}, where an input is a value or a link [node id, output index]) and
`workflow` (the UI graph: nodes with `widgets_values`, links [id, from, from slot, to, to slot, type]), written by
SaveImage (nodes.py); in WebP, the EXIF strings `prompt:{...}` (tag 0x0110) and `workflow:{...}` (0x010F, then
0x010E for further keys) written by SaveAnimatedWEBP (comfy_extras/nodes_images.py), or `Prompt:` / `Workflow:`
in 0x010F / 0x010E as the WebP saver custom nodes write them.

The first-pass sampler is found (KSampler, KSamplerAdvanced, SamplerCustom, SamplerCustomAdvanced with its noise,
guider, sampler and sigmas nodes - comfy_extras/nodes_custom_sampler.py - and efficiency-nodes-comfyui's "KSampler
(Efficient)" fed by its "Efficient Loader") and its links are followed to the prompt texts (through text encoders,
primitive / string / concatenate nodes, conditioning nodes), the checkpoint, the LoRA loaders and stacks, CLIP skip
and the latent size. A link into a node sd1kit does not know is not guessed through: the node is named in a warning
and what it holds stays unread. A UI workflow alone is converted to an API graph first (widget names per node type,
links through reroutes, primitives and bypassed nodes, group nodes - `workflow>NAME` / `workflow/NAME` - expanded
from `extra.groupNodes` as the ComfyUI frontend's groupNode.ts stores them). An A1111-style `parameters` text
written beside the graph (saver nodes: ComfyUI-Image-Saver, SD Prompt Saver) is preferred for the parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sd1kit.metadata.containers import Containers
from sd1kit.metadata.limits import load_json
from sd1kit.metadata.picture import LoraRef, PictureInfo, text_number
from sd1kit.metadata.readers.names import a1111_sampler, a1111_schedule

MAX_DEPTH = 64
MAX_WARNINGS = 40
EXIF_GRAPH_KEYS = ("exif:Model", "exif:Make", "exif:ImageDescription", "exif:Software", "exif:UserComment")
_EXIF_GRAPH = re.compile(r"\s*(prompt|workflow)\s*:\s*(?=\{)", re.I)

# --- what sd1kit knows about node types ---

SAMPLER_KINDS = {"KSampler": "k", "KSamplerAdvanced": "k", "KSampler (Efficient)": "k",
                 "KSampler Adv. (Efficient)": "k", "SamplerCustom": "custom", "SamplerCustomAdvanced": "advanced"}
CHECKPOINT_LOADERS = ("CheckpointLoaderSimple", "CheckpointLoader", "unCLIPCheckpointLoader",
                      "ImageOnlyCheckpointLoader", "UNETLoader", "CheckpointLoader|pysssss")
CHECKPOINT_INPUTS = ("ckpt_name", "unet_name", "model_name", "base_ckpt_name")
EFFICIENT_LOADERS = ("Efficient Loader",)
LORA_LOADERS = ("LoraLoader", "LoraLoaderModelOnly", "LoraLoader|pysssss")
ENCODERS = {"CLIPTextEncode": ("text",), "CLIPTextEncodeSDXL": ("text_g", "text_l"),
            "CLIPTextEncodeSDXLRefiner": ("text",), "CLIPTextEncodeSD3": ("clip_g", "clip_l", "t5xxl"),
            "CLIPTextEncodeFlux": ("t5xxl", "clip_l"), "BNK_CLIPTextEncodeAdvanced": ("text",),
            "smZ CLIPTextEncode": ("text",), "CLIPTextEncodeHunyuanDiT": ("bert", "mt5xl")}
SPLITS = {kind: {0: "positive", 1: "negative"} for kind in (
    "ControlNetApplyAdvanced", "ControlNetApplySD3", "ACN_AdvancedControlNetApply", "ACN_AdvancedControlNetApply_v2",
    "Apply ControlNet Stack", "InpaintModelConditioning", "InstructPixToPixConditioning")}
PASSES = {"ConditioningSetArea": "conditioning", "ConditioningSetAreaPercentage": "conditioning",
          "ConditioningSetAreaStrength": "conditioning", "ConditioningSetMask": "conditioning",
          "ConditioningSetTimestepRange": "conditioning", "ControlNetApply": "conditioning",
          "FluxGuidance": "conditioning", "unCLIPConditioning": "conditioning", "StyleModelApply": "conditioning",
          "GLIGENTextBoxApply": "conditioning_to"}
COMBINES = {"ConditioningCombine": (("conditioning_1", "conditioning_2"), " AND ",
                                    "ConditioningCombine averages both as A1111's AND does"),
            "ConditioningConcat": (("conditioning_to", "conditioning_from"), " BREAK ",
                                   "ConditioningConcat joins the token chunks as A1111's BREAK does")}
PRIMITIVES = ("PrimitiveInt", "PrimitiveFloat", "PrimitiveString", "PrimitiveStringMultiline", "PrimitiveBoolean",
              "PrimitiveNode", "Seed (rgthree)", "CR Seed", "easy seed", "ImpactInt", "ImpactFloat", "ImpactString",
              "Int Literal", "Float Literal", "String Literal", "Text Multiline", "Text String", "INTConstant",
              "FloatConstant", "StringConstant", "StringConstantMultiline", "ShowText|pysssss")
VALUE_KEYS = ("value", "seed", "int", "float", "number", "string", "text", "Text")
STRING_JOINS = {"StringConcatenate": (("string_a", "string_b"), "delimiter", ""),
                "JoinStrings": (("string1", "string2"), "delimiter", " "),
                "CR Text Concatenate": (("text1", "text2"), "separator", ""),
                "Text Concatenate": (("text_a", "text_b", "text_c", "text_d"), "delimiter", ", ")}
SAMPLER_OBJECTS = {"SamplerEulerAncestral": "euler_ancestral", "SamplerEulerAncestralCFGPP": "euler_ancestral_cfg_pp",
                   "SamplerLMS": "lms", "SamplerDPMPP_2M_SDE": "dpmpp_2m_sde", "SamplerDPMPP_3M_SDE": "dpmpp_3m_sde",
                   "SamplerDPMPP_SDE": "dpmpp_sde", "SamplerDPMPP_2S_Ancestral": "dpmpp_2s_ancestral",
                   "SamplerDPMAdaptative": "dpm_adaptive"}
SCHEDULE_NODES = {"KarrasScheduler": "karras", "ExponentialScheduler": "exponential",
                  "PolyexponentialScheduler": "polyexponential", "BetaSamplingScheduler": "beta",
                  "AlignYourStepsScheduler": "align_your_steps", "SDTurboScheduler": "sd_turbo",
                  "LaplaceScheduler": "laplace", "VPScheduler": "vp", "GITSScheduler": "gits"}
EMPTY_LATENTS = ("EmptyLatentImage", "EmptySD3LatentImage", "EmptyHunyuanLatentVideo", "EmptyLTXVLatentVideo")
LATENT_PASSES = {"RepeatLatentBatch": "samples", "LatentFromBatch": "samples", "SetLatentNoiseMask": "samples",
                 "LatentBatchSeedBehavior": "samples"}
IMAGE_LATENTS = ("VAEEncode", "VAEEncodeForInpaint", "VAEEncodeTiled")


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int)) \
        and not isinstance(value[0], bool) and isinstance(value[1], int) and not isinstance(value[1], bool)


def _order(key: str) -> tuple:
    """Node ids in numeric order ("3" < "10" < "10:2", the ids of a group node's inner nodes), others after."""
    parts = key.split(":")
    if all(p.isdigit() and len(p) < 20 for p in parts):
        return 0, tuple(int(p) for p in parts), key
    return 1, (), key


MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")


def _stem(name) -> str | None:
    """A model file's name without its folders and its model-file suffix ("v1.5-anime" keeps its dot)."""
    if not isinstance(name, str) or not name.strip():
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if base.lower().endswith(MODEL_SUFFIXES) else base


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Pass:
    """What one sampler node (with its noise / guider / sampler / sigmas nodes) says."""

    node: str
    seed: object = None
    steps: object = None
    cfg: object = None
    sampler: object = None
    scheduler: object = None
    denoise: object = None
    model: object = None
    positive: object = None
    negative: object = None
    latent: object = None


@dataclass
class Chain:
    """What the model and CLIP paths say: checkpoint, LoRAs (by loader: name, UNet weight, TE weight), ..."""

    checkpoint: str | None = None
    loras: dict = field(default_factory=dict)
    prediction: str | None = None
    clip_skip: int | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class GraphRead:
    prompt: str = ""
    negative: str = ""
    parameters: dict = field(default_factory=dict)
    loras: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


class Graph:
    """An API graph and the warnings its reading gives."""

    def __init__(self, nodes: dict):
        self.nodes = {str(k): v for k, v in nodes.items() if isinstance(v, dict)}
        self.warnings: list[str] = []
        self.clip_links: dict[str, object] = {}

    def warn(self, text: str) -> None:
        if text not in self.warnings and len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(text)

    def node(self, link) -> dict | None:
        return self.nodes.get(str(link[0])) if _is_link(link) else None

    @staticmethod
    def kind(node: dict) -> str:
        kind = node.get("class_type")
        return kind if isinstance(kind, str) else ""

    @staticmethod
    def inputs(node: dict) -> dict:
        inputs = node.get("inputs")
        return inputs if isinstance(inputs, dict) else {}

    def label(self, link) -> str:
        node = self.node(link)
        kind = self.kind(node) if node is not None else ""
        return f"node {str(link[0])[:20]} ({kind[:60] or 'no type'})"

    def missing(self, link, what: str) -> None:
        if _is_link(link):
            self.warn(f"the {what} links to node {str(link[0])[:20]}, which is not in the graph")
        elif link is not None:
            self.warn(f"the {what} input is not a link ({type(link).__name__}); not read")

    def value(self, node: dict, key: str):
        return self.resolve(self.inputs(node).get(key), key)

    def resolve(self, value, key: str, depth: int = 0, what: str | None = None):
        """A value as written, or followed through links to primitive and string nodes (`key`: the input's name,
        looked for in the source node; `what`: how warnings name it)."""
        what = what or key
        if not _is_link(value):
            return value
        source = self.node(value)
        if source is None or depth >= MAX_DEPTH:
            self.missing(value, what) if source is None else self.warn(f"the {what}: links nested too deeply")
            return None
        kind, ins = self.kind(source), self.inputs(source)
        if kind in STRING_JOINS:
            return self.join(source, value, what, depth)
        for name in (key, *VALUE_KEYS) if kind in PRIMITIVES else (key,):
            if name in ins:
                if kind not in PRIMITIVES:
                    self.warn(f"the {what} was read from the {name} input of {self.label(value)}, a node type "
                              "sd1kit does not know")
                return self.resolve(ins[name], key, depth + 1, what)
        if len(ins) == 1 and not _is_link(next(iter(ins.values()))):
            if kind not in PRIMITIVES:
                self.warn(f"the {what} was read from {self.label(value)}, a node type sd1kit does not know, as its "
                          "only value")
            return next(iter(ins.values()))
        self.warn(f"the {what} comes from {self.label(value)}, which sd1kit does not read")
        return None

    def join(self, node: dict, link, what: str, depth: int):
        keys, sep_key, default = STRING_JOINS[self.kind(node)]
        ins = self.inputs(node)
        sep = self.resolve(ins.get(sep_key, default), sep_key, depth + 1, f"{what} delimiter")
        parts = []
        for key in keys:
            if key not in ins:
                continue
            part = self.resolve(ins[key], key, depth + 1, what)
            if not isinstance(part, str):
                self.warn(f"the {what}: part {key} of {self.label(link)} could not be read; the joined text is "
                          "not read")
                return None
            parts.append(part)
        if self.kind(node) == "Text Concatenate" and str(ins.get("clean_whitespace", "true")).lower() == "true":
            parts = [p.strip() for p in parts if p.strip()]
        return (sep if isinstance(sep, str) else default).join(parts)

    # --- prompts ---

    def prompt(self, link, role: str, depth: int = 0) -> str | None:
        """The text of the conditioning that `link` gives, through encoders and conditioning nodes."""
        node = self.node(link)
        if node is None or depth >= MAX_DEPTH:
            self.missing(link, f"{role} prompt") if node is None else self.warn(f"the {role} prompt: too deep")
            return None
        kind, ins = self.kind(node), self.inputs(node)
        if kind in ENCODERS:
            return self.encoded(node, link, role)
        if kind in EFFICIENT_LOADERS and link[1] in (1, 2):
            self.clip_links.setdefault(role, [str(link[0]), 5])
            key = "positive" if link[1] == 1 else "negative"
            return self.text(ins.get(key), key, role)
        if kind in SPLITS:
            name = SPLITS[kind].get(link[1])
            return self.prompt(ins.get(name), role, depth + 1) if name else None
        if kind in PASSES:
            return self.prompt(ins.get(PASSES[kind]), role, depth + 1)
        if kind in COMBINES:
            return self.combined(node, link, role, depth)
        if kind == "ConditioningZeroOut":
            self.warn(f"the {role} conditioning is zeroed ({self.label(link)}): no text; read as empty")
            return ""
        if "clip" in ins and any(isinstance(ins.get(k), str) for k in ("text", "prompt")):
            key = "text" if isinstance(ins.get("text"), str) else "prompt"
            self.warn(f"the {role} prompt was read from the {key} input of {self.label(link)}, a text encoder "
                      "sd1kit does not know")
            self.clip_links.setdefault(role, ins.get("clip"))
            return ins[key]
        self.warn(f"the {role} prompt comes from {self.label(link)}, which sd1kit does not read")
        return None

    def text(self, value, key: str, role: str) -> str | None:
        text = self.resolve(value, key, what=f"{role} prompt")
        if text is not None and not isinstance(text, str):
            self.warn(f"the {role} prompt is not text ({type(text).__name__}); not read")
            return None
        return text

    def encoded(self, node: dict, link, role: str) -> str | None:
        ins = self.inputs(node)
        self.clip_links.setdefault(role, ins.get("clip"))
        texts = [(key, self.text(ins[key], key, role)) for key in ENCODERS[self.kind(node)] if key in ins]
        found = [(key, text) for key, text in texts if isinstance(text, str)]
        if not found:
            return None
        first_key, first = found[0]
        others = [key for key, text in found[1:] if text.strip() and text != first]
        if others:
            self.warn(f"{self.label(link)}: {', '.join(others)} differ from {first_key}; the {role} prompt is "
                      f"{first_key}")
        return first

    def combined(self, node: dict, link, role: str, depth: int) -> str | None:
        keys, joiner, why = COMBINES[self.kind(node)]
        parts = [self.prompt(self.inputs(node).get(key), role, depth + 1) for key in keys]
        if any(part is None for part in parts):
            return None
        self.warn(f"the {role} prompt joins {len(parts)} texts with{joiner.rstrip()} ({why})")
        return joiner.join(p for p in parts)

    # --- the model and CLIP paths ---

    def model_chain(self, link, chain: Chain) -> None:
        """Back from the sampler's model input to the checkpoint: LoRAs, v-prediction, CFG rescale on the way."""
        seen: set[str] = set()
        while link is not None:
            node = self.node(link)
            if node is None or str(link[0]) in seen or len(seen) > 10 * MAX_DEPTH:
                self.missing(link, "model") if node is None else self.warn("the model path loops; stopped")
                return
            seen.add(str(link[0]))
            ins = self.inputs(node)
            if self.loader(node, link, chain):
                return
            if not self.lora(node, link, chain, "model") and not self.model_patch(node, chain):
                if "model" not in ins:
                    self.warn(f"the model comes from {self.label(link)}, which sd1kit does not read")
                    return
                self.warn(f"{self.label(link)} changes the model in a way sd1kit does not read")
            link = ins.get("model")

    def is_loader(self, node: dict) -> bool:
        kind, ins = self.kind(node), self.inputs(node)
        return kind in CHECKPOINT_LOADERS or kind in EFFICIENT_LOADERS or \
            (any(key in ins for key in CHECKPOINT_INPUTS) and "model" not in ins)

    def loader(self, node: dict, link, chain: Chain) -> bool:
        """A checkpoint loader (the model path's end): True when `node` is one."""
        kind, ins = self.kind(node), self.inputs(node)
        if kind in EFFICIENT_LOADERS:
            chain.checkpoint = chain.checkpoint or self.text(ins.get("ckpt_name"), "ckpt_name", "checkpoint")
            layer = self.resolve(ins.get("clip_skip"), "clip_skip")
            if isinstance(layer, int) and not isinstance(layer, bool) and layer < 0 and chain.clip_skip is None:
                chain.clip_skip = -layer
            self.lora(node, link, chain, "model")
            return True
        names = [key for key in CHECKPOINT_INPUTS if key in ins]
        if not self.is_loader(node):
            return False
        if kind not in CHECKPOINT_LOADERS:
            self.warn(f"the checkpoint was read from {self.label(link)}, a loader sd1kit does not know")
        for key in names:
            name = self.text(ins[key], key, "checkpoint")
            if name:
                chain.checkpoint = chain.checkpoint or name
                break
        return True

    def add_lora(self, chain: Chain, key: str, name, unet, te, path: str) -> None:
        name = self.resolve(name, "lora_name")
        if not isinstance(name, str) or name.strip() in ("", "None"):
            return
        unet, te = self.resolve(unet, "strength_model"), self.resolve(te, "strength_clip")
        entry = chain.loras.setdefault(key, [_stem(name), None, None])
        if path == "model":
            entry[1], entry[2] = unet, te
        elif entry[1] is None:  # on the CLIP path only: the UNet output of the loader is not used
            entry[1], entry[2] = 0.0, te

    def lora(self, node: dict, link, chain: Chain, path: str) -> bool:
        """LoRAs a node applies (loaders, efficiency nodes, rgthree's Power Lora Loader, LoRA stacks)."""
        kind, ins, key = self.kind(node), self.inputs(node), str(link[0])
        if kind in LORA_LOADERS or (kind not in EFFICIENT_LOADERS and "lora_name" in ins):
            if kind not in LORA_LOADERS:
                self.warn(f"a LoRA was read from {self.label(link)}, a loader sd1kit does not know")
            unet = self.resolve(ins.get("strength_model", 1.0), "strength_model")
            te = 0.0 if kind == "LoraLoaderModelOnly" else self.resolve(ins.get("strength_clip", unet), "strength_clip")
            self.add_lora(chain, key, ins.get("lora_name"), unet, te, path)
        elif kind in EFFICIENT_LOADERS:
            self.add_lora(chain, key, ins.get("lora_name"), self.resolve(ins.get("lora_model_strength"), "strength"),
                          self.resolve(ins.get("lora_clip_strength"), "strength"), path)
        elif kind == "Power Lora Loader (rgthree)":
            for name, item in sorted(ins.items()):
                if name.startswith("lora_") and isinstance(item, dict) and item.get("on") is True:
                    strength = item.get("strength")
                    te = item.get("strengthTwo", strength) if path == "model" else strength
                    self.add_lora(chain, f"{key}/{name}", item.get("lora"), strength, te, path)
        else:
            return self.stack(ins.get("lora_stack"), chain, path) if "lora_stack" in ins else False
        if "lora_stack" in ins:
            self.stack(ins.get("lora_stack"), chain, path)
        return True

    def stack(self, link, chain: Chain, path: str, depth: int = 0) -> bool:
        """efficiency-nodes' LoRA Stacker and Comfyroll's CR LoRA Stack, chained by their lora_stack inputs."""
        node = self.node(link)
        if node is None or depth >= MAX_DEPTH:
            return link is None
        kind, ins, key = self.kind(node), self.inputs(node), str(link[0])
        if kind == "LoRA Stacker":
            count = self.resolve(ins.get("lora_count", 0), "lora_count")
            simple = ins.get("input_mode", "simple") == "simple"
            for i in range(1, count + 1 if isinstance(count, int) and 0 < count < 100 else 1):
                unet = ins.get(f"lora_wt_{i}") if simple else ins.get(f"model_str_{i}")
                te = unet if simple else ins.get(f"clip_str_{i}")
                self.add_lora(chain, f"{key}/{i}", ins.get(f"lora_name_{i}"), unet, te, path)
        elif kind == "CR LoRA Stack":
            for i in (1, 2, 3):
                if ins.get(f"switch_{i}") == "On":
                    self.add_lora(chain, f"{key}/{i}", ins.get(f"lora_name_{i}"), ins.get(f"model_weight_{i}"),
                                  ins.get(f"clip_weight_{i}"), path)
        else:
            self.warn(f"the LoRA stack comes from {self.label(link)}, which sd1kit does not read")
            return True
        if "lora_stack" in ins:
            self.stack(ins.get("lora_stack"), chain, path, depth + 1)
        return True

    def model_patch(self, node: dict, chain: Chain) -> bool:
        kind = self.kind(node)
        if kind == "ModelSamplingDiscrete":
            sampling = self.value(node, "sampling")
            if sampling == "v_prediction" and chain.prediction is None:
                chain.prediction = "v"
            if self.value(node, "zsnr") is True:
                self.warn("ModelSamplingDiscrete has zsnr on (zero terminal SNR); not recorded")
            return True
        if kind == "RescaleCFG":
            multiplier = self.value(node, "multiplier")
            if _number(multiplier):
                chain.extra.setdefault("CFG Rescale phi", text_number(multiplier))
            return True
        return False

    def clip_chain(self, link, chain: Chain) -> None:
        """Back from the positive text encoder's CLIP input: CLIP skip, LoRAs applied to the text encoder."""
        seen: set[str] = set()
        while link is not None:
            node = self.node(link)
            if node is None or str(link[0]) in seen or len(seen) > 10 * MAX_DEPTH:
                return
            seen.add(str(link[0]))
            kind, ins = self.kind(node), self.inputs(node)
            if kind == "CLIPSetLastLayer":
                layer = self.value(node, "stop_at_clip_layer")
                if isinstance(layer, int) and not isinstance(layer, bool) and layer < 0 and chain.clip_skip is None:
                    chain.clip_skip = -layer
            elif self.is_loader(node):
                if kind in EFFICIENT_LOADERS:
                    self.loader(node, link, chain)
                return
            elif not self.lora(node, link, chain, "clip"):
                self.warn(f"the CLIP model passes through {self.label(link)}, which sd1kit does not read")
                return
            link = ins.get("clip")

    # --- latent size ---

    def size(self, link) -> tuple[int, int] | None:
        for _ in range(MAX_DEPTH):
            node = self.node(link)
            if node is None:
                return None
            kind, ins = self.kind(node), self.inputs(node)
            if kind in EMPTY_LATENTS or kind in EFFICIENT_LOADERS and link[1] == 3:
                keys = ("width", "height") if kind in EMPTY_LATENTS else ("empty_latent_width", "empty_latent_height")
                w, h = (self.resolve(ins.get(key), key) for key in keys)
                if isinstance(w, int) and isinstance(h, int) and not isinstance(w, bool) and not isinstance(h, bool):
                    return w, h
                self.warn(f"the latent size in {self.label(link)} could not be read")
                return None
            if kind in LATENT_PASSES:
                link = ins.get(LATENT_PASSES[kind])
                continue
            if kind not in IMAGE_LATENTS:  # img2img: the size is the picture's
                self.warn(f"the latent comes from {self.label(link)}, which sd1kit does not read; the size is "
                          "the picture's")
            return None
        return None

    # --- the sampler ---

    def fed_by_empty_latent(self, node: dict) -> bool:
        latent = self.inputs(node).get("latent_image")
        source = self.node(latent)
        return source is not None and ("Empty" in self.kind(source) or self.kind(source) in EFFICIENT_LOADERS)

    def first_pass(self) -> tuple[str, dict] | None:
        """The first-pass sampler: one fed by an empty latent if there is one, else the lowest-numbered; a node
        of a type sd1kit does not know counts when it has KSampler's inputs (and is named in a warning)."""
        found = [(k, n) for k, n in self.nodes.items() if self.kind(n) in SAMPLER_KINDS]
        if not found:
            for key, node in self.nodes.items():
                ins = self.inputs(node)
                if {"steps", "cfg", "sampler_name"} <= ins.keys() and {"seed", "noise_seed"} & ins.keys():
                    found.append((key, node))
                    self.warn(f"node {key[:20]} ({self.kind(node)[:60]}) was read as a KSampler: sd1kit does not "
                              "know its type, but it has KSampler's inputs")
        if not found:
            return None
        found.sort(key=lambda item: _order(item[0]))
        chosen = next((item for item in found if self.fed_by_empty_latent(item[1])), found[0])
        if len(found) > 1:
            others = ", ".join(k for k, _ in found if k != chosen[0])[:120]
            self.warn(f"the graph has {len(found)} samplers; node {chosen[0][:20]} (the first pass) was read, not "
                      f"{others}")
        return chosen

    def read_sampler(self, key: str, node: dict) -> Pass:
        kind, ins = self.kind(node), self.inputs(node)
        role = SAMPLER_KINDS.get(kind, "k")
        p = Pass(key, model=ins.get("model"), positive=ins.get("positive"), negative=ins.get("negative"),
                 latent=ins.get("latent_image"))
        if role == "k":
            p.seed = self.value(node, "noise_seed" if "noise_seed" in ins else "seed")
            p.steps, p.cfg = self.value(node, "steps"), self.value(node, "cfg")
            p.sampler, p.scheduler = self.value(node, "sampler_name"), self.value(node, "scheduler")
            p.denoise = self.value(node, "denoise")
            self.advanced(node, key, p)
        elif role == "custom":
            p.seed, p.cfg = self.value(node, "noise_seed"), self.value(node, "cfg")
            if self.value(node, "add_noise") is False:
                self.warn(f"node {key[:20]} ({kind}) adds no noise: the seed does not count")
            p.sampler = self.sampler_object(ins.get("sampler"))
            self.sigmas(ins.get("sigmas"), p)
        else:
            self.noise(ins.get("noise"), p)
            self.guider(ins.get("guider"), p)
            p.sampler = self.sampler_object(ins.get("sampler"))
            self.sigmas(ins.get("sigmas"), p)
        return p

    def advanced(self, node: dict, key: str, p: Pass) -> None:
        """KSamplerAdvanced's add_noise and step range, which A1111's parameters cannot say."""
        ins = self.inputs(node)
        if "add_noise" in ins and self.value(node, "add_noise") not in ("enable", True):
            self.warn(f"node {key[:20]} ({self.kind(node)}) adds no noise: the seed does not count")
        start, end = self.value(node, "start_at_step"), self.value(node, "end_at_step")
        steps = p.steps if _number(p.steps) else None
        if (_number(start) and start > 0) or (_number(end) and steps is not None and end < steps):
            self.warn(f"node {key[:20]} ({self.kind(node)}) runs steps {start} to {end} of {steps}: Steps is the "
                      "whole schedule's")

    def noise(self, link, p: Pass) -> None:
        node = self.node(link)
        kind = self.kind(node) if node is not None else ""
        if kind == "RandomNoise":
            p.seed = self.value(node, "noise_seed")
        elif kind == "DisableNoise":
            self.warn(f"the noise is {self.label(link)}: no seed")
        else:
            self.missing(link, "noise") if node is None else \
                self.warn(f"the noise (seed) comes from {self.label(link)}, which sd1kit does not read")

    def guider(self, link, p: Pass) -> None:
        node = self.node(link)
        kind, ins = (self.kind(node), self.inputs(node)) if node is not None else ("", {})
        p.model = ins.get("model", p.model)
        if kind in ("CFGGuider", "PerpNegGuider"):
            p.positive, p.negative, p.cfg = ins.get("positive"), ins.get("negative"), self.value(node, "cfg")
            if kind == "PerpNegGuider":
                self.warn(f"{self.label(link)}: its empty conditioning and neg_scale are not read")
        elif kind == "BasicGuider":
            p.positive = ins.get("conditioning")
            self.warn(f"{self.label(link)} has no negative prompt and no CFG scale")
        elif kind == "DualCFGGuider":
            p.positive, p.negative, p.cfg = ins.get("cond1"), ins.get("negative"), self.value(node, "cfg_conds")
            self.warn(f"{self.label(link)}: its second conditioning (cond2, cfg_cond2_negative "
                      f"{self.value(node, 'cfg_cond2_negative')}) is not read; CFG scale is cfg_conds")
        else:
            self.missing(link, "guider") if node is None else \
                self.warn(f"the guider is {self.label(link)}, which sd1kit does not read: no prompts or CFG scale")

    def sampler_object(self, link):
        node = self.node(link)
        kind = self.kind(node) if node is not None else ""
        if kind == "KSamplerSelect":
            return self.value(node, "sampler_name")
        if kind in SAMPLER_OBJECTS:
            return SAMPLER_OBJECTS[kind]
        self.missing(link, "sampler") if node is None else \
            self.warn(f"the sampler comes from {self.label(link)}, which sd1kit does not read")
        return None

    def sigmas(self, link, p: Pass) -> None:
        for _ in range(MAX_DEPTH):
            node = self.node(link)
            if node is None:
                self.missing(link, "sigmas")
                return
            kind, ins = self.kind(node), self.inputs(node)
            if kind in ("SplitSigmas", "SplitSigmasDenoise", "FlipSigmas"):
                self.warn(f"the sigmas pass through {self.label(link)}: Steps is the whole schedule's")
                link = ins.get("sigmas")
                continue
            if kind == "BasicScheduler":
                p.scheduler, p.steps, p.denoise = (self.value(node, k) for k in ("scheduler", "steps", "denoise"))
                p.model = p.model if p.model is not None else ins.get("model")
            elif kind in SCHEDULE_NODES:
                p.scheduler, p.steps = SCHEDULE_NODES[kind], self.value(node, "steps")
                p.denoise = self.value(node, "denoise") if "denoise" in ins else None
            else:
                self.warn(f"the sigmas come from {self.label(link)}, which sd1kit does not read: no steps or "
                          "schedule")
            return


def _num(graph: Graph, name: str, value, whole: bool = False) -> str | None:
    if value is None:
        return None
    if not _number(value) or (whole and isinstance(value, float) and not value.is_integer()):
        graph.warn(f"the {name} is not a{' whole' if whole else ''} number ({str(value)[:20]!r}); not read")
        return None
    return text_number(value)


def _params(graph: Graph, p: Pass, chain: Chain, size) -> dict:
    sampler, legacy = a1111_sampler(p.sampler) if isinstance(p.sampler, str) else (None, None)
    schedule = a1111_schedule(p.scheduler) if isinstance(p.scheduler, str) else None
    denoise = p.denoise if _number(p.denoise) and p.denoise < 1 else None
    params = {
        "Steps": _num(graph, "steps", p.steps, True), "Sampler": sampler, "Schedule type": schedule or legacy,
        "CFG scale": _num(graph, "CFG scale", p.cfg), "Seed": _num(graph, "seed", p.seed, True),
        "Size": f"{size[0]}x{size[1]}" if size else None, "Model": _stem(chain.checkpoint),
        "Denoising strength": text_number(denoise), "Clip skip": text_number(chain.clip_skip),
        "Prediction": chain.prediction, **chain.extra,
    }
    return {k: v for k, v in params.items() if v is not None}


def _loras(chain: Chain) -> list[LoraRef]:
    found = []
    for name, unet, te in reversed(list(chain.loras.values())):  # found from the sampler back: applied order
        found.append(LoraRef(name, unet if unet is not None else 1.0, None, te if te is not None else unet))
    return found


def read_graph(nodes: dict, picture_size=None) -> GraphRead:
    """Prompt, negative prompt, A1111 parameters, LoRAs and warnings of an API graph."""
    graph = Graph(nodes)
    chosen = graph.first_pass()
    if chosen is None:
        if graph.nodes:
            graph.warn("the ComfyUI graph has no sampler node sd1kit reads; no parameters read")
        return GraphRead(warnings=graph.warnings)
    p = graph.read_sampler(*chosen)
    positive = graph.prompt(p.positive, "positive") if p.positive is not None else None
    negative = graph.prompt(p.negative, "negative") if p.negative is not None else None
    chain = Chain()
    graph.model_chain(p.model, chain)
    graph.clip_chain(graph.clip_links.get("positive"), chain)
    size = graph.size(p.latent) or picture_size
    return GraphRead(positive or "", negative or "", _params(graph, p, chain, size), _loras(chain), graph.warnings)


# --- the UI workflow, converted to an API graph ---

_SEEDED = ("seed", "noise_seed")  # the frontend puts a control_after_generate value after these widgets
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
UI_ONLY = ("Reroute", "PrimitiveNode", "Note", "MarkdownNote")
_STACKER = ("input_mode", "lora_count", *(f"{w}_{i}" for i in range(1, 50)
                                          for w in ("lora_name", "lora_wt", "model_str", "clip_str")))
WIDGETS = {  # widget names of each node type, in the order of its INPUT_TYPES (widgets_values' order)
    "KSampler": ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "KSamplerAdvanced": ("add_noise", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "start_at_step",
                         "end_at_step", "return_with_leftover_noise"),
    "SamplerCustom": ("add_noise", "noise_seed", "cfg"), "SamplerCustomAdvanced": (), "RandomNoise": ("noise_seed",),
    "DisableNoise": (), "CFGGuider": ("cfg",), "BasicGuider": (), "DualCFGGuider": ("cfg_conds", "cfg_cond2_negative"),
    "PerpNegGuider": ("cfg", "neg_scale"), "KSamplerSelect": ("sampler_name",),
    "BasicScheduler": ("scheduler", "steps", "denoise"), "KarrasScheduler": ("steps", "sigma_max", "sigma_min", "rho"),
    "ExponentialScheduler": ("steps", "sigma_max", "sigma_min"),
    "PolyexponentialScheduler": ("steps", "sigma_max", "sigma_min", "rho"), "SDTurboScheduler": ("steps", "denoise"),
    "AlignYourStepsScheduler": ("model_type", "steps", "denoise"), "BetaSamplingScheduler": ("steps", "alpha", "beta"),
    "SplitSigmas": ("step",), "SplitSigmasDenoise": ("denoise",),
    "CheckpointLoaderSimple": ("ckpt_name",), "CheckpointLoader": ("config_name", "ckpt_name"),
    "unCLIPCheckpointLoader": ("ckpt_name",), "ImageOnlyCheckpointLoader": ("ckpt_name",),
    "UNETLoader": ("unet_name", "weight_dtype"), "LoraLoader": ("lora_name", "strength_model", "strength_clip"),
    "LoraLoaderModelOnly": ("lora_name", "strength_model"), "CLIPSetLastLayer": ("stop_at_clip_layer",),
    "CLIPTextEncode": ("text",), "CLIPTextEncodeSDXL": ("width", "height", "crop_w", "crop_h", "target_width",
                                                        "target_height", "text_g", "text_l"),
    "CLIPTextEncodeSDXLRefiner": ("ascore", "width", "height", "text"),
    "EmptyLatentImage": ("width", "height", "batch_size"), "EmptySD3LatentImage": ("width", "height", "batch_size"),
    "ModelSamplingDiscrete": ("sampling", "zsnr"), "RescaleCFG": ("multiplier",),
    "ConditioningSetTimestepRange": ("start", "end"), "ConditioningZeroOut": (), "ConditioningCombine": (),
    "ConditioningConcat": (), "ControlNetApply": ("strength",),
    "ControlNetApplyAdvanced": ("strength", "start_percent", "end_percent"), "FluxGuidance": ("guidance",),
    "PrimitiveString": ("value",), "PrimitiveStringMultiline": ("value",), "PrimitiveInt": ("value",),
    "PrimitiveFloat": ("value",), "PrimitiveBoolean": ("value",), "StringConcatenate": ("string_a", "string_b",
                                                                                          "delimiter"),
    "VAEDecode": (), "VAEEncode": (), "VAELoader": ("vae_name",), "SaveImage": ("filename_prefix",),
    "PreviewImage": (), "LoadImage": ("image", "upload"), "SaveAnimatedWEBP": ("filename_prefix", "fps", "lossless",
                                                                               "quality", "method"),
    "Efficient Loader": ("ckpt_name", "vae_name", "clip_skip", "lora_name", "lora_model_strength",
                         "lora_clip_strength", "positive", "negative", "token_normalization", "weight_interpretation",
                         "empty_latent_width", "empty_latent_height", "batch_size"),
    "KSampler (Efficient)": ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise", "preview_method",
                             "vae_decode"),
    "KSampler Adv. (Efficient)": ("add_noise", "noise_seed", "steps", "cfg", "sampler_name", "scheduler",
                                  "start_at_step", "end_at_step", "return_with_leftover_noise", "preview_method",
                                  "vae_decode"),
    "LoRA Stacker": _STACKER,
}


def _walk(names: tuple, values: list) -> tuple[list, int]:
    pairs, i = [], 0
    for name in names:
        if i >= len(values):
            break
        pairs.append((name, values[i]))
        i += 1
        if name in _SEEDED and i < len(values) and isinstance(values[i], str) and values[i] in CONTROL_VALUES:
            i += 1
    return pairs, i


def map_widgets(names: tuple, values: list) -> dict:
    """Widget values by name; the control_after_generate value after a seed is skipped when it is one."""
    return dict(_walk(names, values)[0])


def _consumed(names: tuple, values: list) -> int:
    return _walk(names, values)[1]


def _group_name(kind: str) -> str | None:
    for prefix in ("workflow>", "workflow/"):
        if kind.startswith(prefix):
            return kind[len(prefix):]
    return None


def _links(raw) -> dict:
    """Link id -> (from node, from slot, to node, to slot), from [id, from, slot, to, slot, type] lists (workflow
    0.4) or {id, origin_id, origin_slot, target_id, target_slot} objects (workflow 1)."""
    links = {}
    for item in raw if isinstance(raw, list) else []:
        key = item[0] if isinstance(item, list) and len(item) >= 5 else item.get("id") if isinstance(item, dict) \
            else None
        if not isinstance(key, (int, str)) or isinstance(key, bool):
            continue
        if isinstance(item, list):
            links[key] = tuple(item[1:5])
        else:
            links[key] = (item.get("origin_id"), item.get("origin_slot"), item.get("target_id"),
                          item.get("target_slot"))
    return links


_MISSING = object()


class Workflow:
    """A UI workflow (nodes with widget values, links by id) turned into the API graph it would queue."""

    def __init__(self, data: dict):
        self.warnings: list[str] = []
        self.nodes: dict[str, dict] = {}
        raw = data.get("nodes")
        for node in raw if isinstance(raw, list) else []:
            if isinstance(node, dict) and isinstance(node.get("id"), (int, str)) and not isinstance(node["id"], bool):
                self.nodes.setdefault(str(node["id"]), node)
        self.links = _links(data.get("links"))
        extra = data.get("extra") if isinstance(data.get("extra"), dict) else {}
        self.groups = extra.get("groupNodes") if isinstance(extra.get("groupNodes"), dict) else {}
        definitions = data.get("definitions") if isinstance(data.get("definitions"), dict) else {}
        subgraphs = definitions.get("subgraphs") if isinstance(definitions.get("subgraphs"), list) else []
        self.subgraphs = {s.get("id") for s in subgraphs if isinstance(s, dict) and isinstance(s.get("id"), str)}
        self.unknown: set[str] = set()
        self.group_outputs: dict[str, list] = {}

    def warn(self, text: str) -> None:
        if text not in self.warnings and len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(text)

    def convert(self) -> dict:
        api: dict[str, dict] = {}
        for key, node in self.nodes.items():
            kind = node.get("type")
            if not isinstance(kind, str) or kind in UI_ONLY or node.get("mode", 0) in (2, 4):
                continue  # muted (2) nodes do not run; bypassed (4) ones are passed through by the links
            if _group_name(kind) is not None:
                self.expand(key, node, api)
            elif kind in self.subgraphs:
                self.warn(f"node {key[:20]} is a subgraph ({kind[:40]}); the nodes inside it are not read")
            else:
                api[key] = {"class_type": kind, "inputs": self.node_inputs(node)}
        if self.unknown:
            names = ", ".join(sorted(self.unknown))[:200]
            self.warn(f"the UI workflow's widget values of node types sd1kit does not know were not read: {names}")
        return api

    def widgets(self, node: dict) -> dict:
        raw, kind = node.get("widgets_values"), node.get("type")
        if isinstance(raw, dict):  # some custom nodes save their widgets by name
            return {k: v for k, v in raw.items() if isinstance(k, str)}
        if not isinstance(raw, list) or not raw:
            return {}
        names = WIDGETS.get(kind)
        if names is None:  # newer frontends name every widget among the node's inputs
            slots = node.get("inputs") if isinstance(node.get("inputs"), list) else []
            named = tuple(s["widget"]["name"] for s in slots if isinstance(s, dict)
                          and isinstance(s.get("widget"), dict) and isinstance(s["widget"].get("name"), str))
            values = map_widgets(named, raw)
            if named and len(values) == len(named) and _consumed(named, raw) == len(raw):
                return values
            self.unknown.add(str(kind)[:60])
            return {}
        return map_widgets(names, raw)

    def node_inputs(self, node: dict) -> dict:
        values = self.widgets(node)
        for slot in node.get("inputs") if isinstance(node.get("inputs"), list) else []:
            if not isinstance(slot, dict) or slot.get("link") is None:
                continue
            widget = slot.get("widget")
            name = widget.get("name") if isinstance(widget, dict) else slot.get("name")
            if isinstance(name, str):
                source = self.source(slot["link"])
                if source is not _MISSING:
                    values[name] = source
        return values

    def source(self, link_id, depth: int = 0):
        """What a link brings: [node id, slot] in the API graph, a primitive's value, or _MISSING."""
        entry = self.links.get(link_id) if isinstance(link_id, (int, str)) else None
        node = self.nodes.get(str(entry[0])) if entry is not None else None
        if node is None or depth >= MAX_DEPTH:
            self.warn(f"link {str(link_id)[:20]} leads to no node of the workflow; not followed")
            return _MISSING
        kind, mode, slot = node.get("type"), node.get("mode", 0), entry[1]
        if kind == "PrimitiveNode":
            values = node.get("widgets_values")
            return values[0] if isinstance(values, list) and values else _MISSING
        if kind == "Reroute" or mode == 4:  # a bypassed node passes on the input of its output's type
            return self.through(node, slot, depth)
        if mode == 2:
            self.warn(f"node {str(entry[0])[:20]} ({str(kind)[:40]}) is muted; what it would give is not read")
            return _MISSING
        if isinstance(kind, str) and _group_name(kind) is not None:
            return self.group_output(str(entry[0]), node, slot)
        return [str(entry[0]), slot]

    def through(self, node: dict, slot, depth: int):
        outputs = node.get("outputs") if isinstance(node.get("outputs"), list) else []
        out = outputs[slot] if isinstance(slot, int) and 0 <= slot < len(outputs) else {}
        wanted = out.get("type") if isinstance(out, dict) else None
        for item in node.get("inputs") if isinstance(node.get("inputs"), list) else []:
            if isinstance(item, dict) and item.get("link") is not None and \
                    (node.get("type") == "Reroute" or wanted is None or item.get("type") == wanted):
                return self.source(item["link"], depth + 1)
        return _MISSING

    # --- group nodes (extra.groupNodes[NAME] = {nodes, links [from, slot, to, slot, ...], external}) ---

    def group(self, name: str) -> tuple[list, dict] | None:
        spec = self.groups.get(name)
        if not isinstance(spec, dict) or not isinstance(spec.get("nodes"), list):
            return None
        inner = [n if isinstance(n, dict) else {} for n in spec["nodes"]]
        internal = {}
        for link in spec.get("links") if isinstance(spec.get("links"), list) else []:
            if isinstance(link, list) and len(link) >= 4 and all(isinstance(v, int) for v in link[:4]):
                internal[(link[2], link[3])] = (link[0], link[1])
        return inner, internal

    def group_output(self, key: str, node: dict, slot):
        """The inner node output behind a group node's output: inner outputs in order, those used only inside
        the group hidden (as the frontend's GroupNodeConfig shows them)."""
        name = _group_name(node.get("type"))
        found = self.group(name)
        if found is None:
            return _MISSING
        inner, internal = found
        if key not in self.group_outputs:
            spec = self.groups[name]
            listed = spec.get("external") if isinstance(spec.get("external"), list) else []
            external = {(e[0], e[1]) for e in listed
                        if isinstance(e, list) and len(e) >= 2 and all(isinstance(v, int) for v in e[:2])}
            sources = set(internal.values())
            self.group_outputs[key] = [(i, s) for i, n in enumerate(inner)
                                       for s in range(len(n.get("outputs") or []) if isinstance(n.get("outputs"), list)
                                                      else 0)
                                       if (i, s) in external or (i, s) not in sources]
        outputs = self.group_outputs[key]
        if not isinstance(slot, int) or not 0 <= slot < len(outputs):
            self.warn(f"group node {key[:20]} has no output {str(slot)[:10]} sd1kit can place")
            return _MISSING
        return [f"{key}:{outputs[slot][0]}", outputs[slot][1]]

    def expand(self, key: str, node: dict, api: dict) -> None:
        name = _group_name(node["type"])
        found = self.group(name)
        if found is None:
            self.warn(f"node {key[:20]} is the group node {name[:40]!r}, whose definition (extra.groupNodes) the "
                      "workflow lacks; the nodes inside it are not read")
            return
        inner, internal = found
        values = self.group_values(key, node, inner)
        external = self.group_inputs(key, node, inner, internal)
        for i, sub in enumerate(inner):
            kind = sub.get("type")
            if not isinstance(kind, str) or kind in UI_ONLY:
                continue
            inputs = self.widgets({**sub, "widgets_values": values[i]})
            for j, slot in enumerate(sub.get("inputs") if isinstance(sub.get("inputs"), list) else []):
                widget = slot.get("widget") if isinstance(slot, dict) else None
                input_name = widget.get("name") if isinstance(widget, dict) else \
                    slot.get("name") if isinstance(slot, dict) else None
                if not isinstance(input_name, str):
                    continue
                if (i, j) in internal:
                    src, src_slot = internal[(i, j)]
                    source = inner[src] if 0 <= src < len(inner) else {}
                    if source.get("type") == "PrimitiveNode":
                        if values[src]:
                            inputs[input_name] = values[src][0]
                    else:
                        inputs[input_name] = [f"{key}:{src}", src_slot]
                elif (i, j) in external:
                    inputs[input_name] = external[(i, j)]
            api[f"{key}:{i}"] = {"class_type": kind, "inputs": inputs}

    def group_values(self, key: str, node: dict, inner: list) -> list[list]:
        """Each inner node's widget values: the group node's own, cut in the inner nodes' counts, when they line
        up; else the group definition's."""
        own = node.get("widgets_values")
        defaults = [n["widgets_values"] if isinstance(n.get("widgets_values"), list) else [] for n in inner]
        if isinstance(own, list) and len(own) == sum(len(d) for d in defaults):
            out, at = [], 0
            for d in defaults:
                out.append(own[at:at + len(d)])
                at += len(d)
            return out
        if isinstance(own, list) and own:
            self.warn(f"group node {key[:20]}: its widget values do not line up with its nodes'; the group "
                      "definition's values were read")
        return defaults

    def group_inputs(self, key: str, node: dict, inner: list, internal: dict) -> dict:
        """(inner node, input slot) -> what the group node's matching input brings, matched in order."""
        wanted = [(i, j, slot.get("name")) for i, n in enumerate(inner)
                  for j, slot in enumerate(n.get("inputs") if isinstance(n.get("inputs"), list) else [])
                  if isinstance(slot, dict) and (i, j) not in internal and not isinstance(slot.get("widget"), dict)]
        given = [s for s in (node.get("inputs") if isinstance(node.get("inputs"), list) else [])
                 if isinstance(s, dict) and not isinstance(s.get("widget"), dict)]
        if len(wanted) != len(given):
            self.warn(f"group node {key[:20]}: its inputs do not line up with its nodes'; matched by name")
            by_name = {}
            for i, j, name in wanted:
                if isinstance(name, str):
                    by_name.setdefault(name, (i, j, name))
            pairs = [(by_name[s["name"]], s) for s in given if isinstance(s.get("name"), str) and s["name"] in by_name]
        else:
            pairs = list(zip(wanted, given))
        out = {}
        for (i, j, _name), slot in pairs:
            if slot.get("link") is not None:
                source = self.source(slot["link"])
                if source is not _MISSING:
                    out[(i, j)] = source
        return out


# --- the reader ---

def graph_texts(found: Containers) -> dict[str, str]:
    """The `prompt` and `workflow` JSON texts: PNG chunks, or EXIF strings `prompt:{...}` / `Workflow: {...}`."""
    out = {k: found.texts[k] for k in ("prompt", "workflow")
           if isinstance(found.texts.get(k), str) and found.texts[k].lstrip()[:1] == "{"}
    for where in EXIF_GRAPH_KEYS:
        text = found.texts.get(where)
        m = _EXIF_GRAPH.match(text) if isinstance(text, str) else None
        if m:
            out.setdefault(m.group(1).lower(), text[m.end():])
    return out


def _load(texts: dict, key: str, warnings: list):
    if key not in texts:
        return None
    try:
        return load_json(texts[key], f"the ComfyUI {key}")
    except ValueError as e:
        warnings.append(f"the ComfyUI {key} JSON is malformed ({str(e)[:80]}); not read")
        return None


def _is_api_graph(data) -> bool:
    return isinstance(data, dict) and any(isinstance(n, dict) and "class_type" in n for n in data.values())


def _ui_workflow(data) -> dict | None:
    if isinstance(data, dict) and isinstance(data.get("workflow"), dict) and "nodes" not in data:
        data = data["workflow"]  # savers that dump all of extra_pnginfo
    return data if isinstance(data, dict) and isinstance(data.get("nodes"), list) else None


def _from_saver(info: PictureInfo, found: Containers, beside, nodes) -> PictureInfo:
    """The A1111 text a saver node wrote beside the graph; the graph's LoRAs when the text names none."""
    from sd1kit.metadata.readers import a1111

    written = a1111.from_infotext(beside[1], found.path, beside[0], comfy=True)
    info.prompt, info.negative_prompt = written.prompt, written.negative_prompt
    info.parameters, info.loras = written.parameters, written.loras
    info.warnings += written.warnings
    info.app = "ComfyUI (A1111-compatible saver)"
    if not info.loras and nodes is not None:
        info.loras = read_graph(nodes, found.size).loras
    return info


def read(found: Containers) -> PictureInfo | None:
    texts = graph_texts(found)
    if not texts:
        return None
    warnings: list[str] = []
    nodes = _load(texts, "prompt", warnings)
    nodes = nodes if _is_api_graph(nodes) else None
    workflow = _ui_workflow(_load(texts, "workflow", warnings))
    if nodes is None and workflow is None:
        if warnings:
            raise ValueError(warnings[0])
        return None
    from sd1kit.metadata.readers import a1111

    info = PictureInfo(path=found.path, tool="comfyui", app="ComfyUI", graph=nodes, raw=dict(found.texts),
                       picture_size=found.size, warnings=warnings)
    beside = a1111.infotext_of(found)
    if beside is not None:
        return _from_saver(info, found, beside, nodes)
    if nodes is None:
        converted = Workflow(workflow)
        nodes_read = converted.convert()
        info.warnings += converted.warnings
        info.app = "ComfyUI (from the UI workflow)"
    else:
        nodes_read = nodes
    result = read_graph(nodes_read, found.size)
    info.prompt, info.negative_prompt, info.parameters, info.loras = \
        result.prompt, result.negative, result.parameters, result.loras
    info.warnings += result.warnings
    return info
