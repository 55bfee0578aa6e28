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
            if disposition:
                name = hub.versions_name.get(key, "download.bin")
                headers["Content-Disposition"] = f'attachment; filename="{name}"'
            start, code = 0, 200
            rng = self.headers.get("Range")
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
