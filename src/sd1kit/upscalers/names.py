"""Model upscalers as A1111 finds and names them, in its folders under the models folder.

A1111 (modules/esrgan_model.py, realesrgan_model.py, dat_model.py, hat_model.py, extensions-builtin/SwinIR and
ScuNET, modules/modelloader.py) lists the files of `models/ESRGAN`, `SwinIR`, `DAT`, `HAT` and `ScuNET` (searched
recursively) by file stem ("4x-UltraSharp"), and its built-in models under their own names: the six Real-ESRGAN ones
("R-ESRGAN 4x+ Anime6B" is RealESRGAN_x4plus_anime_6B.pth in `models/RealESRGAN`), "DAT x2/x3/x4", and the ones a
folder falls back to when it is empty ("ESRGAN_4x", "SwinIR 4x", "ScuNET GAN", "ScuNET PSNR"), which A1111 saves
under the file names below when it downloads them. sd1kit downloads nothing: a name whose file is missing is one
line naming the file and the folder to put it in.

A file is listed once: a Real-ESRGAN or DAT built-in's file under the built-in's name (as A1111 lists those), any
other file under its stem (other files in `models/RealESRGAN` too, which A1111 would not list). Lookups also take a
file's stem or a built-in's name for a file listed otherwise ("SwinIR 4x" for SwinIR_4x.pth), as infotexts name
either. Names compare exactly; sorted as A1111 sorts them (lower case, folders in MODEL_FOLDERS order).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from sd1kit.errors import Sd1kitError
from sd1kit.install.place import files_under, models_root

MODEL_FOLDERS: tuple[str, ...] = ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "HAT", "ScuNET")
SUFFIXES = (".pth", ".pt", ".safetensors")  # A1111 reads .pt/.pth; .safetensors as Forge and ComfyUI do
USER_FOLDER = "ESRGAN"  # where A1111 users put their own upscalers


@dataclass(frozen=True)
class FolderKind:
    """How A1111 runs a folder's models: `grid` = upscaler_utils.upscale_with_model (images.split_grid /
    combine_grid, in pixels), `tensor` = upscaler_utils.upscale_2 (tiles averaged in tensor space); the tile and
    overlap defaults are A1111's options (named in `options`)."""

    tiling: str
    tile: int
    overlap: int
    options: tuple[str, str]
    model_name: str | None  # A1111's Upscaler.model_name, which /sdapi/v1/upscalers shows


KINDS = {
    "ESRGAN": FolderKind("grid", 192, 8, ("ESRGAN_tile", "ESRGAN_tile_overlap"), "ESRGAN_4x"),
    "RealESRGAN": FolderKind("grid", 192, 8, ("ESRGAN_tile", "ESRGAN_tile_overlap"), None),
    "SwinIR": FolderKind("tensor", 192, 8, ("SWIN_tile", "SWIN_tile_overlap"), "SwinIR 4x"),
    "DAT": FolderKind("grid", 192, 8, ("DAT_tile", "DAT_tile_overlap"), None),
    "HAT": FolderKind("grid", 192, 8, ("ESRGAN_tile", "ESRGAN_tile_overlap"), None),  # A1111 uses ESRGAN's
    "ScuNET": FolderKind("tensor", 256, 8, ("SCUNET_tile", "SCUNET_tile_overlap"), "ScuNET GAN"),
}

