"""Model upscalers (ESRGAN, Real-ESRGAN, SwinIR, DAT, HAT, ScuNET and whatever else spandrel recognises) for hires
fix and Extras, found, named, loaded and tiled as A1111 does:

- `names`: A1111's folders under the models folder (`MODEL_FOLDERS`), its names (file stems, and built-ins such as
  "R-ESRGAN 4x+ Anime6B" = RealESRGAN_x4plus_anime_6B.pth), `installed_upscalers`, `find_upscaler`;
- `spandrel_import`: spandrel imported without (or beside a broken) torchvision;
- `loading`: the file read through sd1kit's safe loaders, built by spandrel, the last model kept;
- `tiling`: A1111's two tilings (images.split_grid / combine_grid, and upscale_2's tensor averaging);
- `run`: `upscale_with`, A1111's Upscaler.upscale.
"""

from sd1kit.upscalers.loading import forget_loaded, load_upscaler
from sd1kit.upscalers.names import (BUILTIN, KINDS, MODEL_FOLDERS, UpscalerFile, find_upscaler, installed_upscalers,
                                    models_root)
from sd1kit.upscalers.run import upscale_with
from sd1kit.upscalers.spandrel_import import import_spandrel

__all__ = ["BUILTIN", "KINDS", "MODEL_FOLDERS", "UpscalerFile", "find_upscaler", "forget_loaded", "import_spandrel",
           "installed_upscalers", "load_upscaler", "models_root", "upscale_with"]
