from __future__ import annotations

import json
from pathlib import Path

import pytest

from sd1kit.cli import main
from sd1kit.dev.tiny import write_tiny_model


@pytest.fixture(autouse=True)
def _private_hash_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SD1KIT_CACHE_DIR", str(tmp_path / "cache"))


LAYOUT_FILES = {
    "sd15": "sd15-pruned-fp16.safetensors",
    "nai": "animefull-final-pruned.ckpt",
    "wd": "wd-v1-3-full.ckpt",
    "easyfluff": "EasyFluffV10.1.safetensors",
    "inpainting": "sd-v1-5-inpainting.safetensors",
    "diffusers": "sd15-diffusers",
    "nai-official": "nai-anime-v1-full",
}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """One tiny model per factory layout, written once per test session (read-only for tests)."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {layout: write_tiny_model(root / name, layout=layout) for layout, name in LAYOUT_FILES.items()}


@pytest.fixture
def copy_model(tiny_models, tmp_path):
    """A private copy of a tiny model (for tests that add files beside it or change it)."""
    import shutil

    def copy(layout: str, name: str | None = None) -> Path:
        src = tiny_models[layout]
        dst = tmp_path / (name or src.name)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy(src, dst)
            if src.with_suffix(".yaml").exists():
                shutil.copy(src.with_suffix(".yaml"), dst.with_suffix(".yaml"))
        return dst

    return copy


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def cli(capsys):
    def run(*argv: str) -> CliResult:
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
