"""Where a file comes from: the SOURCE forms `sd1kit get` and catalog `source` fields take, parsed into one shape.

- Hugging Face: `hf:OWNER/REPO/PATH[@REVISION]`, `https://huggingface.co/OWNER/REPO/resolve/REV/PATH` or `/blob/`
  (also on the host `HF_ENDPOINT` names);
- Civitai: `civitai:MODEL[@VERSION]`, `https://civitai.com/models/ID[/slug][?modelVersionId=V]`,
  `https://civitai.com/api/download/models/V`, the AIR form `urn:air:sd1:KIND:civitai:MODEL@VERSION`;
- any other http(s) URL, fetched as it is.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlparse

from sd1kit.errors import Sd1kitError

HF_HOSTS = ("huggingface.co", "hf.co", "www.huggingface.co")
CIVITAI_HOSTS = ("civitai.com", "www.civitai.com", "civitai.green")
# AIR resource kinds (and civitai model types) -> sd1kit kinds, i.e. A1111 folders
AIR_KINDS = {"checkpoint": "checkpoint", "lora": "lora", "locon": "lycoris", "lycoris": "lycoris",
             "embedding": "embedding", "textualinversion": "embedding", "vae": "vae", "controlnet": "controlnet"}
_REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Source:
    scheme: str  # "hf", "civitai" or "url"
    text: str  # as given
    repo: str | None = None  # hf: OWNER/REPO
    path: str | None = None  # hf: the file inside the repo
    revision: str | None = None  # hf: branch, tag or commit (None: main)
    model_id: int | None = None  # civitai
    version_id: int | None = None  # civitai
    url: str | None = None  # url
    kind: str | None = None  # what the source itself says (an AIR kind)

    @property
    def filename(self) -> str | None:
        """The file name the source names, when it names one (hf paths; not civitai or most URLs)."""
        if self.scheme == "hf":
            return self.path.rsplit("/", 1)[-1]
        if self.scheme == "url":
            name = unquote(urlparse(self.url).path.rsplit("/", 1)[-1])
            return name or None
        return None


def _bad(text: str, why: str):
    from sd1kit.install.download import shown_url

    raise Sd1kitError("source", f"{shown_url(text) if '://' in text else text!r}: {why}")


def _hf(text: str, repo_path: str, revision: str | None) -> Source:
    parts = [p for p in repo_path.split("/")]
    if len(parts) < 3 or not all(parts) or not all(_REPO_PART.match(p) for p in parts[:2]):
        _bad(text, "expected hf:OWNER/REPO/PATH[@REVISION]")
    if any(p in (".", "..") for p in parts):
        _bad(text, "the path may not contain . or .. parts")
    return Source("hf", text, repo="/".join(parts[:2]), path="/".join(parts[2:]), revision=revision or None)


def _int(text: str, value: str | None, what: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit():
        _bad(text, f"the civitai {what} id must be a number, not {value!r}")
    return int(value)


def _hf_hosts() -> tuple[str, ...]:
    endpoint = os.environ.get("HF_ENDPOINT")
    extra = (urlparse(endpoint).netloc.lower(),) if endpoint else ()
    return HF_HOSTS + extra


def parse_source(text: str) -> Source:
    """One SOURCE string as a Source; an unknown form is one error naming the forms that work."""
    s = text.strip()
    low = s.lower()
    if low.startswith("hf:"):
        body, _, revision = s[3:].partition("@")
        return _hf(text, body.strip("/"), revision)
    if low.startswith("civitai:"):
        model, _, version = s[8:].partition("@")
        if not model and not version:
            _bad(text, "expected civitai:MODEL[@VERSION]")
        return Source("civitai", text, model_id=_int(text, model, "model"), version_id=_int(text, version, "version"))
    if low.startswith(("urn:air:", "air:")):
        # urn:air:{ecosystem}:{type}:{source}:{id}[@{version}][.format]
        fields = s.split(":")[2:] if low.startswith("urn:") else s.split(":")[1:]
        if len(fields) != 4:
            _bad(text, "expected urn:air:sd1:KIND:civitai:MODEL@VERSION")
        ecosystem, kind, origin, ident = fields
        if origin.lower() != "civitai":
            _bad(text, f"AIR source {origin!r} is not supported (civitai is)")
        if ecosystem.lower() not in ("sd1", "sd15", "sd1.5"):
            _bad(text, f"AIR ecosystem {ecosystem!r} is not SD1")
        ident = ident.split(".", 1)[0]
        model, _, version = ident.partition("@")
        return Source("civitai", text, model_id=_int(text, model, "model"), version_id=_int(text, version, "version"),
                      kind=AIR_KINDS.get(kind.lower()))
    if low.startswith(("https://", "http://")):
        try:
            u = urlparse(s)
            u.port  # noqa: B018 - a bad port is found here, not later
        except ValueError as e:
            _bad(text, f"not a valid URL ({e})")
        host = u.netloc.lower()
        if host in _hf_hosts():
            m = re.match(r"^/(?:(?:models|datasets|spaces)/)?([^/]+/[^/]+)/(?:resolve|blob)/([^/]+)/(.+)$", u.path)
            if m:
                return _hf(text, f"{m[1]}/{unquote(m[3])}", unquote(m[2]))
        if host in CIVITAI_HOSTS:
            m = re.match(r"^/models/(\d+)", u.path)
            if m:
                version = parse_qs(u.query).get("modelVersionId", [None])[0]
                return Source("civitai", text, model_id=int(m[1]), version_id=_int(text, version, "version"))
            m = re.match(r"^/api/download/models/(\d+)", u.path)
            if m:
                return Source("civitai", text, version_id=int(m[1]))
        if not u.netloc:
            _bad(text, "a URL needs a host")
        return Source("url", text, url=s)
    _bad(text, "not a source: give hf:OWNER/REPO/PATH[@REV], civitai:MODEL[@VERSION], "
               "urn:air:sd1:KIND:civitai:MODEL@VERSION, or an https URL")
