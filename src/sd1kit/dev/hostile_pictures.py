"""Hostile pictures and prompts: cases for sd1kit.dev.hostile (see its docstring).

A picture someone shared is untrusted input to `sd1kit info` (and `--strip`) and `generate --from`; its metadata
holds a recipe other tools wrote. These are the attacks on the readers in sd1kit.metadata and the prompt parsers
in sd1kit.prompts: decompression bombs (zTXt, iTXt, stealth gzip), gigapixels declared in a few kilobytes, absurd
container structure (a million chunks, EXIF IFD loops, truncation anywhere), fields of the wrong type, JSON nested
a hundred thousand deep, and texts built to make a regex or a bracket matcher quadratic. Each file is built small
and fast (a 13300 x 13300 picture of one colour is a few hundred KB; bombs are made by repeating compressed
blocks, not by compressing gigabytes).

Each case says what every one of its commands must end with: a one-line refusal (exit 2) naming the file, or,
where the picture is merely odd but readable, a bounded successful read (exit 0); `note` says which and why.
For a refusal `expect` is in its line; for a read, in what it prints (stdout).
`generate --from` is run only where the picture is refused: past the picture, `--dry-run` loads the model (a
first import of diffusers takes seconds on its own), so a successful regeneration says nothing about the reader;
the parsers it runs are timed in-process by tests/test_hostile_pictures.py instead.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from sd1kit.dev.hostile import FROM_PICTURE, INFO, INFO_JSON, STRIP, HostileCase

PROMPT = ("prompt", "--file", "{file}")
PARAMS = "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64, Model: tiny"
N = 100_000  # characters of the long texts


# --- building blocks ---

def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def zeros_deflate(size: int) -> bytes:
    """A raw deflate stream of `size` zero bytes, made by repeating one fully flushed 1 MiB block (a full flush
    ends on a byte boundary and drops the history, so the copies are independent) instead of compressing it all."""
    block = 1 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    part = c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    return part * (size // block) + tail.compress(bytes(size % block)) + tail.flush()


def zeros_zlib(size: int) -> bytes:
    """A zlib stream of `size` zero bytes (the Adler-32 of zeros is 1 + (size mod 65521) << 16)."""
    return b"\x78\xda" + zeros_deflate(size) + struct.pack(">I", ((size % 65521) << 16) | 1)


def png_bytes(width: int, height: int, colour: int = 2, before: bytes = b"", idat: bytes | None = None,
              after: bytes = b"") -> bytes:
    """A PNG: IHDR (8 bits, the colour type given), `before`, the IDAT (default: all zero pixels), `after`, IEND."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    if idat is None:
        idat = chunk(b"IDAT", zeros_zlib(height * (width * channels + 1)))
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + before + idat + after + chunk(b"IEND", b"")


def text(key: str, value: str) -> bytes:
    return chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1", "replace"))


def itxt(key: str, value: str) -> bytes:
    return chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8"))


def ztxt(key: str, value: str) -> bytes:
    return chunk(b"zTXt", key.encode("latin-1") + b"\0\0" + zlib.compress(value.encode("latin-1", "replace"), 6))


