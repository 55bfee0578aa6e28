"""What a picture says about how it was made, in one structure whatever tool wrote it: the prompt, the negative
prompt and the parameters under A1111's names (values as written), the LoRAs with their hashes, and the raw texts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sd1kit.metadata.infotext import create_infotext
from sd1kit.metadata.limits import load_json
from sd1kit.prompts.extra_networks import ADAPTER_KINDS, parse_extra_networks

TOOLS = ("a1111", "novelai", "comfyui", "invokeai", "fooocus", "swarmui", "civitai", "drawthings", "ruinedfooocus",
         "stabilitymatrix", "diffusers", "unknown")
_SIZE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")


@dataclass
class LoraRef:
    name: str
    weight: float | None = None  # the UNet multiplier (A1111: te unless unet is given)
    hash: str | None = None
    te_weight: float | None = None

    def as_json(self) -> dict:
        return {"name": self.name, "weight": self.weight, "hash": self.hash}


@dataclass
class PictureInfo:
    path: str | None = None
    tool: str | None = None  # one of TOOLS, or None when the picture carries no metadata
    app: str | None = None  # the writer's own name/version where it says ("v1.10.1", "Forge f2.0.1...", "ComfyUI")
    prompt: str = ""
    negative_prompt: str = ""
    parameters: dict[str, str] = field(default_factory=dict)  # A1111 keys, values as written, in order
    loras: list[LoraRef] = field(default_factory=list)
    raw: dict[str, str] = field(default_factory=dict)
    graph: dict | None = None  # ComfyUI's API graph, kept whole
    picture_size: tuple[int, int] | None = None
    warnings: list[str] = field(default_factory=list)

    # --- typed views of the parameters ---
    def _get(self, key: str, kind=str):
        value = self.parameters.get(key)
        if value is None:
            return None
        try:
            return kind(value) if kind is not float else float(str(value).strip())
        except (TypeError, ValueError):
            return None

    @property
    def size(self) -> tuple[int, int] | None:
        m = _SIZE.match(str(self.parameters.get("Size", "")))
        return (int(m.group(1)), int(m.group(2))) if m else self.picture_size

    @property
    def sampler_and_schedule(self) -> tuple[str | None, str | None]:
        """The sampler and schedule type, a legacy combined name ("DPM++ 2M Karras") split as A1111 does."""
        from sd1kit.metadata.readers.names import a1111_sampler

        written = self.parameters.get("Sampler")
        sampler, legacy = a1111_sampler(written)
        schedule = self.parameters.get("Schedule type") or legacy
        if schedule is None and written and self.tool in ("a1111", "civitai"):
            schedule = "Automatic"  # A1111's default for infotexts without the key
        return sampler, schedule

    @property
    def clip_skip(self) -> int | None:
        value = self._get("Clip skip", int)
        return 1 if value is None and self.tool in ("a1111", "civitai") else value  # A1111: absent means 1

    def as_json(self) -> dict:
        size = self.size
        sampler, schedule = self.sampler_and_schedule
        return {
            "path": self.path, "tool": self.tool, "app": self.app,
            "prompt": self.prompt if self.tool else None,
            "negative_prompt": self.negative_prompt if self.tool else None,
            "steps": self._get("Steps", int), "sampler": sampler,
            "schedule_type": schedule, "cfg_scale": self._get("CFG scale", float),
            "seed": self._get("Seed", int),
            "width": size[0] if size else None, "height": size[1] if size else None,
            "model": self._get("Model"), "model_hash": self._get("Model hash"), "clip_skip": self.clip_skip,
            "loras": [lora.as_json() for lora in self.loras],
            "parameters": dict(self.parameters), "raw": dict(self.raw), "warnings": list(self.warnings),
        }

    def to_infotext(self) -> str:
        """The A1111 infotext that means the same generation (LoRAs of graph-based tools as `<lora:...>` tags)."""
        prompt = self.prompt
        in_prompt = {n.name for n in parse_extra_networks(prompt)[1] if n.kind in ADAPTER_KINDS}
        for lora in self.loras:
            if lora.name not in in_prompt:
                te = lora.te_weight if lora.te_weight is not None else lora.weight
                weights = _num(te) if te == lora.weight or lora.weight is None else f"{_num(te)}:{_num(lora.weight)}"
                prompt += f" <lora:{lora.name}:{weights}>"
        return create_infotext(prompt.strip(), self.negative_prompt, self.parameters)


def _num(value) -> str:
    if value is None:
        return "1"
    return str(int(value)) if float(value).is_integer() else str(value)


def as_number(value) -> float | None:
    """A weight as a reader may find it (7, 0.5, "0.5"), or None for anything else (a word, a list, a dict)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except (ValueError, OverflowError):
        return None


def text_number(value) -> str | None:
    """A number as infotexts write it (7.0 -> "7"), None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def loras_from_prompt(prompt: str, params: dict[str, str]) -> list[LoraRef]:
    """`<lora:...>` / `<lyco:...>` tags of an A1111 prompt, with hashes from `Lora hashes` or civitai's `Hashes`."""
    hashes = lora_hashes(params)
    found = []
    for net in parse_extra_networks(prompt)[1]:
        if net.kind in ADAPTER_KINDS and net.name:
            alias = net.name.replace(":", "").replace(",", "")
            found.append(LoraRef(net.name, net.multipliers["unet"], hashes.get(alias) or hashes.get(net.name),
                                 net.multipliers["te"]))
    return found


def lora_hashes(params: dict[str, str]) -> dict[str, str]:
    hashes: dict[str, str] = {}
    for item in str(params.get("Lora hashes", "")).split(","):
        name, sep, value = item.strip().rpartition(":")
        if sep and name.strip():
            hashes[name.strip()] = value.strip()
    raw = params.get("Hashes")
    if raw:
        try:
            table = load_json(raw, "Hashes") if isinstance(raw, str) else raw
        except ValueError:
            table = {}
        if isinstance(table, dict):
            for key, value in table.items():
                if isinstance(key, str) and key.startswith("lora:") and isinstance(value, str):
                    hashes.setdefault(key[5:], value)
    return hashes
