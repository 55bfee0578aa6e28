"""`sd1kit get` / `sd1kit install` against a local server (127.0.0.1, an ephemeral port) that mimics the Hugging Face
resolve endpoint (HF_ENDPOINT) and the Civitai API (SD1KIT_CIVITAI_ENDPOINT), serving tiny models; no test reaches any
other host (a socket guard refuses every address but loopback)."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sd1kit.install import download
from sd1kit.install.sources import parse_source

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Hub:
    """What the server serves and what it saw."""

    def __init__(self):
        self.files: dict[str, bytes] = {}  # "owner/repo/path" -> bytes (the Hub) ; "civitai/N" -> bytes
        self.gated: set[str] = set()  # repos that answer 401 GatedRepo
        self.civitai_private: set[int] = set()  # version ids that answer 401
        self.corrupt: set[str] = set()  # keys served with one byte flipped (headers still say the real sha256)
        self.cut: dict[str, list[int]] = {}  # key -> bytes to send before cutting, one entry per response
        self.no_etag: set[str] = set()  # keys served without an ETag
        self.bad416: set[str] = set()  # keys that answer any Range with a bare 416 (no Content-Range)
        self.endless: dict[str, int] = {}  # key -> 64 KiB chunks sent chunked, no Content-Length, whatever the file
        self.redirect: dict[str, str] = {}  # /go/NAME -> Location
        self.versions: dict[int, dict] = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.url = ""
        self.cdn = ""  # the same server under another host name: the Hub's LFS redirects leave the Hub's host

    def seen(self, method: str, needle: str = "") -> list[tuple[str, str, dict]]:
        return [r for r in self.requests if r[0] == method and needle in r[1]]


def _handler(hub: Hub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _record(self):
            hub.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))

        def _send(self, code, headers=None, body=b""):
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, data, code=200):
            self._send(code, {"Content-Type": "application/json"}, json.dumps(data).encode())

        def do_HEAD(self):
            self._record()
            self._route()

        def do_GET(self):
            self._record()
            self._route()

        def _route(self):
            path = self.path.split("?", 1)[0]
            parts = path.strip("/").split("/")
            if len(parts) >= 5 and parts[2] == "resolve":  # /OWNER/REPO/resolve/REV/PATH
                repo, key = "/".join(parts[:2]), "/".join(parts[:2] + parts[4:])
                if repo in hub.gated:
                    return self._send(401, {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access restricted"})
                if key not in hub.files:
                    return self._send(404, {"X-Error-Code": "EntryNotFound"})
                data = hub.files[key]
                sha = hashlib.sha256(data).hexdigest()
                # as the Hub answers for an LFS file: a redirect to the CDN, the sha256 as the linked ETag
                return self._send(302, {"Location": f"{hub.cdn}/cdn/{key}", "X-Repo-Commit": COMMIT,
                                        "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
                                        "ETag": f'"{sha}"'})
            if parts[0] == "cdn":
                return self._serve("/".join(parts[1:]))
            if parts[:3] == ["api", "v1", "model-versions"]:
                vid = int(parts[3])
                if vid in hub.civitai_private:
                    return self._json({"error": "Unauthorized"}, 401)
                return self._json(hub.versions[vid]) if vid in hub.versions else self._json({"error": "no"}, 404)
            if parts[:3] == ["api", "v1", "models"]:
                mid = int(parts[3])
                versions = [v for v in hub.versions.values() if v["modelId"] == mid]
                return self._json({"id": mid, "type": versions[0]["model"]["type"], "modelVersions": versions})
            if parts[:3] == ["api", "download", "models"]:  # civitai's download URL: a chain of redirects
                return self._send(302, {"Location": f"/r2/{parts[3]}"})
            if parts[0] == "r2":
                return self._send(307, {"Location": f"{hub.url}/storage/{parts[1]}?sig=x"})
            if parts[0] == "storage":
                return self._serve(f"civitai/{parts[1]}", disposition=True)
            if parts[0] == "go" and parts[1] in hub.redirect:
                return self._send(302, {"Location": hub.redirect[parts[1]]})
            if parts[0] == "plain":  # a plain URL whose name only the Content-Disposition gives
                return self._send(302, {"Location": f"/storage/{parts[1]}"})
            self._send(404)

        def _serve(self, key, disposition=False):
            if key not in hub.files:
                return self._send(404)
            data = hub.files[key]
            if key in hub.corrupt:
                data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
            headers = {"ETag": f'"{hashlib.sha256(data).hexdigest()[:16]}"', "Accept-Ranges": "bytes"}
            if key in hub.no_etag:
                del headers["ETag"]
            if disposition:
                name = hub.versions_name.get(key, "download.bin")
                headers["Content-Disposition"] = f'attachment; filename="{name}"'
            start, code = 0, 200
            rng = self.headers.get("Range")
            if rng and key in hub.bad416:
                return self._send(416)
            if key in hub.endless:  # a stream that never says how long it is, and does not stop
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for _ in range(hub.endless[key]):
                        self.wfile.write(b"10000\r\n" + b"A" * 0x10000 + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client stopped reading, as it should
                    self.close_connection = True
                return
            if rng and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0])
                if start >= len(data):
                    return self._send(416, {"Content-Range": f"bytes */{len(data)}"})
                code = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            body = data[start:]
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "HEAD":
                return
            cuts = hub.cut.get(key)
            if cuts:
                n = cuts.pop(0)
                self.wfile.write(body[:n])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Every connection this test makes goes to 127.0.0.1 / ::1; anything else (huggingface.co, civitai.com) fails
    the test."""
    reached = []
    connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "::1", "localhost"):
            import traceback
            reached.append(host)
            traceback.print_stack()
            raise OSError(f"test socket guard: {host} is not loopback")
        return connect(self, address)

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host not in ("127.0.0.1", "::1", "localhost", None):
            reached.append(host)
            raise OSError(f"test socket guard: no lookups of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    assert not reached, f"a test reached {reached}"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    state = Hub()
    state.versions_name = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    state.cdn = f"http://localhost:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", state.url)
    monkeypatch.setenv("SD1KIT_CIVITAI_ENDPOINT", state.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("CIVITAI_API_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no saved token of the machine's user
    monkeypatch.setenv("SD1KIT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(download, "RETRY_BACKOFF", 0.0)
    # huggingface_hub's user-agent code fetches an "agent harnesses" list from the endpoint HF_ENDPOINT named when
    # it was imported (huggingface.co here): switch that off as HF_HUB_DISABLE_TELEMETRY=1 does for a user
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
    yield state
    server.shutdown()
    server.server_close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _civitai_version(hub: Hub, model_id: int, version_id: int, name: str, data: bytes, kind: str = "LoCon"):
    hub.files[f"civitai/{version_id}"] = data
    hub.versions_name[f"civitai/{version_id}"] = name
    hub.versions[version_id] = {
        "id": version_id, "modelId": model_id, "name": "v1", "baseModel": "SD 1.5", "model": {"name": name, "type": kind},
        "files": [{"name": name, "sizeKB": len(data) / 1024, "type": "Model", "primary": True,
                   "metadata": {"fp": "fp16", "format": "SafeTensor"},
                   "hashes": {"SHA256": _sha(data).upper(), "AutoV2": _sha(data)[:10].upper()},
                   "downloadUrl": f"{hub.url}/api/download/models/{version_id}"}]}


@pytest.fixture(scope="module")
def tiny_lyco(tmp_path_factory, tiny_models) -> bytes:
    from sd1kit.dev.adapters import write_synthetic_adapter
    from sd1kit.formats.source import open_source

    path = tmp_path_factory.mktemp("lyco") / "tiny-hll.safetensors"
    write_synthetic_adapter(path, open_source(tiny_models["easyfluff"]).shapes, algorithm="loha")
    return path.read_bytes()


def test_sources_parse():
    s = parse_source("hf:zatochu/EasyFluff/EasyFluffV10.1.safetensors@abc")
    assert (s.repo, s.path, s.revision) == ("zatochu/EasyFluff", "EasyFluffV10.1.safetensors", "abc")
    s = parse_source("https://huggingface.co/CluelessC/hll-test/blob/main/lyco/hll6.3-fluff-a9.safetensors")
    assert (s.scheme, s.repo, s.path, s.revision) == ("hf", "CluelessC/hll-test", "lyco/hll6.3-fluff-a9.safetensors", "main")
    s = parse_source("https://civitai.com/models/92450/fluffyrock?modelVersionId=124661")
    assert (s.scheme, s.model_id, s.version_id) == ("civitai", 92450, 124661)
    s = parse_source("urn:air:sd1:lycoris:civitai:12@34")
    assert (s.model_id, s.version_id, s.kind) == (12, 34, "lycoris")
    assert parse_source("civitai:129996").version_id is None
    assert parse_source("https://example.org/x/y.safetensors").filename == "y.safetensors"
    for bad in ("hf:only/two", "civitai:abc", "ftp://x/y", "urn:air:sdxl:checkpoint:civitai:1@2"):
        with pytest.raises(Exception, match="source"):
            parse_source(bad)


def test_install_user_record_then_generate_uses_it(cli, hub, tiny_models, tiny_lyco, tmp_path, monkeypatch):
    ckpt = tiny_models["easyfluff"].read_bytes()
    hub.files["tester/tiny-fluff/TinyFluff.safetensors"] = ckpt
    hub.files["tester/tiny-hll/lyco/tiny-hll-eps.safetensors"] = tiny_lyco + b""  # never fetched: for eps models
    _civitai_version(hub, 111, 222, "tiny-hll-fluff.safetensors", tiny_lyco)
    catalog = tmp_path / "mine.toml"
    catalog.write_text(f'''
[[model]]
id = "tiny-fluff"
name = "Tiny Fluff"
kind = "checkpoint"
files = [{{ name = "TinyFluff.safetensors", precision = "fp16", sha256 = "{_sha(ckpt)}", source = "hf:tester/tiny-fluff/TinyFluff.safetensors" }}]
prediction = "v"
zero_terminal_snr = true
yaml = "v-prediction"
settings = {{ cfg = 7.5, cfg_rescale = 0.7, clip_skip = 2 }}

[[model]]
id = "tiny-hll"
name = "Tiny HLL"
kind = "lycoris"
files = [
  {{ name = "tiny-hll-eps.safetensors", prediction = "epsilon", source = "hf:tester/tiny-hll/lyco/tiny-hll-eps.safetensors" }},
  {{ name = "tiny-hll-fluff.safetensors", prediction = "v", sha256 = "{_sha(tiny_lyco)}", source = "civitai:111@222" }},
]

[[model]]
id = "tiny-setup"
name = "Tiny Fluff + HLL"
kind = "setup"
parents = [{{ id = "tiny-fluff", relation = "component" }}, {{ id = "tiny-hll", relation = "lycoris-applied" }}]
prediction = "v"
zero_terminal_snr = true
settings = {{ cfg = 7.5, cfg_rescale = 0.7, clip_skip = 2, steps = 2, resolution = [64, 64] }}
''')
    monkeypatch.setenv("SD1KIT_CATALOG", str(catalog))
    shown = cli("models", "show", "tiny-hll").out
    assert "source    civitai:111@222" in shown and "sd1kit install tiny-hll" in shown
    r = cli("install", "tiny-setup")
    assert r.code == 0, r.err
    models = tmp_path / "home" / "models"
    sd, lyco = models / "Stable-diffusion", models / "LyCORIS"
    assert (sd / "TinyFluff.safetensors").read_bytes() == ckpt
    assert 'parameterization: "v"' in (sd / "TinyFluff.yaml").read_text()
    assert (lyco / "tiny-hll-fluff.safetensors").read_bytes() == tiny_lyco
    assert not (lyco / "tiny-hll-eps.safetensors").exists() and not hub.seen("GET", "tiny-hll-eps")
    assert not [p for p in models.rglob(".*") if p.is_file()]  # no part files left
    assert "CFG rescale 0.7" in r.out and "--cfg-rescale 0.7" in r.out and "<lyco:tiny-hll-fluff:1>" in r.out
    assert "sha256 matches the catalog's" in r.out
    # the civitai API was asked, then the download followed its redirect chain
    assert hub.seen("GET", "/api/v1/model-versions/222") and hub.seen("GET", "/r2/222") and hub.seen("GET", "/storage/222")
    out = tmp_path / "out"
    r = cli("generate", "x <lyco:tiny-hll-fluff:1>", "--model", "TinyFluff", "--steps", "1", "--size", "64x64",
            "--out", out)
    assert r.code == 0, r.err
    assert "Tiny Fluff (catalog)" in r.err and "CFG rescale 0.7" in r.err
    png = next(out.glob("*.png")).read_bytes()
    assert b"Clip skip: 2" in png and b"CFG Rescale phi: 0.7" in png and b"tiny-hll-fluff" in png
    # installing again fetches nothing
    before = len(hub.seen("GET", "/cdn/")) + len(hub.seen("GET", "/storage/"))
    r = cli("install", "tiny-setup")
    assert r.code == 0 and "present:" in r.out
    assert len(hub.seen("GET", "/cdn/")) + len(hub.seen("GET", "/storage/")) == before
    # the scan knows it, and names what the catalog has and this folder has not
    rows = cli("models", "scan", models, "--json").json()
    states = {Path(e["path"]).name: e["state"] for e in rows}
    assert states["TinyFluff.safetensors"] == "known" and states["tiny-hll-fluff.safetensors"] == "known"
    assert states["EasyFluffV10.1.safetensors"] == "not installed"


def test_cut_connection_resumes_with_range(cli, hub, tiny_models, tmp_path):
    data = tiny_models["sd15"].read_bytes()
    hub.files["tester/cut/model.safetensors"] = data
    hub.cut["tester/cut/model.safetensors"] = [40_000, 30_000, 30_000]  # three cut responses: one run's tries
    r = cli("get", "hf:tester/cut/model.safetensors", "--to", "checkpoint")
    assert r.code == 2 and "interrupted" in r.err and "run the same command again" in r.err
    assert len(r.err.strip().splitlines()) == 1
    folder = tmp_path / "home" / "models" / "Stable-diffusion"
    part = folder / ".model.safetensors.sd1kit-download"
    assert part.stat().st_size == 100_000 and not (folder / "model.safetensors").exists()
    ranges = [h.get("range") for _, p, h in hub.seen("GET", "/cdn/")]
    assert ranges == [None, "bytes=40000-", "bytes=70000-"]  # the run's own retries resumed too
    r = cli("get", "hf:tester/cut/model.safetensors", "--to", "checkpoint")
    assert r.code == 0, r.err
    assert hub.seen("GET", "/cdn/")[-1][2]["range"] == "bytes=100000-"
    assert _sha((folder / "model.safetensors").read_bytes()) == _sha(data)
    assert "resumed" in r.out and "Hugging Face's" in r.out and not part.exists()


def test_corrupted_download_is_refused(cli, hub, tiny_models, tmp_path):
    data = tiny_models["sd15"].read_bytes()
    hub.files["tester/bad/model.safetensors"] = data
    hub.corrupt.add("tester/bad/model.safetensors")
    r = cli("get", "hf:tester/bad/model.safetensors", "--to", "checkpoint")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
    assert "sha256 mismatch" in r.err and _sha(data) in r.err
    folder = tmp_path / "home" / "models" / "Stable-diffusion"
    assert list(folder.iterdir()) == []  # nothing under the final name, the part file gone
    # --sha256 that does not match what the catalog / source says is checked the same way
    hub.corrupt.clear()
    r = cli("get", "hf:tester/bad/model.safetensors", "--to", "checkpoint", "--sha256", "ab" * 32)
    assert r.code == 2 and "ab" * 32 in r.err and list(folder.iterdir()) == []


def test_gated_and_private_files_name_the_token_variable(cli, hub, tmp_path):
    hub.gated.add("gated/repo")
    r = cli("get", "hf:gated/repo/model.safetensors")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "HF_TOKEN" in r.err and "Traceback" not in r.err
    hub.civitai_private.add(7)
    r = cli("get", "civitai:5@7")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "CIVITAI_API_TOKEN" in r.err


def test_redirects_and_content_disposition_name(cli, hub, tiny_models, tiny_lyco, tmp_path):
    hub.files["civitai/901"] = tiny_lyco
    hub.versions_name["civitai/901"] = "Real Name (v2).safetensors"
    r = cli("get", f"{hub.url}/plain/901")
    assert r.code == 0, r.err
    placed = tmp_path / "home" / "models" / "LyCORIS" / "Real Name (v2).safetensors"  # its kind read from the file
    assert placed.read_bytes() == tiny_lyco
    assert "nothing to check it against" in r.out and _sha(tiny_lyco) in r.out
    assert not list(placed.parent.parent.glob(".*"))


def test_existing_right_file_is_not_fetched_again(cli, hub, tiny_models, tmp_path):
    data = tiny_models["sd15"].read_bytes()
    hub.files["tester/have/model.safetensors"] = data
    folder = tmp_path / "home" / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(data)
    r = cli("get", "hf:tester/have/model.safetensors", "--to", "checkpoint")
    assert r.code == 0 and "present:" in r.out
    assert hub.seen("HEAD") and not hub.seen("GET")
    (folder / "model.safetensors").write_bytes(data[:-1] + b"x")  # a different file under that name: not overwritten
    r = cli("get", "hf:tester/have/model.safetensors", "--to", "checkpoint")
    assert r.code == 2 and "already exists" in r.err and not hub.seen("GET")


def test_from_dir_places_known_files_and_scan_finds_a_wrong_one(cli, tiny_models, tmp_path, monkeypatch):
    data = tiny_models["easyfluff"].read_bytes()
    catalog = tmp_path / "mine.toml"
    catalog.write_text(f'''[[model]]
id = "tiny-fluff"
name = "Tiny Fluff"
kind = "checkpoint"
files = [{{ name = "TinyFluff.safetensors", sha256 = "{_sha(data)}" }}]
prediction = "v"
yaml = "v-prediction"
''')
    monkeypatch.setenv("SD1KIT_CATALOG", str(catalog))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "whatever-it-was-called.safetensors").write_bytes(data)
    (downloads / "unknown.safetensors").write_bytes(tiny_models["inpainting"].read_bytes())
    r = cli("get", "--from-dir", downloads, "--models-dir", tmp_path / "m" / "models")
    assert r.code == 0, r.err
    placed = tmp_path / "m" / "models" / "Stable-diffusion" / "TinyFluff.safetensors"
    assert placed.read_bytes() == data and placed.with_suffix(".yaml").exists()
    assert (downloads / "whatever-it-was-called.safetensors").exists()  # the input is left as it was
    assert "unknown.safetensors" in r.out and "not in the catalog" in r.out
    wrong = tmp_path / "m" / "models" / "Stable-diffusion" / "other" / "TinyFluff.safetensors"
    wrong.parent.mkdir()
    wrong.write_bytes(tiny_models["inpainting"].read_bytes())
    rows = {e["path"]: e for e in cli("models", "scan", tmp_path / "m" / "models", "--json").json()}
    assert rows[str(wrong)]["state"] == "wrong file" and rows[str(wrong)]["expected_sha256"] == _sha(data)
    assert rows[str(placed)]["state"] == "known"
    text = cli("models", "scan", tmp_path / "m" / "models").out
    assert "WRONG FILE" in text and "known, not installed" in text


def _downloader(**kw):
    return download.Downloader(progress=False, backoff=0.0, log=lambda line: None, **kw)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*")) if folder.exists() else []


def test_second_download_of_one_target_touches_nothing(hub, tmp_path):
    """A1: the part is locked before it is truncated or its .json written, and stays locked until it is renamed;
    the hash cached is the renamed file's."""
    from sd1kit.formats.hashes import cache_path, read_cache

    data = bytes(range(256)) * 400
    hub.files["tester/race/f.bin"] = data
    url, folder = f"{hub.url}/cdn/tester/race/f.bin", tmp_path / "dl"
    part = folder / ".f.bin.sd1kit-download"
    seen = {}

    def choose(path: Path) -> Path:  # runs while the first download holds the verified part
        seen["part"], seen["meta"] = path.read_bytes(), (folder / ".f.bin.sd1kit-download.json").read_bytes()
        with pytest.raises(download.Sd1kitError, match="another sd1kit is downloading"):
            _downloader().fetch(download.Remote(url=url, sha256=_sha(data), sha256_from="catalog"), folder, "f.bin")
        seen["after"] = path.read_bytes(), (folder / ".f.bin.sd1kit-download.json").read_bytes()
        return folder

    got = _downloader().fetch(download.Remote(url=url, sha256=_sha(data), sha256_from="catalog"), folder, "f.bin",
                              choose_folder=choose)
    assert seen["part"] == data and seen["after"] == (seen["part"], seen["meta"])  # the second one changed nothing
    assert got.path.read_bytes() == data and got.checked == "catalog" and not part.exists()
    assert len(hub.seen("GET", "/cdn/")) == 1
    cached = read_cache(cache_path())["files"][str(got.path.resolve())]["hashes"]["sha256"]
    assert cached == _sha(got.path.read_bytes())


def test_416_completes_only_a_whole_part(hub, tmp_path):
    """A2: a 416 answer finishes a part only when Content-Range says bytes */N of the part's own size; otherwise the
    whole file is asked for again."""
    data = bytes(range(256)) * 40
    key = "tester/r416/f.bin"
    hub.files[key] = data
    url, folder = f"{hub.url}/cdn/{key}", tmp_path / "dl"
    folder.mkdir()
    part, meta = folder / ".f.bin.sd1kit-download", folder / ".f.bin.sd1kit-download.json"
    etag = f'"{_sha(data)[:16]}"'

    def plant(body: bytes):
        part.write_bytes(body)
        meta.write_text(json.dumps({"url": url, "sha256": None, "etag": etag}))
        (folder / "f.bin").unlink(missing_ok=True)
        hub.requests.clear()

    plant(data[:1000])  # a bare 416 (no Content-Range): not "whole", start again
    hub.bad416.add(key)
    got = _downloader().fetch(download.Remote(url=url), folder, "f.bin")
    assert got.path.read_bytes() == data and got.status == "downloaded"
    assert [h.get("range") for _, _, h in hub.seen("GET")] == ["bytes=1000-", None]
    hub.bad416.clear()
    plant(data + b"junk")  # 416 bytes */N with N not the part's size: start again
    got = _downloader().fetch(download.Remote(url=url), folder, "f.bin")
    assert got.path.read_bytes() == data and got.status == "downloaded"
    assert [h.get("range") for _, _, h in hub.seen("GET")] == [f"bytes={len(data) + 4}-", None]
    plant(data)  # 416 bytes */N with N the part's size: it was whole
    got = _downloader().fetch(download.Remote(url=url), folder, "f.bin")
    assert got.path.read_bytes() == data and got.status == "resumed" and len(hub.seen("GET")) == 1
    assert _hidden(folder) == []


def test_changed_file_is_not_spliced(hub, tmp_path):
    """A3: with no hash and no ETag a part is not continued; with an ETag, a 206 of another ETag starts again."""
    old, new = b"O" * 100_000, b"N" * 100_000
    for key, etag in (("tester/plain/noetag.bin", False), ("tester/plain/etag.bin", True)):
        hub.files[key] = old
        if not etag:
            hub.no_etag.add(key)
        hub.cut[key] = [40_000]
        url, folder = f"{hub.url}/cdn/{key}", tmp_path / key.rsplit("/", 1)[-1]
        name = key.rsplit("/", 1)[-1]
        with pytest.raises(download.Sd1kitError, match="interrupted"):
            _downloader(retries=0).fetch(download.Remote(url=url), folder, name)
        assert (folder / f".{name}.sd1kit-download").stat().st_size == 40_000
        hub.files[key] = new  # the file changed on the server (which ignores If-Range)
        hub.requests.clear()
        got = _downloader().fetch(download.Remote(url=url), folder, name)
        assert got.path.read_bytes() == new, key
        ranges = [h.get("range") for _, _, h in hub.seen("GET")]
        assert ranges == (["bytes=40000-", None] if etag else [None]), key
        assert _hidden(folder) == []


def test_download_stops_at_the_size_it_can_have(cli, hub, tiny_lyco, tmp_path, monkeypatch):
    """A4: more bytes than expected stop the download and remove the part: Civitai's sizeKB, a catalog size, the
    source's exact size, DEFAULT_LIMIT when nothing is known."""
    from sd1kit.install.actions import size_limit

    assert size_limit("2.13 GB") >= 2.13 * 1024 ** 3 and size_limit("2.13 GB") < 2.5 * 1024 ** 3
    assert size_limit("581 B") < 10_000 and size_limit("1.21 kB") < 10_000 and size_limit("big") is None
    models = tmp_path / "home" / "models"
    _civitai_version(hub, 40, 41, "endless.safetensors", b"x" * 2000)
    hub.endless["civitai/41"] = 200  # 12.5 MiB, chunked, for a file Civitai says is 2 kB
    r = cli("get", "civitai:40@41", "--to", "lora")
    assert r.code == 2 and "more than" in r.err and len(r.err.strip().splitlines()) == 1
    assert _hidden(models) == [] and not list((models / "Lora").iterdir())
    # nothing known but the stream itself: DEFAULT_LIMIT
    monkeypatch.setattr(download, "DEFAULT_LIMIT", 1 << 20)
    hub.files["tester/endless/e.bin"] = b""
    hub.endless["tester/endless/e.bin"] = 200
    with pytest.raises(download.Sd1kitError, match="more than the 1048576 bytes"):
        _downloader().fetch(download.Remote(url=f"{hub.url}/cdn/tester/endless/e.bin"), tmp_path / "e", "e.bin")
    assert _hidden(tmp_path / "e") == []
    # the catalog's size bounds a Content-Length: refused before anything is written
    hub.files["tester/big/big.safetensors"] = tiny_lyco
    catalog = tmp_path / "mine.toml"
    catalog.write_text(f'''[[model]]
id = "tiny-big"
name = "Tiny Big"
kind = "lycoris"
files = [{{ name = "big.safetensors", size = "1 kB", source = "{hub.url}/cdn/tester/big/big.safetensors" }}]
''')
    monkeypatch.setenv("SD1KIT_CATALOG", str(catalog))
    r = cli("install", "tiny-big")
    assert r.code == 2 and "offers" in r.err and _hidden(models) == []
    # a part bigger than the Hub says the file is is not continued
    data = tiny_lyco
    hub.files["tester/hf/x.safetensors"] = data
    folder = models / "LyCORIS"
    (folder / ".x.safetensors.sd1kit-download").write_bytes(data + b"more")
    (folder / ".x.safetensors.sd1kit-download.json").write_text(json.dumps({"url": "", "sha256": _sha(data)}))
    hub.requests.clear()
    r = cli("get", "hf:tester/hf/x.safetensors", "--to", "lycoris")
    assert r.code == 0, r.err
    assert (folder / "x.safetensors").read_bytes() == data and "range" not in hub.seen("GET", "/cdn/")[0][2]


def test_civitai_token_goes_only_to_civitai(cli, hub, tiny_lyco, tmp_path, monkeypatch):
    """A5: CIVITAI_API_TOKEN goes to the API and to a downloadUrl on the endpoint's own scheme and host only."""
    import httpx

    from sd1kit.install.remote import resolve

    monkeypatch.setenv("CIVITAI_API_TOKEN", "SECRET-TOKEN")
    _civitai_version(hub, 50, 51, "elsewhere.safetensors", tiny_lyco)
    hub.versions[51]["files"][0]["downloadUrl"] = f"{hub.cdn}/storage/51"  # another host
    r = cli("get", "civitai:50@51", "--to", "lycoris")
    assert r.code == 0, r.err
    assert hub.seen("GET", "/api/v1/model-versions/51")[0][2]["authorization"] == "Bearer SECRET-TOKEN"
    assert "authorization" not in hub.seen("GET", "/storage/51")[0][2]
    _civitai_version(hub, 52, 53, "own.safetensors", tiny_lyco + b"")
    r = cli("get", "civitai:52@53", "--to", "lycoris", "--name", "own.safetensors")
    assert r.code == 0, r.err
    assert hub.seen("GET", "/api/download/models/53")[0][2]["authorization"] == "Bearer SECRET-TOKEN"

    # an https endpoint whose answer names a plain-http downloadUrl: refused (no socket: a mock transport)
    def answer(request):
        return httpx.Response(200, json={"id": 5, "modelId": 1, "model": {"type": "LORA"}, "files": [
            {"name": "x.safetensors", "primary": True, "downloadUrl": "http://cdn.example/x.safetensors"}]})

    monkeypatch.setenv("SD1KIT_CIVITAI_ENDPOINT", "https://civitai.example")
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(download.Sd1kitError, match="plain-http download URL"):
            resolve(parse_source("civitai:1@5"), client)


def test_catalog_files_are_matched_by_specific_names_only(cli, hub, tiny_models, tiny_lyco, tmp_path, monkeypatch):
    """A6: a generic name (model.ckpt, diffusion_pytorch_model.safetensors) is no catalog file's; a plain URL or a
    Content-Disposition name that is a catalog file's must have its sha256."""
    hub.files["tester/other/model.ckpt"] = b"not nai" * 100  # the packaged catalog's nai-v1 is .../model.ckpt
    hub.files["tester/other/unet/diffusion_pytorch_model.safetensors"] = b"not nai either" * 100
    for path in ("model.ckpt", "unet/diffusion_pytorch_model.safetensors"):
        r = cli("get", f"hf:tester/other/{path}", "--to", "checkpoint")
        assert r.code == 0 and "matches the Hugging Face's" in r.out and "catalog" not in r.err, r.err
    ckpt = tiny_models["easyfluff"].read_bytes()
    catalog = tmp_path / "mine.toml"
    catalog.write_text(f'''[[model]]
id = "tiny-fluff"
name = "Tiny Fluff"
kind = "checkpoint"
files = [{{ name = "TinyFluff.safetensors", sha256 = "{_sha(ckpt)}" }}]
''')
    monkeypatch.setenv("SD1KIT_CATALOG", str(catalog))
    hub.files["mirror/x/TinyFluff.safetensors"] = tiny_lyco  # a mirror's file of that name, not that file
    r = cli("get", f"{hub.url}/cdn/mirror/x/TinyFluff.safetensors")
    assert r.code == 2 and "sha256 mismatch" in r.err and _sha(ckpt) in r.err and "catalog" in r.err
    hub.files["civitai/906"] = tiny_lyco  # the name only the Content-Disposition gives
    hub.versions_name["civitai/906"] = "TinyFluff.safetensors"
    r = cli("get", f"{hub.url}/plain/906")
    assert r.code == 2 and "sha256 mismatch" in r.err and _sha(ckpt) in r.err
    hub.files["mirror/x/TinyFluff.safetensors"] = ckpt
    r = cli("get", f"{hub.url}/cdn/mirror/x/TinyFluff.safetensors")
    assert r.code == 0 and "sha256 matches the catalog's" in r.out, r.err
    assert (tmp_path / "home" / "models" / "Stable-diffusion" / "TinyFluff.safetensors").read_bytes() == ckpt


def test_planted_links_are_refused(cli, hub, tmp_path):
    """A7: a link (symbolic or hard) where the part or its .json goes is refused; what it points at is untouched."""
    import os

    hub.files["tester/link/f.safetensors"] = b"OVERWRITTEN" * 100
    folder = tmp_path / "home" / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    part, meta = folder / ".f.safetensors.sd1kit-download", folder / ".f.safetensors.sd1kit-download.json"
    for planted, how in ((part, os.symlink), (meta, os.symlink), (part, os.link)):
        victim.write_text("precious\n")
        how(victim, planted)
        r = cli("get", "hf:tester/link/f.safetensors", "--to", "checkpoint")
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "remove it" in r.err, r.err
        assert victim.read_text() == "precious\n" and not (folder / "f.safetensors").exists()
        planted.unlink()


def test_refusals_are_one_line(cli, hub, tiny_lyco, tmp_path):
    """A8: a redirect to file:// (at once, no retries), https down to http, a malformed URL, a name too long, a file
    of no known kind (nothing left behind), and a URL's query kept out of messages and the part's .json."""
    import httpx

    models = tmp_path / "home" / "models"
    hub.redirect["file"] = "file:///etc/passwd"
    r = cli("get", f"{hub.url}/go/file", "--to", "lora")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "not http(s)" in r.err, r.err
    assert len(hub.seen("GET", "/go/file")) == 1 and _hidden(models) == []
    r = cli("get", "http://[::1")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "not a valid URL" in r.err
    hub.files["civitai/907"] = tiny_lyco
    hub.versions_name["civitai/907"] = "é" * 200 + ".safetensors"
    r = cli("get", f"{hub.url}/plain/907", "--to", "lycoris")
    assert r.code == 2 and "too long" in r.err and "--name" in r.err and _hidden(models) == []
    r = cli("get", f"{hub.url}/plain/907", "--to", "lycoris", "--name", "short.safetensors")
    assert r.code == 0 and (models / "LyCORIS" / "short.safetensors").read_bytes() == tiny_lyco
    hub.files["junk/junk.safetensors"] = b"no model at all" * 100
    r = cli("get", f"{hub.url}/cdn/junk/junk.safetensors")
    assert r.code == 2 and "cannot tell what kind" in r.err and _hidden(models) == []
    r = cli("get", f"{hub.url}/cdn/missing.safetensors?token=SECRET")
    assert r.code == 2 and "404" in r.err and "SECRET" not in r.err
    hub.files["q/cut.safetensors"] = tiny_lyco
    hub.cut["q/cut.safetensors"] = [1000, 1000, 1000]
    r = cli("get", f"{hub.url}/cdn/q/cut.safetensors?token=SECRET", "--to", "lycoris")
    assert r.code == 2 and "interrupted" in r.err and "SECRET" not in r.err, r.err
    saved = (models / "LyCORIS" / ".cut.safetensors.sd1kit-download.json").read_text()
    assert "SECRET" not in saved and "/cdn/q/cut.safetensors" in saved

    # https redirected down to plain http: refused, nothing written (no socket: a mock transport)
    def answer(request):
        if request.url.scheme == "https":
            return httpx.Response(302, headers={"Location": "http://cdn.example/f.bin"})
        return httpx.Response(200, content=b"x" * 100)

    with httpx.Client(transport=httpx.MockTransport(answer), follow_redirects=True) as client:
        with pytest.raises(download.Sd1kitError, match="redirected from https to http://cdn.example/f.bin"):
            _downloader(client=client).fetch(download.Remote(url="https://files.example/f.bin"), tmp_path / "m", "f.bin")
    assert _hidden(tmp_path / "m") == []
