"""The option table's surfaces: the `generate` flags and their parsing, the A1111 API payload parser (its pydantic
models, in `server/payloads.py`), each generated from `options.OPTIONS` (and the table walk's helpers that set one
row on each)."""

from __future__ import annotations

from sd1kit.errors import Sd1kitError
from sd1kit.pipeline.options import INPAINTING_FILL, OPTIONS, Option, _bool_text, _whole, parse_pair


def _api_value(payload: dict, name: str):
    if name.startswith("override_settings."):
        settings = payload.get("override_settings") or {}
        if not isinstance(settings, dict):
            raise Sd1kitError("override_settings", "expected a JSON object")
        return settings.get(name.split(".", 1)[1])
    return payload.get(name)


def _api_convert(option: Option, raw):
    if option.from_api is not None:
        return option.from_api(raw)
    if option.kind is bool:
        return _bool_text(raw) if isinstance(raw, str) else bool(raw)
    if option.kind is int:
        return _whole(raw)
    if option.kind is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise ValueError(raw)
        return float(raw)
    return str(raw)


def _api_names(option: Option) -> tuple[str, ...]:
    return option.api if isinstance(option.api, tuple) else (option.api,)


def _api_rows(kind: str):
    """The rows a txt2img / img2img payload can set."""
    return [o for o in OPTIONS if o.api is not None and (o.mode is None or o.mode == kind)]


def options_from_api(payload: dict, kind: str) -> dict:
    """Request fields from an A1111 txt2img / img2img payload, by the table: only fields the payload has (hires
    fields only with `enable_hr`, as A1111 ignores them otherwise)."""
    values = {}
    hires = kind == "txt2img" and bool(payload.get("enable_hr"))
    for option in _api_rows(kind):
        if option.attr.startswith("hr_") and not hires:
            continue
        names = _api_names(option)
        raws = [_api_value(payload, n) for n in names]
        if all(r is None for r in raws):
            continue
        raw = tuple(raws) if len(raws) > 1 else raws[0]
        try:
            value = _api_convert(option, raw)
        except (ValueError, TypeError, OverflowError):
            what = "two whole numbers" if option.kind is tuple else f"a valid {option.kind.__name__}"
            raise Sd1kitError("/".join(names), f"{raw!r} is not {what}") from None
        if value is None:
            continue
        option.check(value, names[0])
        values.update(option.changes(value))
    if not payload.get("sampler_name") and payload.get("sampler_index"):  # older clients
        values["sampler"] = str(payload["sampler_index"])
    return values


def add_cli_flags(parser) -> None:
    """`generate`'s option flags, one per row; each defaults to None (= not given)."""
    import argparse

    for option in OPTIONS:
        if option.cli is None:
            continue
        kw: dict = {"dest": option.attr, "default": None, "help": option.help or None}
        if option.kind is bool and option.attr != "per_image":  # --x / --no-x: a picture's switch can be undone
            kw["action"] = argparse.BooleanOptionalAction
        elif option.kind is bool:
            kw["action"] = "store_const"
            kw["const"] = not option.default
        elif option.kind is tuple:
            kw["metavar"] = "WxH"  # parsed by options_from_cli, whose error names the flag in one line
        else:
            kw["type"], kw["metavar"] = option.kind, option.cli[2:].upper().replace("-", "_")
            if option.choices:
                kw["choices"], kw["metavar"] = option.choices, None
        parser.add_argument(option.cli, **kw)


def options_from_cli(args) -> dict:
    """Request fields of the flags given on the command line."""
    values = {}
    for option in OPTIONS:
        value = getattr(args, option.attr, None) if option.cli else None
        if isinstance(value, str) and option.kind is tuple:
            value = parse_pair(value, option.cli)
            if option.attr in ("seed_resize_from", "hr_resize"):  # 0x0: unset, as A1111 reads it
                value = option.from_api(value)
        if value is not None:
            option.check(value, option.cli)
            values.update(option.changes(value))
    return values


def cli_args(option: Option, value) -> list[str]:
    """The command-line words that set `option` to `value` (the table walk's CLI side)."""
    if option.kind is bool:
        if option.attr == "per_image":
            return [option.cli] if value != option.default else []
        return [option.cli if value else "--no-" + option.cli[2:]]
    if option.kind is tuple:
        return [option.cli, "{}x{}".format(*value)]
    return [option.cli, str(value)]


def api_fields(option: Option, value) -> dict:
    """The payload fields that set `option` to `value` (the table walk's API side)."""
    names = _api_names(option)
    values = value if option.kind is tuple else (option.to_api(value) if option.to_api else value,)
    if option.attr == "masked_content":
        values = (INPAINTING_FILL.index(value),)
    payload: dict = {}
    for name, v in zip(names, values):
        if name.startswith("override_settings."):
            payload.setdefault("override_settings", {})[name.split(".", 1)[1]] = v
        else:
            payload[name] = v
    return payload
