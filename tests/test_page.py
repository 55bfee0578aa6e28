"""The web page of `sd1kit serve` in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) at a
desktop (1280x900) and a phone (390x844) size: the result in view while generating, no sideways scroll on any tab,
the live preview at the output's size, Ctrl+Enter / Esc, a dropped picture's infotext restored field by field,
inpainting a drawn mask, the extra-networks browser, and not one request to another host.

Screenshots of every tab at both sizes go to $SD1KIT_SCREENSHOTS (else a pytest tmp folder); with
SD1KIT_SCREENSHOTS set, the txt2img tab with a finished picture at 1280x900 is also written to docs/page.png."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from sd1kit.dev.tiny import write_tiny_model
from pictures import noise, png_b64
from sd1kit.server.app import ServerConfig
from test_server import Running, models_dir  # noqa: F401  (the shared models folder fixture, copied below)

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
DESKTOP, PHONE = (1280, 900), (390, 844)
SIZES = pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["1280x900", "390x844"])
TABS = ("txt2img", "img2img", "extras", "pnginfo", "models", "settings")
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def page_models(models_dir, tiny_models, tmp_path_factory):  # noqa: F811
    """A copy of the shared models folder with a LoRA preview picture (A1111's NAME.preview.png), a styles.csv and a
    v-prediction checkpoint (its yaml beside it)."""
    root = tmp_path_factory.mktemp("page") / "models"
    shutil.copytree(models_dir, root)
    v = tiny_models["easyfluff"]
    shutil.copy(v, root / "Stable-diffusion" / "vpred-tiny.safetensors")
    shutil.copy(v.with_suffix(".yaml"), root / "Stable-diffusion" / "vpred-tiny.yaml")
    if (models_dir.parent / "embeddings").is_dir():
        shutil.copytree(models_dir.parent / "embeddings", root.parent / "embeddings")
    preview = Image.new("RGB", (96, 128), (40, 90, 200))
    preview.paste((250, 200, 40), (24, 32, 72, 96))
    preview.save(root / "Lora" / "style.preview.png")
    (root.parent / "styles.csv").write_text("name,prompt,negative_prompt\nsharp,\"{prompt}, sharp focus\",blurry\n")
    write_tiny_model(root / "Stable-diffusion" / "fluff-merge.safetensors", prediction="v", markers=True, seed=7)
    return root


@pytest.fixture(scope="module")
def user_catalog(page_models):
    """A catalog record for one checkpoint (a v-prediction merge with the guide's settings), as a user adds one."""
    path = page_models / "Stable-diffusion" / "fluff-merge.safetensors"
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    record = page_models.parent / "catalog.toml"
    record.write_text(f'''[[model]]
id = "fluff-merge"
name = "Fluff merge"
kind = "checkpoint"
parents = [{{ id = "easyfluff", relation = "merge" }}]
files = [{{ name = "fluff-merge.safetensors", sha256 = "{sha}", short = "{sha[:10]}" }}]
prediction = "v"
zero_terminal_snr = true
yaml = "v-prediction"
settings = {{ clip_skip = 2, cfg_rescale = 0.7 }}
''')
    with pytest.MonkeyPatch.context() as m:
        m.setenv("SD1KIT_CATALOG", str(record))
        yield record


@pytest.fixture(scope="module")
def server(page_models, user_catalog):
    running = Running(ServerConfig(page_models, queue_size=8, model="sd15-tiny"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("SD1KIT_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def open_page(browser, server):
    """A new page at a size, on the server's `/`, ready (the option table built, the plan's defaults shown).
    Every request it makes is recorded; after the test, each must have gone to the server itself."""
    pages, requests, errors = [], [], []

    def opening(size=DESKTOP):
        context = browser.new_context(viewport={"width": size[0], "height": size[1]}, color_scheme="dark",
                                      accept_downloads=True)
        page = context.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/")
        page.wait_for_function("document.body.dataset.ready === 'true' && !!document.body.dataset.plan",
                               timeout=60000)
        pages.append(context)
        return page

    yield opening
    for context in pages:
        context.close()
    own = urlsplit(server.url).netloc
    foreign = [u for u in requests if urlsplit(u).scheme not in ("data", "blob", "about")
               and urlsplit(u).netloc != own]
    assert not foreign, foreign
    assert not errors, errors


def _in_view(page, selector: str) -> bool:
    return page.eval_on_selector(selector, """e => { const r = e.getBoundingClientRect();
        return r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight + 0.5
               && r.right <= innerWidth + 0.5; }""")


def _rect(page, selector: str) -> dict:
    return page.eval_on_selector(selector, "e => { const r = e.getBoundingClientRect(); "
                                           "return {w: r.width, h: r.height, x: r.left, y: r.top}; }")


def _fill_small(page, prefix="t2i", steps=2, size=64, seed=None):
    page.fill(f"#{prefix}-opt-size-0", str(size))
    page.fill(f"#{prefix}-opt-size-1", str(size))
    page.fill(f"#{prefix}-opt-steps", str(steps))
    if seed is not None:
        page.fill(f"#{prefix}-opt-seed", str(seed))


def _picture(page, selector: str) -> Image.Image:
    src = page.get_attribute(selector, "src")
    return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))


def _b64png(image: Image.Image, text: str | None = None) -> str:
    return png_b64(image, text)


def _noise(size=64, seed=0) -> Image.Image:
    return noise(size, size, seed)


@SIZES
def test_generate_keeps_progress_preview_and_picture_in_view(open_page, size, shots):
    page = open_page(size)
    page.fill("#t2i-prompt", "a red fox in the snow")
    _fill_small(page, steps=24, seed=123)
    page.evaluate("scrollTo(0, 0)")  # (filling the size scrolled down to it, on a phone)
    page.click("#t2i-generate")
    page.wait_for_selector("#t2i-progress:not([hidden])")
    assert _in_view(page, "#t2i-progress")
    page.wait_for_selector("#t2i-preview:not([hidden])", timeout=60000)  # the live preview, drawn in the frame
    preview = _rect(page, "#t2i-preview")
    assert preview["w"] >= 64 and preview["h"] >= 64, preview  # at least the output's size (64x64)
    assert _in_view(page, "#t2i-preview") and "Step " in page.inner_text("#t2i-ptext")
    page.wait_for_selector("#t2i-image:not([hidden])", timeout=120000)
    assert _in_view(page, "#t2i-image") and _in_view(page, "#t2i-progress")
    assert page.evaluate("scrollY") == 0  # nothing had to scroll
    shown = _rect(page, "#t2i-image")
    assert preview["w"] >= shown["w"] - 1 and preview["h"] >= shown["h"] - 1, (preview, shown)
    assert _picture(page, "#t2i-image").size == (64, 64)
    text = page.inner_text("#t2i-info")
    assert text.startswith("a red fox in the snow") and "Seed: 123" in text and "Steps: 24" in text
    assert page.get_attribute("#t2i-save", "download").endswith(".png")
    assert page.get_attribute("#t2i-save", "href").startswith("data:image/png;base64,")
    page.click("#t2i-image")  # the lightbox
    page.wait_for_selector("#lightbox:not([hidden])")
    page.keyboard.press("Escape")
    page.wait_for_selector("#lightbox", state="hidden")
    page.screenshot(path=str(shots / f"txt2img-done-{size[0]}x{size[1]}.png"))
    if size == DESKTOP and os.environ.get("SD1KIT_SCREENSHOTS"):  # the README's picture: the built-in demo model
        page.select_option("#model", "sd1kit-demo [built-in]")
        page.wait_for_function("document.body.dataset.plan === 'sd1kit-demo [built-in]'", timeout=60000)
        page.fill("#t2i-prompt", "red circle, blue background")
        page.fill("#t2i-opt-steps", "8")
        page.click("#t2i-generate")
        page.wait_for_function("document.querySelectorAll('#t2i-gallery .thumb').length === 2", timeout=120000)
        page.mouse.move(0, 0)
        page.wait_for_timeout(400)  # the progress bar's transition
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / "page.png"))
        page.select_option("#model", page.eval_on_selector_all(  # the server's model back for the other tests
            "#model option", "os => os.map(o => o.value).find(v => v.startsWith('sd15-tiny'))"))
        page.wait_for_function("document.body.dataset.plan.startsWith('sd15-tiny')", timeout=60000)


@SIZES
def test_no_sideways_scroll_on_any_tab(open_page, size, shots):
    page = open_page(size)
    for tab in TABS:
        page.click(f".tabs [data-tab={tab}]")
        page.wait_for_selector(f"#tab-{tab}:not([hidden])")
        if tab == "models":
            page.wait_for_selector("#scan-table tbody tr", timeout=60000)
            page.wait_for_selector("#catalog-tree li")
        if tab == "settings":
            page.wait_for_selector("#settings-form .field")
        if tab in ("txt2img", "img2img"):  # the advanced groups open too
            page.eval_on_selector_all(f"#tab-{tab} details", "ds => ds.forEach(d => { d.open = true; })")
        widths = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
        assert widths[0] <= widths[1], (tab, widths)
        page.screenshot(path=str(shots / f"{tab}-{size[0]}x{size[1]}.png"), full_page=True)
    # every input has a label: no unlabelled "Choose File" buttons
    unlabelled = page.evaluate("""[...document.querySelectorAll('input, select, textarea')].filter(e =>
        !e.closest('label') && !e.getAttribute('aria-label') && !(e.id && document.querySelector(`label[for="${e.id}"]`))
      ).map(e => e.id || e.outerHTML.slice(0, 80))""")
    assert not unlabelled, unlabelled


def test_ctrl_enter_generates_and_esc_interrupts(open_page):
    page = open_page(DESKTOP)
    page.fill("#t2i-prompt", "a long job")
    _fill_small(page, steps=150, seed=5)
    page.focus("#t2i-prompt")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("/Step [1-9]/.test(document.getElementById('t2i-ptext').textContent)", timeout=60000)
    page.keyboard.press("Escape")
    page.wait_for_selector("#t2i-image:not([hidden])", timeout=60000)
    assert page.is_visible("#t2i-badge") and page.inner_text("#t2i-badge") == "interrupted"
    assert "interrupted" in page.get_attribute("#t2i-gallery .thumb", "class")
    assert "interrupted" in page.get_attribute("#t2i-save", "download")
    steps = int(page.inner_text("#t2i-info").split("Steps: ")[1].split(",")[0])
    assert steps == 150  # the picture of the interrupted job (A1111 keeps the unfinished picture)
    page.keyboard.press("Control+Enter")  # and the next one runs again
    page.wait_for_function("/Step [1-9]/.test(document.getElementById('t2i-ptext').textContent)", timeout=60000)
    page.keyboard.press("Escape")
    page.wait_for_function("document.querySelectorAll('#t2i-gallery .thumb').length === 2", timeout=60000)


DETAILED = {  # a txt2img job whose infotext has many fields (hires fix, a LoRA, override settings)
    "prompt": "a fox <lora:style:0.5>, (snow:1.2)", "negative_prompt": "blurry, lowres", "steps": 2, "width": 64,
    "height": 64, "seed": 4242, "subseed": 7, "subseed_strength": 0.3, "cfg_scale": 5.5, "sampler_name": "DPM++ 2M",
    "scheduler": "Karras", "enable_hr": True, "hr_scale": 1.5, "hr_second_pass_steps": 1, "denoising_strength": 0.4,
    "hr_upscaler": "Lanczos", "hr_sampler_name": "Euler", "cfg_rescale": 0.3, "s_min_uncond": 0.2,
    "override_settings": {"CLIP_stop_at_last_layers": 2, "randn_source": "CPU", "emphasis": "No norm",
                          "pad_cond_uncond": True, "sd_noise_schedule": "Zero Terminal SNR",
                          "token_merging_ratio": 0.3}}
NOT_CONTROLS = {"Lora hashes", "TI hashes", "Version", "Model hash", "Model", "Prompt", "Negative prompt",
                "Precision", "Backend"}  # how the server computed (its --dtype / --backend), not a page setting


def _norm(text) -> str:
    return "".join(str(text).lower().replace("-", " ").replace("_", " ").split())


def _control_matches(page, key: str, text: str) -> bool:
    values = page.eval_on_selector_all(f'#tab-txt2img [data-infotext="{key}"]', """es => es.map(e =>
        e.type === 'checkbox' ? (e.checked ? 'True' : 'False') : e.value)""")
    assert values, f"no control for the infotext field {key!r}"
    if len(values) == 2:  # a size
        return "x".join(values) == text.replace(" ", "")
    value = values[0]
    if value in ("True", "False") and page.eval_on_selector(f'#tab-txt2img [data-infotext="{key}"]',
                                                           "e => e.type === 'checkbox'"):
        return value == ("False" if text.strip().lower() == "false" else "True")
    if value in ("true", "false"):  # a three-way flag
        return value == ("false" if text.strip().lower() == "false" else "true")
    try:
        return float(value) == float(text)
    except ValueError:
        return _norm(value) == _norm(text)


def test_dropped_picture_png_info_and_send_to_txt2img_restores_every_field(open_page, server, tmp_path):
    with httpx.Client(base_url=server.url, timeout=120) as c:
        made = c.post("/sdapi/v1/txt2img", json=DETAILED).json()
        b64 = made["images"][0]
        infotext = json.loads(made["info"])["infotexts"][0]
        params = c.post("/sdapi/v1/png-info", json={"image": b64}).json()["parameters"]
    assert "Hires upscale" in params and "Clip skip" in params and "Lora hashes" in params
    page = open_page(DESKTOP)
    transfer = page.evaluate_handle("""b64 => { const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer(); dt.items.add(new File([bytes], 'fox.png', {type: 'image/png'})); return dt; }""", b64)
    page.dispatch_event("main", "drop", {"dataTransfer": transfer})  # dropped anywhere on the page
    page.wait_for_selector("#tab-pnginfo:not([hidden]) #png-params tr")
    shown = dict(page.eval_on_selector_all("#png-params tr", "rs => rs.map(r => [r.dataset.key, r.cells[1].textContent])"))
    assert shown == {k: v for k, v in params.items() if v not in (None, "")}
    page.click("#png-actions [data-send=txt2img]")
    page.wait_for_selector("#tab-txt2img:not([hidden])")
    page.wait_for_function("document.getElementById('server-state').textContent === ''")
    assert page.input_value("#t2i-prompt") == params["Prompt"]
    assert page.input_value("#t2i-negative") == params["Negative prompt"]
    model = next(m for m in httpx.get(server.url + "/sdapi/v1/sd-models").json()
                 if m["hash"] == params["Model hash"] and m["model_name"] == params["Model"])
    assert page.input_value("#model") == model["title"]  # the model, by its hash (and name: two files are equal)
    assert page.is_checked("#t2i-opt-enable_hr")
    for key, text in params.items():
        if key in NOT_CONTROLS:
            continue
        assert _control_matches(page, key, text), (key, text)
    page.click("#t2i-generate")  # the restored form makes the same picture: the same infotext
    page.wait_for_selector("#t2i-image:not([hidden])", timeout=120000)
    assert page.inner_text("#t2i-info") == infotext


def test_inpaint_a_drawn_stroke_keeps_the_unmasked_pixels(open_page, tmp_path):
    page = open_page(DESKTOP)
    init = _noise(128, seed=3)
    init.save(tmp_path / "init.png")
    page.click(".tabs [data-tab=img2img]")
    page.set_input_files("#i2i-init-file", str(tmp_path / "init.png"))
    page.wait_for_selector("#i2i-canvas-wrap:not([hidden])")
    page.check("#i2i-mode-inpaint")
    page.wait_for_selector("#i2i-mask-tools:not([hidden])")
    page.fill("#i2i-prompt", "a cat")
    page.fill("#i2i-opt-steps", "2")
    page.fill("#i2i-opt-seed", "9")
    page.fill("#i2i-brush", "12")
    box = _rect(page, "#i2i-canvas")
    y = box["y"] + box["h"] * 0.5
    page.mouse.move(box["x"] + box["w"] * 0.3, y)
    page.mouse.down()
    for f in (0.4, 0.5, 0.6, 0.7):
        page.mouse.move(box["x"] + box["w"] * f, y)
    page.mouse.up()
    page.click("#i2i-generate")
    page.wait_for_selector("#i2i-image:not([hidden])", timeout=120000)
    assert "Masked content: original" in page.inner_text("#i2i-info")
    out = np.asarray(_picture(page, "#i2i-image").convert("RGB")).astype(int)
    painted = np.asarray(Image.open(io.BytesIO(base64.b64decode(page.evaluate(
        "(() => { const c = document.getElementById('i2i-canvas'); const o = document.createElement('canvas');"
        "o.width = c.width; o.height = c.height; const x = o.getContext('2d'); x.fillStyle = '#000';"
        "x.fillRect(0, 0, o.width, o.height); x.drawImage(c, 0, 0); return o.toDataURL('image/png'); })()"
    ).split(",", 1)[1]))).convert("L")) > 127
    assert painted[64, 64] and not painted[4, 4] and 200 < painted.sum() < 128 * 128 // 2  # a stroke, white
    near = painted.copy()
    ys, xs = np.nonzero(painted)
    near[max(ys.min() - 12, 0):ys.max() + 13, max(xs.min() - 12, 0):xs.max() + 13] = True  # the blur's reach
    original = np.asarray(init).astype(int)
    assert out.shape == original.shape
    assert np.abs(out[~near] - original[~near]).max() <= 1  # the unmasked pixels unchanged
    assert np.abs(out[painted] - original[painted]).mean() > 5  # and the stroke repainted


def test_extra_networks_browser_lists_loras_with_previews_and_inserts_tags(open_page, server):
    page = open_page(PHONE)
    page.fill("#t2i-prompt", "1girl")
    page.click("#t2i-networks-toggle")
    page.wait_for_selector("#t2i-cards .card")
    with httpx.Client(base_url=server.url) as c:
        loras = c.get("/sd1kit/v1/networks").json()["lora"]
    names = page.eval_on_selector_all("#t2i-cards .card .name", "es => es.map(e => e.textContent)")
    assert names == [n["name"] for n in loras] == ["style"]
    page.wait_for_function("[...document.querySelectorAll('#t2i-cards .card img')].every(i => i.complete && i.naturalWidth > 0)")
    size = page.eval_on_selector("#t2i-cards .card img", "i => [i.naturalWidth, i.naturalHeight]")
    assert size == [96, 128]  # the style.preview.png beside the LoRA
    assert "/sd1kit/v1/preview/lora/" in page.get_attribute("#t2i-cards .card img", "src")
    page.click("#t2i-cards .card")
    assert page.input_value("#t2i-prompt") == "1girl <lora:style:1>"
    page.focus("#t2i-negative")
    page.click("#t2i-networks [role=tab][data-kind=embeddings]")
    page.wait_for_selector("#t2i-cards .card[data-tag=badhands]")
    page.click("#t2i-cards .card[data-tag=badhands]")  # into the prompt box last focused
    assert page.input_value("#t2i-negative") == "badhands"
    widths = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert widths[0] <= widths[1]


def test_styles_extras_and_settings(open_page):
    page = open_page(DESKTOP)
    page.fill("#t2i-prompt", "a lighthouse")
    _fill_small(page, steps=1, seed=1)
    page.click("#t2i-styles [data-style=sharp]")
    page.click("#t2i-generate")
    page.wait_for_selector("#t2i-image:not([hidden])", timeout=120000)
    assert page.inner_text("#t2i-info").startswith("a lighthouse, sharp focus\nNegative prompt: blurry")
    page.click("#t2i-actions [data-send=extras]")
    page.wait_for_selector("#tab-extras:not([hidden])")
    page.fill("#extras-scale", "2")
    page.click("#extras-run")
    page.wait_for_selector("#extras-out:not([hidden])")
    page.wait_for_function("document.getElementById('extras-status').textContent === '128x128'")
    page.click(".tabs [data-tab=settings]")
    page.wait_for_selector("#set-CLIP_stop_at_last_layers")
    page.fill("#set-eta_noise_seed_delta", "31337")
    page.click("#settings-save")
    page.wait_for_function("document.getElementById('settings-status').textContent.startsWith('Applied')")
    assert page.input_value("#set-eta_noise_seed_delta") == "31337"
    page.fill("#set-eta_noise_seed_delta", "0")
    page.click("#settings-save")
    page.wait_for_function("document.getElementById('settings-status').textContent.startsWith('Applied')")


def test_an_error_shows_its_detail_in_the_result_area(open_page):
    page = open_page(PHONE)
    page.fill("#t2i-prompt", "x <lora:nonexistent:1>")
    _fill_small(page, steps=1)
    page.click("#t2i-generate")
    page.wait_for_selector("#t2i-error:not([hidden])")
    assert "nonexistent" in page.inner_text("#t2i-error") and _in_view(page, "#t2i-error")


def test_placeholders_follow_the_model_and_the_models_tab_says_what_each_file_is(open_page):
    page = open_page(DESKTOP)
    first = "document.querySelector('#t2i-opt-prediction option').textContent"
    assert page.evaluate(first) == "Default (epsilon)"
    title = page.eval_on_selector_all("#model option", "os => os.map(o => o.value).find(v => v.startsWith('vpred-tiny'))")
    page.select_option("#model", title)
    page.wait_for_function(f"{first} === 'Default (v)'", timeout=60000)  # the plan's defaults for this model
    page.click(".tabs [data-tab=models]")
    page.wait_for_selector("#scan-table tr[data-name='vpred-tiny.safetensors']", timeout=60000)
    row = page.inner_text("#scan-table tr[data-name='vpred-tiny.safetensors']")
    assert "v (yaml)" in row and "present" in row
    assert page.query_selector("#catalog-tree li[data-id='sd1.5'] li") is not None  # a tree: children under parents
    page.fill("#catalog-filter", "easyfluff")
    shown = page.eval_on_selector_all("#catalog-tree li", "ls => ls.filter(l => l.offsetParent).map(l => l.dataset.id)")
    assert "sd1.5" in shown and "sd1.1" in shown  # the matches with their ancestors
    assert page.evaluate("[...document.querySelectorAll('#catalog-tree li')].some(l => l.hidden)")
    page.click("#scan-table tr[data-name='sd15-tiny.safetensors'] button")  # "Use": back to the first model
    page.wait_for_function(f"{first} === 'Default (epsilon)'", timeout=60000)


def test_a_catalogued_v_model_shows_its_settings_and_its_yaml_is_one_click(open_page, page_models):
    """A v-prediction merge the catalog knows: before anything is typed, the form shows the plan's clip skip 2 and
    CFG rescale 0.7 as placeholders; the Models tab says its yaml is missing and one click writes it."""
    page = open_page(DESKTOP)
    title = page.eval_on_selector_all("#model option", "os => os.map(o => o.value).find(v => v.startsWith('fluff'))")
    page.select_option("#model", title)
    page.wait_for_function("document.querySelector('#t2i-opt-prediction option').textContent === 'Default (v)'",
                           timeout=60000)
    assert page.get_attribute("#t2i-opt-clip_skip", "placeholder") == "2"
    assert page.get_attribute("#t2i-opt-cfg_rescale", "placeholder") == "0.7"
    page.click(".tabs [data-tab=models]")
    row = "#scan-table tr[data-name='fluff-merge.safetensors']"
    page.wait_for_selector(row, timeout=60000)
    assert "needed" in page.inner_text(row) and "fluff-merge" in page.inner_text(row)
    page.click(f"{row} button:has-text('Write yaml')")
    page.wait_for_function(f"!document.querySelector(\"{row}\").innerText.includes('needed')", timeout=30000)
    written = page_models / "Stable-diffusion" / "fluff-merge.yaml"
    assert written.is_file() and 'parameterization: "v"' in written.read_text()
    page.click("#scan-table tr[data-name='sd15-tiny.safetensors'] button:has-text('Use')")
