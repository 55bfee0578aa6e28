"""Building a plan's modifiers from a request (in `modifiers.ORDER`) and its textual inversions."""

from __future__ import annotations

from sd1kit.pipeline.modifiers import (
    ControlNetModifier, DeepCacheModifier, HypernetModifier, LoraModifier, TaesdModifier, TokenMergingModifier,
)


def build_modifiers(request, model, networks, warnings: list[str], hires_networks=None) -> list:
    """LoRA stack, hypernetworks, token merging, DeepCache, ControlNet units, TAESD: those the request asks for,
    in order. `hires_networks`: the hires prompt's, where it has its own prompt; other networks than the first
    pass's make two stacks, each applied around its own pass (as A1111 activates the hires prompt's networks for
    the second pass: none there means none)."""
    for net in networks:
        if net.kind not in ("lora", "lyco", "hypernet"):
            warnings.extend([f"{net.tag}: {p}" for p in net.problems] or [f"{net.tag}: not applied"])
    out = []
    for kinds, build in ((("lora", "lyco"), _lora), (("hypernet",), _hypernets)):
        mine = [n for n in networks if n.kind in kinds]
        hires_mine = None if hires_networks is None else [n for n in hires_networks if n.kind in kinds]
        out += _per_pass(build, request, model, mine, hires_mine, warnings)
    if request.token_merging:
        out.append(TokenMergingModifier(request.token_merging))
    if request.deepcache > 1:
        out.append(DeepCacheModifier(request.deepcache))
    if request.controlnets:
        from sd1kit.pipeline.controlnet import ControlSet

        out.append(ControlNetModifier(ControlSet(request.controlnets, model.device, model.dtype)))
    if request.vae_decoder == "TAESD":
        from sd1kit.pipeline.taesd import find_taesd

        out.append(TaesdModifier(str(request.taesd or find_taesd(None))))
    return out


def _same(a, b) -> bool:
    def key(nets):
        return [(n.kind, n.name, sorted(n.multipliers.items())) for n in nets]
    return key(a) == key(b)


def _per_pass(build, request, model, networks, hires_networks, warnings: list[str]) -> list:
    """One modifier for both passes, or the first pass's and the hires prompt's, each `only` on its pass (its
    hashes naming both passes' files, as A1111 writes them after the first's)."""
    if hires_networks is None or _same(networks, hires_networks):
        one = build(request, model, networks, warnings)
        return [one] if one is not None else []
    first = build(request, model, networks, warnings)
    hires = build(request, model, hires_networks, warnings)
    out = []
    if first is not None:
        first.only = "first"
        out.append(first)
    if hires is not None:
        hires.only = "hires"
        hires.hashes = list(dict.fromkeys([*(first.hashes if first else []), *hires.hashes]))
        out.append(hires)
    return out


def _hypernets(request, model, networks, warnings: list[str]) -> HypernetModifier | None:
    """The prompt's `<hypernet:NAME:STRENGTH>` files, in prompt order (A1111 loads each name once: a repeated
    name keeps its first place and takes the last strength), with their hashes."""
    from sd1kit.adapters.hypernetwork import find_hypernetwork, load_hypernetwork, short_hash

    chosen: dict[str, float] = {}
    for net in networks:
        warnings += [f"{net.tag}: {p}" for p in net.problems]
        chosen[net.name] = float(net.multipliers["weight"])
    stack, hashes = [], []
    for name, strength in chosen.items():
        path = find_hypernetwork(name, request.hypernetwork_dir, request.hypernet_hashes.get(name))
        stack.append((load_hypernetwork(path), strength))
        hashes.append(f"{name.replace(':', '').replace(',', '')}: {short_hash(path)}")
    return HypernetModifier(stack, hashes) if stack else None


def _lora(request, model, networks, warnings: list[str]) -> LoraModifier | None:
    """The prompt's `<lora:...>` / `<lyco:...>` files found and stacked, with the infotext's `Lora hashes`."""
    from sd1kit.adapters.file import open_adapter
    from sd1kit.adapters.library import find_adapter, request_folders, short_hash
    from sd1kit.adapters.stack import ActiveAdapter, AdapterStack
    from sd1kit.merge.blocks import parse_lbw

    adapters, hashes, names = [], [], []
    folders = request_folders(request.lora_dir)
    for net in networks:
        warnings += [f"{net.tag}: {p}" for p in net.problems]
        path = find_adapter(net.name, folders, request.lora_hashes.get(net.name))
        m = net.multipliers
        blocks = parse_lbw(m["lbw"], net.tag) if m.get("lbw") else None
        adapters.append(ActiveAdapter(open_adapter(path), net.name, m["te"], m["unet"], m["dyn"], blocks))
        alias = net.name.replace(":", "").replace(",", "")
        hashes.append(f"{alias}: {short_hash(path)}")
        names.append(str(path))
    if not adapters:
        return None
    return LoraModifier(AdapterStack(adapters, model.weight_shapes()), hashes, names)


def embeddings_for(request, model, passes, warnings: list[str]):
    """The textual-inversion database and the names the passes' prompts use (sorted)."""
    from sd1kit.pipeline.plan import embeddings_folder
    from sd1kit.prompts.chunks import build_chunks
    from sd1kit.prompts.embeddings import load_embedding_dir
    from sd1kit.prompts.schedule import prompt_schedule

    folder = embeddings_folder(request)
    if folder is None:
        return None, ()
    db = load_embedding_dir(folder, model.tokenizer, width=model.modules.text_encoder_config.hidden_size)
    warnings += [f"embedding {path} skipped: {why}" for path, why in db.skipped.items()]
    used = set()
    for p in passes:
        for text in (p.prompt, p.negative):
            for _, part in prompt_schedule(text, p.prompt_steps, p.hires_steps, request.old_prompt_editing):
                chunks = build_chunks(part, model.tokenizer, db, request.emphasis)[0]
                used.update(fix.name for chunk in chunks for fix in chunk.fixes)
    return db, tuple(sorted(used))
