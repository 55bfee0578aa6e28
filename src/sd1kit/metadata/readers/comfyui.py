"""ComfyUI pictures: the `prompt` chunk holds the API graph ({id: {class_type, inputs}}), where an input is a
value or a link [node id, output index]. The sampler node is found and its links walked back to the prompt texts,
the checkpoint, the LoRA loaders, CLIP skip, the latent size and the sampling settings. The graph is kept whole;
`workflow` (the UI graph) is kept raw. An A1111-style `parameters` chunk written beside it (saver nodes that
write both) is preferred for the parameters."""

from __future__ import annotations

from collections import deque

from sd1kit.metadata.containers import Containers
from sd1kit.metadata.limits import load_json
from sd1kit.metadata.picture import LoraRef, PictureInfo, text_number
from sd1kit.metadata.readers.names import a1111_sampler, a1111_schedule

SAMPLER_NODES = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")
CHECKPOINT_INPUTS = ("ckpt_name", "model_name", "unet_name")
TEXT_INPUTS = ("text", "text_g", "text_l", "prompt", "string", "value")
MAX_DEPTH = 64


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int)) \
        and isinstance(value[1], int)


class Graph:
    def __init__(self, nodes: dict):
        self.nodes = {str(k): v for k, v in nodes.items() if isinstance(v, dict)}
        self._plain: dict[int, list] = {}  # id(node) -> its inputs that are not links (walks ask again and again)

    def plain(self, node: dict) -> list:
        if id(node) not in self._plain:
            self._plain[id(node)] = [v for v in self.inputs(node).values() if not _is_link(v)]
        return self._plain[id(node)]

    def node(self, link) -> dict | None:
        return self.nodes.get(str(link[0])) if _is_link(link) else None

    def inputs(self, node: dict) -> dict:
        inputs = node.get("inputs")
        return inputs if isinstance(inputs, dict) else {}

    def value(self, node: dict, key: str, depth: int = 0):
        """An input's value, following a link to a primitive-like node (its first plain value)."""
        value = self.inputs(node).get(key)
        if _is_link(value) and depth < MAX_DEPTH:
            source = self.node(value)
            if source is None:
                return None
            plain = self.plain(source)
            return plain[0] if len(plain) == 1 else self.value(source, key, depth + 1)
        return value

    def upstream(self, node: dict, key: str):
        """The nodes reached by following input `key` back, then any conditioning/model-like link, breadth
        first, nearest first; cycles and very deep graphs stop the walk."""
        seen, queue = set(), deque([self.inputs(node).get(key)])
        while queue and len(seen) < 10 * MAX_DEPTH:
            link = queue.popleft()
            target = self.node(link)
            if target is None or str(link[0]) in seen:
                continue
            seen.add(str(link[0]))
            yield target
            queue.extend(v for v in self.inputs(target).values() if _is_link(v))

    def text(self, node: dict, key: str) -> str | None:
        for source in self.upstream(node, key):
            for name in TEXT_INPUTS:
                value = self.value(source, name)
                if isinstance(value, str):
                    return value
        return None


def _sampler_node(graph: Graph) -> dict | None:
    """The first-pass sampler: one fed by an empty latent if there is one, else the lowest-numbered sampler."""
    samplers = [(k, n) for k, n in graph.nodes.items() if n.get("class_type") in SAMPLER_NODES]
    if not samplers:
        return None
    key = lambda item: (not str(item[0]).isdigit(), int(item[0]) if str(item[0]).isdigit() else 0, str(item[0]))
    samplers.sort(key=key)
    for _k, node in samplers:
        latent = graph.node(graph.inputs(node).get("latent_image"))
        if latent is not None and "Empty" in str(latent.get("class_type", "")):
            return node
    return samplers[0][1]