# A1111's built-in names: (folder, the file names it is saved as (the first is the one asked for), its scale)
BUILTIN: dict[str, tuple[str, tuple[str, ...], int]] = {
    "R-ESRGAN General 4xV3": ("RealESRGAN", ("realesr-general-x4v3.pth",), 4),
    "R-ESRGAN General WDN 4xV3": ("RealESRGAN", ("realesr-general-wdn-x4v3.pth",), 4),
    "R-ESRGAN AnimeVideo": ("RealESRGAN", ("realesr-animevideov3.pth",), 4),
    "R-ESRGAN 4x+": ("RealESRGAN", ("RealESRGAN_x4plus.pth",), 4),
    "R-ESRGAN 4x+ Anime6B": ("RealESRGAN", ("RealESRGAN_x4plus_anime_6B.pth",), 4),
    "R-ESRGAN 2x+": ("RealESRGAN", ("RealESRGAN_x2plus.pth",), 2),
    "DAT x2": ("DAT", ("DAT_x2.pth",), 2),
    "DAT x3": ("DAT", ("DAT_x3.pth",), 3),
    "DAT x4": ("DAT", ("DAT_x4.pth",), 4),
    "ESRGAN_4x": ("ESRGAN", ("ESRGAN_4x.pth", "ESRGAN.pth"), 4),
    "SwinIR 4x": ("SwinIR", ("SwinIR_4x.pth", "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth"), 4),
    "ScuNET GAN": ("ScuNET", ("scunet_color_real_gan.pth", "ScuNET.pth"), 1),
    "ScuNET PSNR": ("ScuNET", ("scunet_color_real_psnr.pth",), 1),
}
LISTED_AS_BUILTIN = ("RealESRGAN", "DAT")  # folders whose built-ins A1111 lists under the built-in's name
_SCALE_IN_NAME = re.compile(r"(\d)[xX]|[xX](\d)")


@dataclass(frozen=True)
class UpscalerFile:
    name: str  # A1111's name ("4x-UltraSharp", "R-ESRGAN 4x+ Anime6B")
    path: Path
    folder: str  # which of MODEL_FOLDERS

    @property
    def listed_scale(self) -> int:
        """The scale A1111's list shows (a built-in's, else a digit beside an x in the name, else 4); the
        model's own scale is known once it is loaded."""
        if self.name in BUILTIN:
            return BUILTIN[self.name][2]
        match = _SCALE_IN_NAME.search(self.name)
        return int(match.group(1) or match.group(2)) if match else 4


def _builtin_for(folder: str, path: Path) -> str | None:
    lower = path.name.lower()
    return next((name for name, (where, files, _) in BUILTIN.items()
                 if where == folder and lower in (f.lower() for f in files)), None)


def installed_upscalers(models_dir: str | os.PathLike | None = None) -> list[UpscalerFile]:
    """Every model upscaler file in the models folder's A1111 folders, named and sorted as A1111 lists them."""
    root = models_root(models_dir)
    found = []
    for folder in MODEL_FOLDERS:
        for path in files_under(root / folder, SUFFIXES):
            builtin = _builtin_for(folder, path) if folder in LISTED_AS_BUILTIN else None
            found.append(UpscalerFile(builtin or path.stem, path, folder))
    return sorted(found, key=lambda u: u.name.lower())


def find_upscaler(name: str, models_dir: str | os.PathLike | None = None, what: str = "upscaler") -> UpscalerFile:
    """The installed upscaler A1111 calls `name` (a listed name, a file's stem, or a built-in's name), or an
    Sd1kitError(what) in one line saying which file to put in which folder."""
    listed = installed_upscalers(models_dir)
    for by in (lambda u: u.name, lambda u: u.path.stem):
        match = next((u for u in listed if by(u) == name), None)
        if match is not None:
            return match if match.name == name else UpscalerFile(name, match.path, match.folder)
    root = models_root(models_dir)
    if name in BUILTIN:
        folder, files, _ = BUILTIN[name]
        match = next((u for u in listed if u.folder == folder and u.path.name.lower() in
                      (f.lower() for f in files)), None)
        if match is not None:
            return UpscalerFile(name, match.path, folder)
        raise Sd1kitError(what, f"{name!r} is not installed: put {files[0]} in {root / folder}")
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise Sd1kitError(what, f"{name[:80]!r} is not an upscaler name")
    raise Sd1kitError(what, f"{name[:80]!r} is not installed: put {name}.pth (or .safetensors) in "
                            f"{root / USER_FOLDER} (also read: {', '.join(MODEL_FOLDERS[1:])})")