def small_png(texts: dict[str, str] | None = None, size=(64, 64), colour: int = 2) -> bytes:
    return png_bytes(*size, colour, before=b"".join(itxt(k, v) for k, v in (texts or {}).items()))


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def stealth_png(payload: bytes, size=(3000, 3000), signature: str = "stealth_pngcomp",
                length_bits: int | None = None) -> bytes:
    """An RGBA picture carrying `payload` in its alpha LSBs, column by column, as the stealth-pnginfo writer
    lays it out; `length_bits` may lie about the length."""
    from PIL import Image

    width, height = size
    header = signature.encode() + struct.pack(">I", len(payload) * 8 if length_bits is None else length_bits)
    bits = np.unpackbits(np.frombuffer(header + payload, np.uint8))
    alpha = np.full(width * height, 255, np.uint8)
    alpha[: len(bits)] = 254 | bits
    pixels = np.zeros((height, width, 4), np.uint8)
    pixels[..., 3] = alpha.reshape(width, height).T
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def jpeg_bytes(segments: bytes = b"", size: tuple[int, int] | None = None) -> bytes:
    """A small JPEG with `segments` after its SOI; `size` rewrites the frame header's declared size."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 40, 200)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    if size is not None:
        sof = data.index(b"\xff\xc0")
        data[sof + 5:sof + 9] = struct.pack(">HH", size[1], size[0])
    return bytes(data[:2]) + segments + bytes(data[2:])


def app1(payload: bytes) -> bytes:
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def exif_comment(infotext: str) -> bytes:
    from sd1kit.metadata.exif import exif_with_comment

    return exif_with_comment(infotext)


def exif_loop(entries: int = 4000) -> bytes:
    """An EXIF block whose IFD0 points at itself as its Exif IFD and as its next IFD, with thousands of entries
    that each claim 4 G values stored beyond the block."""
    count = entries + 1
    ifd = struct.pack(">H", count) + struct.pack(">HHII", 0x8769, 4, 1, 8)
    ifd += b"".join(struct.pack(">HHII", 0x9000 + i, 4, 0xFFFFFFFF, 0x7FFFFFF0) for i in range(entries))
    return b"Exif\0\0MM\0*" + struct.pack(">I", 8) + ifd + struct.pack(">I", 8)


def webp_bytes(exif: bytes | None = None, canvas: tuple[int, int] | None = None, tail: bytes = b"") -> bytes:
    """A small lossless WebP (with EXIF), its canvas optionally rewritten to `canvas`, `tail` chunks appended."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", (8, 8), (1, 2, 3, 255)).save(buffer, "WEBP", lossless=True, **({"exif": exif} if exif else {}))
    data = bytearray(buffer.getvalue())
    if canvas is not None:
        at = data.index(b"VP8X") + 8
        data[at + 4:at + 10] = (canvas[0] - 1).to_bytes(3, "little") + (canvas[1] - 1).to_bytes(3, "little")
    data += tail
    data[4:8] = struct.pack("<I", len(data) - 8)
    return bytes(data)


def xmp_comment(data) -> str:
    """Draw Things' XMP: the JSON settings in exif:UserComment."""
    body = json.dumps(data).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description><exif:UserComment><rdf:Alt>'
            f'<rdf:li xml:lang="x-default">{body}</rdf:li></rdf:Alt></exif:UserComment></rdf:Description>'
            "</rdf:RDF></x:xmpmeta>")


COMFY = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
         "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
         "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
         "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
         "5": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 4, "cfg": 7, "sampler_name": "euler",
                                                    "scheduler": "normal", "denoise": 1, "model": ["1", 0],
                                                    "positive": ["2", 0], "negative": ["3", 0],
                                                    "latent_image": ["4", 0]}}}


# --- the pictures ---

def huge_png(folder: Path) -> Path:
    """13300 x 13300 RGBA, one colour, no text: 177 megapixels in ~700 KB."""
    return write(folder, "huge.png", png_bytes(13300, 13300, 6))


def ztxt_many(folder: Path) -> Path:
    """20 zTXt chunks of 60 MiB each (60 KB compressed): each under any per-chunk cap, 1.2 GB together."""
    body = b"\0" + zeros_zlib(60 << 20)
    chunks = b"".join(chunk(b"zTXt", f"k{i}".encode() + b"\0" + body) for i in range(20))
    return write(folder, "ztxt.png", png_bytes(64, 64, before=chunks))


def ztxt_total(folder: Path) -> Path:
    """20 zTXt chunks of 12 MiB each: every one under the budget, together 240 MiB."""
    body = b"\0" + zeros_zlib(12 << 20)
    chunks = b"".join(chunk(b"zTXt", f"k{i}".encode() + b"\0" + body) for i in range(20))
    return write(folder, "ztxt12.png", png_bytes(64, 64, before=chunks))


def ztxt_one(folder: Path) -> Path:
    """One zTXt `parameters` chunk of 2 GiB zeros (2 MB compressed)."""
    return write(folder, "ztxt1.png", png_bytes(64, 64, before=chunk(b"zTXt", b"parameters\0\0" + zeros_zlib(2 << 30))))


def itxt_bomb(folder: Path) -> Path:
    """A compressed iTXt `parameters` chunk of 1 GiB."""
    data = b"parameters\0\1\0\0\0" + zeros_zlib(1 << 30)
    return write(folder, "itxt.png", png_bytes(64, 64, before=chunk(b"iTXt", data)))