def _model_chain(graph: Graph, sampler: dict) -> tuple[str | None, list[LoraRef], str | None]:
    checkpoint, loras, prediction = None, [], None
    for node in graph.upstream(sampler, "model"):
        kind, inputs = str(node.get("class_type", "")), graph.inputs(node)
        if "lora" in kind.lower() and isinstance(inputs.get("lora_name"), str):
            model_w, clip_w = inputs.get("strength_model", 1.0), inputs.get("strength_clip")
            name = inputs["lora_name"].replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
            loras.append(LoraRef(name, _float(model_w), None, _float(clip_w if clip_w is not None else model_w)))
        elif kind == "ModelSamplingDiscrete" and inputs.get("sampling") == "v_prediction":
            prediction = "v"
        for name in CHECKPOINT_INPUTS:
            if checkpoint is None and isinstance(inputs.get(name), str):
                checkpoint = inputs[name]
    return checkpoint, loras, prediction


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _clip_skip(graph: Graph, sampler: dict) -> int | None:
    for node in graph.upstream(sampler, "positive"):
        if node.get("class_type") == "CLIPSetLastLayer":
            layer = graph.value(node, "stop_at_clip_layer")
            if isinstance(layer, int) and layer < 0:
                return -layer
    return None


def _size(graph: Graph, sampler: dict) -> tuple | None:
    for node in graph.upstream(sampler, "latent_image"):
        w, h = graph.value(node, "width"), graph.value(node, "height")
        if isinstance(w, int) and isinstance(h, int):
            return w, h
    return None


def _stem(name: str | None) -> str | None:
    if not name:
        return None
    return name.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]


def read_graph(nodes: dict, picture_size=None) -> tuple[str, str, dict, list[LoraRef]]:
    graph = Graph(nodes)
    sampler = _sampler_node(graph)
    if sampler is None:
        return "", "", {}, []
    checkpoint, loras, prediction = _model_chain(graph, sampler)
    sampler_name, _ = a1111_sampler(graph.value(sampler, "sampler_name"))
    size = _size(graph, sampler) or picture_size
    denoise = graph.value(sampler, "denoise")
    seed = graph.value(sampler, "seed")
    if seed is None:
        seed = graph.value(sampler, "noise_seed")
    params = {
        "Steps": text_number(graph.value(sampler, "steps")), "Sampler": sampler_name,
        "Schedule type": a1111_schedule(graph.value(sampler, "scheduler")),
        "CFG scale": text_number(graph.value(sampler, "cfg")), "Seed": text_number(seed),
        "Size": f"{size[0]}x{size[1]}" if size else None, "Model": _stem(checkpoint),
        "Denoising strength": text_number(denoise) if isinstance(denoise, (int, float)) and denoise < 1 else None,
        "Clip skip": text_number(_clip_skip(graph, sampler)),
        "Prediction": "v" if prediction else None,
    }
    positive, negative = graph.text(sampler, "positive") or "", graph.text(sampler, "negative") or ""
    return positive, negative, {k: v for k, v in params.items() if v is not None}, loras


def read(found: Containers) -> PictureInfo | None:
    text = found.texts.get("prompt")
    if not text or not text.lstrip().startswith("{"):
        return None
    nodes = load_json(text, "the ComfyUI prompt")
    if not isinstance(nodes, dict) or not any(isinstance(n, dict) and "class_type" in n for n in nodes.values()):
        return None
    from sd1kit.metadata.readers import a1111

    info = PictureInfo(path=found.path, tool="comfyui", app="ComfyUI", graph=nodes, raw=dict(found.texts),
                       picture_size=found.size)
    beside = a1111.infotext_of(found)
    if beside is not None:  # an A1111-compatible saver wrote the parameters too
        written = a1111.from_infotext(beside[1], found.path, beside[0])
        info.prompt, info.negative_prompt = written.prompt, written.negative_prompt
        info.parameters, info.loras = written.parameters, written.loras
        info.app = "ComfyUI (A1111-compatible saver)"
        return info
    info.prompt, info.negative_prompt, info.parameters, info.loras = read_graph(nodes, found.size)
    return info