def text_length_lie(folder: Path) -> Path:
    """A readable infotext, then a tEXt chunk that declares 2 GiB in a file of a few hundred bytes."""
    lie = struct.pack(">I", 0x7FFFFFFF) + b"tEXtcomment\0..."
    return write(folder, "lie.png", png_bytes(64, 64, before=text("parameters", "a cat\n" + PARAMS) + lie))


def stealth_bomb(folder: Path) -> Path:
    """3000 x 3000 RGBA whose alpha LSBs hold stealth_pngcomp data: 270 gzip members of 4 MiB zeros each
    (1.1 MB of bits, 1.1 GB inflated)."""
    member = gzip.compress(bytes(4 << 20), 9)
    capacity = (3000 * 3000 - 152) // 8
    return write(folder, "stealth-bomb.png", stealth_png(member * (capacity // len(member))))


def stealth_infotext(folder: Path) -> Path:
    """An ordinary stealth_pngcomp infotext in a 256 x 256 picture (what --strip must remove)."""
    return write(folder, "stealth.png", stealth_png(gzip.compress(("a cat\n" + PARAMS).encode()), (256, 256)))


def stealth_at_cap(folder: Path) -> Path:
    """A stealth infotext in a 6400 x 5000 RGBA picture: the largest that is decoded to look for it."""
    payload = gzip.compress(("a cat\n" + PARAMS).encode())
    return write(folder, "stealth-32mp.png", stealth_png(payload, (6400, 5000)))


def stealth_length_lie(folder: Path) -> Path:
    """A stealth signature whose length field says 4 G bits, in a 256 x 256 picture."""
    return write(folder, "stealth-lie.png", stealth_png(b"x" * 64, (256, 256), "stealth_pnginfo", 0xFFFFFFFF))


def many_text_chunks(folder: Path) -> Path:
    """10^6 tiny tEXt chunks (15 MB)."""
    return write(folder, "many-text.png", png_bytes(64, 64, before=text("k", "v") * 1_000_000))


def many_idat_chunks(folder: Path) -> Path:
    """10^6 empty IDAT chunks (12 MB), then the real one."""
    return write(folder, "many-idat.png", png_bytes(64, 64, before=chunk(b"IDAT", b"") * 1_000_000))


def truncated_png(folder: Path) -> Path:
    """An infotext, then the file cut in the middle of its image data."""
    data = small_png({"parameters": "a cat\n" + PARAMS}, (256, 256), 6)
    return write(folder, "truncated.png", data[: data.index(b"IDAT") + 40])


def truncated_header(folder: Path) -> Path:
    """The PNG signature and half an IHDR."""
    return write(folder, "header.png", small_png()[:20])


def huge_declared(folder: Path) -> Path:
    """IHDR says 1 000 000 x 1 000 000 RGBA; the file is 200 bytes."""
    return write(folder, "declared.png", png_bytes(1_000_000, 1_000_000, 6, idat=chunk(b"IDAT", b"\x78\xda\x01")))


def garbage_pixels(folder: Path) -> Path:
    """6000 x 5000 RGBA (under the stealth cap: the pixels are decoded) whose image data is garbage."""
    return write(folder, "garbage.png", png_bytes(6000, 5000, 6, idat=chunk(b"IDAT", os.urandom(4096))))


def not_a_picture(folder: Path) -> Path:
    return write(folder, "random.png", os.urandom(4096))


def empty_file(folder: Path) -> Path:
    return write(folder, "empty.png", b"")


def huge_sidecar(folder: Path) -> Path:
    """A plain picture beside a 1 GiB (sparse) sidecar .txt."""
    with open(folder / "sidecar.txt", "wb") as f:
        f.truncate(1 << 30)
    return write(folder, "sidecar.png", small_png())


# --- metadata of the wrong shape ---

def deep_comfy_prompt(folder: Path) -> Path:
    """A ComfyUI `prompt` chunk nested 100 000 deep (json.loads: RecursionError)."""
    return write(folder, "deep-prompt.png", small_png({"prompt": '{"1": ' + "[" * N + "]" * N + "}"}))


def deep_comfy_workflow(folder: Path) -> Path:
    """A sound ComfyUI graph beside a `workflow` chunk nested 100 000 deep."""
    texts = {"prompt": json.dumps(COMFY), "workflow": "[" * N + "]" * N}
    return write(folder, "deep-workflow.png", small_png(texts))


def comfy_wrong_types(folder: Path) -> Path:
    """A ComfyUI graph whose values are of every wrong type: links to nowhere, dicts for names, words for
    numbers, a node id of 5000 digits."""
    graph = json.loads(json.dumps(COMFY))
    graph["5"]["inputs"].update(seed=[1], steps={"a": 1}, cfg="k", sampler_name=["x"], latent_image=["9" * 5000, 0])
    graph["9" * 5000] = {"class_type": "KSampler", "inputs": {"model": [[1], 0], "positive": {"x": 1}}}
    graph["6"] = {"class_type": "LoraLoader", "inputs": {"lora_name": {"x": 1}, "strength_model": "k",
                                                         "model": ["1", 0]}}
    graph["7"] = [1, 2, {"class_type": "KSampler"}]
    return write(folder, "comfy-types.png", small_png({"prompt": json.dumps(graph)}))


def comfy_wide(folder: Path) -> Path:
    """A 4 MB ComfyUI graph of 700 nodes linking 300 ways each, all upstream of the sampler (walking it with a
    list as the queue, or the inputs listed again at every step, is quadratic)."""
    nodes, links = 700, 300
    graph = {str(i): {"class_type": "CLIPTextEncode",
                      "inputs": {f"i{j}": [str((i + j + 1) % nodes), 0] for j in range(links)}} for i in range(nodes)}
    graph["s"] = {"class_type": "KSampler", "inputs": {"positive": ["0", 0], "negative": ["1", 0],
                                                       "model": ["2", 0], "latent_image": ["3", 0]}}
    return write(folder, "comfy-wide.png", png_bytes(64, 64, before=ztxt("prompt", json.dumps(graph))))


def json_everywhere(folder: Path) -> Path:
    """Four texts that four readers each parse as JSON, every one just under the JSON bound (3.9 MiB of `[0],`:
    a million lists each), the picture just under its text budget."""
    body = "[" + "[0]," * 1_020_000 + "0]"
    texts = {"parameters": '{"metadata_scheme": "fooocus", "x": ' + body + "}", "prompt": '{"1": ' + body + "}",
             "invokeai_metadata": '{"loras": ' + body + "}", "Software": "NovelAI", "Description": "a cat",
             "Comment": '{"steps": ' + body + "}"}
    return write(folder, "json.png", png_bytes(64, 64, before=b"".join(ztxt(k, v) for k, v in texts.items())))


def drawthings_weight(folder: Path) -> Path:
    """Draw Things XMP whose LoRA weight is the string "k" (and whose size is a dict)."""
    data = {"c": "a cat", "uc": "blurry", "seed": 1, "steps": 4, "scale": 7, "sampler": "Euler a",
            "size": {"w": 64}, "model": "tiny.ckpt", "lora": [{"file": "tiny-lora.ckpt", "weight": "k"}, "x", 5]}
    return write(folder, "drawthings.png", small_png({"XML:com.adobe.xmp": xmp_comment(data)}))


def invokeai_objects(folder: Path) -> Path:
    """InvokeAI metadata whose LoRA names are objects, lists and numbers where strings belong."""
    meta = {"positive_prompt": "a cat", "negative_prompt": {"x": 1}, "width": 64, "height": 64, "seed": 1,
            "steps": 4, "cfg_scale": 7, "scheduler": ["euler"], "model": {"model_name": "tiny", "hash": {"a": 1}},
            "loras": [{"lora": {"model_name": {"x": 1}}, "weight": "k"}, {"lora": [1, 2]}, {"model": 7}, "x"],
            "app_version": {"v": 3}}
    return write(folder, "invokeai.png", small_png({"invokeai_metadata": json.dumps(meta)}))


def invokeai_deep(folder: Path) -> Path:
    return write(folder, "invokeai-deep.png", small_png({"invokeai_metadata": "[" * N + "]" * N}))


def novelai_deep(folder: Path) -> Path:
    texts = {"Software": "NovelAI", "Description": "a cat", "Comment": '{"steps": ' + "[" * N + "]" * N + "}"}
    return write(folder, "novelai-deep.png", small_png(texts))


def swarm_types(folder: Path) -> Path:
    """SwarmUI parameters with words for LoRA weights and numbers, dicts for names and the model."""
    swarm = {"sui_image_params": {"prompt": "a cat", "loras": [{"x": 1}, "tiny-lora"], "loraweights": ["k"],
                                  "width": [64], "clipstopatlayer": "k", "model": {"m": 1}},
             "sui_models": [{"param": {"x": 1}}, 5]}
    return write(folder, "swarm.png", small_png({"parameters": json.dumps(swarm)}))


def fooocus_types(folder: Path) -> Path:
    """A Fooocus scheme whose LoRA list holds dicts and words, its version a list."""
    fooocus = {"prompt": "a cat", "metadata_scheme": "fooocus", "loras": [[{"a": 1}, "k", 5], "x", [None]],
               "lora_combined_1": "a : 1.2.3", "resolution": {"x": 1}, "version": ["Fooocus"]}
    return write(folder, "fooocus.png", small_png({"parameters": json.dumps(fooocus)}))


def xmp_repeated(folder: Path) -> Path:
    """An XMP packet of 50 000 unclosed `<exif:UserComment><rdf:li` (a lazy regex over it is quadratic)."""
    return write(folder, "xmp.png", small_png({"XML:com.adobe.xmp": "<exif:UserComment><rdf:li x" * 50_000}))


# --- long infotexts and prompts (linear parsers) ---

def infotext_png(name: str, infotext: str, compressed: bool = False):
    def build(folder: Path) -> Path:
        if compressed:
            return write(folder, name, png_bytes(64, 64, before=ztxt("parameters", infotext)))
        return write(folder, name, small_png({"parameters": infotext}))
    build.__doc__ = f"An A1111 infotext in a PNG: {infotext[:60]!r}..."
    return build


HASHES = infotext_png("hashes.png", "a cat\n" + PARAMS + ", Hashes: {" * (N // 10))
RESOURCES = infotext_png("resources.png", "a cat\n" + PARAMS + ", Civitai resources: [" * (N // 22))
DEEP_HASHES = infotext_png("deep-hashes.png", "a cat\n" + PARAMS + ", Hashes: " + "[" * N + "]" * N)
QUOTES = infotext_png("quotes.png", "a cat\n" + PARAMS + ", Hashes: {" + '"\\"' * (N // 3))
MIB = 1 << 20  # the longest infotext the A1111 reader reads (zTXt: 10 KB in the file)
LORAS_MIB = infotext_png("loras.png", "<lora:a:1>" * (MIB // 10) + "\n" + PARAMS, compressed=True)
PAIRS_MIB = infotext_png("pairs.png", "a cat\n" + "a: b, " * (MIB // 6), compressed=True)
LONG_PROMPT = infotext_png("long-prompt.png", "(a" * (N // 4) + " AND " + " " * (N // 2) + "<a:" * 1000 + "\n" + PARAMS)


def prompt_file(name: str, prompt: str):
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_text(prompt, encoding="utf-8")
        return path
    build.__doc__ = f"A prompt file: {prompt[:40]!r}... ({len(prompt)} characters)"
    return build


PROMPTS = {
    "open-round": "(a" * (N // 2),
    "nested-closed": "(a" * (N // 6) + ")" * (N // 6),
    "alternating-open": "(a[a" * (N // 4),
    "and-blanks": "a" + " " * N + "AND b",
    "and-many": "a AND " * (N // 6),
    "lora-tags": "<a:" * (N // 3),
    "break-blanks": "a BREAK" + " " * N + "b",
    "alternation": "[a|b]" * (N // 50),
    "deep-schedule": "[a:" * (N // 3),
    "colons": ":" * N,
    "weights": "(a:1.1)" * (N // 7),
}


# --- JPEG and WebP ---

def jpeg_ifd_loop(folder: Path) -> Path:
    return write(folder, "ifd-loop.jpg", jpeg_bytes(app1(exif_loop())))


def jpeg_huge_declared(folder: Path) -> Path:
    """A JPEG whose frame says 65500 x 65500 (4.3 gigapixels), with an A1111 infotext in its EXIF."""
    return write(folder, "declared.jpg", jpeg_bytes(app1(exif_comment("a cat\n" + PARAMS)), (65500, 65500)))


def jpeg_many_segments(folder: Path) -> Path:
    """10^6 COM segments (6 MB)."""
    return write(folder, "many.jpg", jpeg_bytes(b"\xff\xfe\x00\x04ab" * 1_000_000))


def jpeg_truncated(folder: Path) -> Path:
    """A JPEG cut in the middle of its EXIF segment."""
    data = jpeg_bytes(app1(exif_comment("a cat\n" + PARAMS)))
    return write(folder, "truncated.jpg", data[:60])


def webp_huge_canvas(folder: Path) -> Path:
    """A WebP whose canvas says 16384 x 16384, with an A1111 infotext in its EXIF."""
    return write(folder, "canvas.webp", webp_bytes(exif_comment("a cat\n" + PARAMS)[6:], (16384, 16384)))


def webp_size_lie(folder: Path) -> Path:
    """A WebP whose appended EXIF chunk declares 4 GB."""
    return write(folder, "lie.webp", webp_bytes(tail=b"EXIF" + struct.pack("<I", 0xFFFFFFF0) + b"MM\0*"))


# --- the cases ---

READ = (INFO, INFO_JSON)
OVER = "16 mib"  # the text budget's refusal


def _case(name, build, commands, expect="", exit_code=2, needs_model=False, note="") -> HostileCase:
    return HostileCase(name, "picture", build, commands, expect, exit_code, needs_model, note)


CASES: list[HostileCase] = [
    _case("png-13300-no-text", huge_png, (*READ, STRIP), "stealth metadata", exit_code=0,
          note="read without decoding a pixel; stealth metadata not looked for past 32 megapixels (a warning)"),
    _case("png-13300-from", huge_png, (FROM_PICTURE,), "no generation parameters"),
    _case("ztxt-20x60mib", ztxt_many, (*READ, FROM_PICTURE), OVER, note="one text budget for the whole picture"),
    _case("ztxt-20x12mib", ztxt_total, (*READ, FROM_PICTURE), OVER, note="each chunk under the budget, not all"),
    _case("ztxt-one-2gib", ztxt_one, (*READ, FROM_PICTURE), OVER),
    _case("itxt-bomb-1gib", itxt_bomb, READ, OVER),
    _case("text-chunk-length-lie", text_length_lie, READ, "a cat", exit_code=0, note="the infotext before it is read"),
    _case("stealth-gzip-bomb", stealth_bomb, (*READ, FROM_PICTURE), OVER,
          note="gzip inflated against the budget; only the columns holding the bits are looked at"),
    _case("stealth-gzip-bomb-strip", stealth_bomb, (STRIP,), "stealth metadata overwritten", exit_code=0,
          note="--strip overwrites the stealth bits (it never inflates them)"),
    _case("stealth-strip", stealth_infotext, (STRIP,), "stealth metadata overwritten", exit_code=0,
          note="stealth metadata removed, and said so"),
    _case("stealth-at-the-pixel-cap", stealth_at_cap, (*READ, STRIP), exit_code=0,
          note="32 megapixels decoded: the stealth infotext read, and overwritten by --strip, within the bounds"),
    _case("stealth-length-lie", stealth_length_lie, READ, exit_code=0, note="a length past the picture: no text"),
    _case("png-million-text-chunks", many_text_chunks, (*READ, STRIP, FROM_PICTURE), "chunks"),
    _case("png-million-idat-chunks", many_idat_chunks, (*READ, STRIP), "chunks"),
    _case("png-truncated-idat", truncated_png, READ, "truncated", exit_code=0,
          note="the infotext is read, with a warning"),
    _case("png-truncated-idat-strip", truncated_png, (STRIP,), "truncated"),
    _case("png-truncated-header", truncated_header, READ, exit_code=0),
    _case("png-truncated-header-from", truncated_header, (FROM_PICTURE,), "no generation parameters"),
    _case("png-declared-terapixel", huge_declared, (*READ, STRIP), "stealth metadata", exit_code=0,
          note="the size is only read; --strip says it did not look for stealth metadata"),
    _case("png-garbage-pixels", garbage_pixels, READ, "unreadable", exit_code=0,
          note="30 megapixels are decoded for stealth metadata; undecodable pixels are a warning"),
    _case("not-a-picture", not_a_picture, READ, "not a readable picture", exit_code=0),
    _case("not-a-picture-from", not_a_picture, (FROM_PICTURE,), "no generation parameters"),
    _case("empty-file", empty_file, READ, "not a readable picture", exit_code=0),
    _case("sidecar-1gib", huge_sidecar, READ, "sidecar", exit_code=0,
          note="a sidecar over the budget is not read (a warning)"),
    _case("comfyui-deep-prompt", deep_comfy_prompt, READ, "malformed", exit_code=0,
          note="the graph is malformed metadata: skipped with a warning"),
    _case("comfyui-deep-prompt-from", deep_comfy_prompt, (FROM_PICTURE,), "format"),
    _case("comfyui-deep-workflow", deep_comfy_workflow, READ, "a cat", exit_code=0,
          note="the workflow is kept raw, never parsed; the graph beside it is read"),
    _case("comfyui-wrong-types", comfy_wrong_types, READ, "comfyui", exit_code=0),
    _case("comfyui-wide-graph", comfy_wide, READ, "comfyui", exit_code=0, note="the walks are bounded and linear"),
    _case("json-everywhere", json_everywhere, READ, exit_code=0,
          note="each JSON parse bounded in size; parsed one reader at a time"),
    _case("drawthings-weight-k", drawthings_weight, READ, "not a number", exit_code=0,
          note="the weight is not read (a warning)"),
    _case("invokeai-object-names", invokeai_objects, READ, "a cat", exit_code=0,
          note="LoRAs without a string name are skipped"),
    _case("invokeai-deep", invokeai_deep, READ, "malformed", exit_code=0),
    _case("novelai-deep-comment", novelai_deep, READ, "malformed", exit_code=0),
    _case("swarmui-wrong-types", swarm_types, READ, "a cat", exit_code=0),
    _case("fooocus-wrong-types", fooocus_types, READ, "a cat", exit_code=0),
    _case("xmp-usercomment-repeated", xmp_repeated, READ, exit_code=0),
    _case("infotext-hashes-brace", HASHES, READ, "a cat", exit_code=0, note="one pass for all raw-JSON keys"),
    _case("infotext-resources-bracket", RESOURCES, READ, "a cat", exit_code=0),
    _case("infotext-deep-hashes", DEEP_HASHES, READ, "a cat", exit_code=0, note="too deep to decode: kept as text"),
    _case("infotext-escaped-quotes", QUOTES, READ, "a cat", exit_code=0),
    _case("infotext-long-prompt", LONG_PROMPT, READ, "(a(a", exit_code=0),
    _case("infotext-1mib-of-loras", LORAS_MIB, READ, "a1111", exit_code=0,
          note="the longest infotext read, all LoRA tags"),
    _case("infotext-1mib-of-pairs", PAIRS_MIB, READ, "a cat", exit_code=0,
          note="the longest infotext read, all key: value"),
    _case("jpeg-exif-ifd-loop", jpeg_ifd_loop, (*READ, STRIP), exit_code=0),
    _case("jpeg-declared-4-gigapixels", jpeg_huge_declared, (*READ, STRIP), exit_code=0,
          note="read without Pillow's open, which refuses the size before any metadata"),
    _case("jpeg-million-segments", jpeg_many_segments, (*READ, STRIP), "segments"),
    _case("jpeg-truncated-exif", jpeg_truncated, READ, "truncated", exit_code=0),
    _case("webp-declared-canvas", webp_huge_canvas, (*READ, STRIP), exit_code=0),
    _case("webp-exif-length-lie", webp_size_lie, READ, "truncated", exit_code=0),
    *(HostileCase(f"prompt-{name}", "prompt", prompt_file(f"{name}.txt", text), (PROMPT,), "chunk 1", exit_code=0,
                  note="sd1kit prompt: schedule, AND, attention, chunks of a long adversarial prompt")
      for name, text in PROMPTS.items()),
]
