"""From a Source to the one file to fetch (a `Remote`): Hugging Face through huggingface_hub, Civitai through its
public REST API, plain URLs as they are.

Hugging Face: `huggingface_hub` builds the resolve URL (`hf_hub_url`, on the endpoint `HF_ENDPOINT` names, read
when called), reads the file's metadata with its HEAD call (`get_hf_file_metadata`: size, commit, and for LFS files
the sha256 as the linked ETag) and maps the Hub's errors (gated repo, missing repo / revision / file); the token is
`HF_TOKEN` (or the one `hf auth login` saved). The bytes then go through sd1kit's own writer (download.py) rather
than `hf_hub_download`: that writes into its blob cache (or `local_dir/.cache/huggingface/`) and gives the file
its final name without checking it against a hash we know, where sd1kit's rule is a part file beside the target,
verified, then renamed, resumable from that part.

Civitai: `GET {SD1KIT_CIVITAI_ENDPOINT or https://civitai.com}/api/v1/model-versions/{id}` (a model without a version:
`/api/v1/models/{id}` and its first, newest, version), the primary file (or the one of the asked precision), its
SHA256, its sizeKB (a bound on the download's size), and its downloadUrl (redirects followed);
`CIVITAI_API_TOKEN` goes as `Authorization: Bearer` to the API, and to the downloadUrl only when that is on the
endpoint's own scheme and host (a downloadUrl elsewhere gets no token; a plain-http one under an https endpoint is
refused).
"""

from __future__ import annotations

import math
import os
import re
from urllib.parse import urlparse

import httpx

from sd1kit.errors import Sd1kitError
from sd1kit.install.download import Remote, safe_name, shown_url
from sd1kit.install.sources import AIR_KINDS, Source

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
CIVITAI_TYPES = {"checkpoint": "checkpoint", "lora": "lora", "locon": "lycoris", "lycoris": "lycoris", "dora": "lora",
                 "textualinversion": "embedding", "vae": "vae", "controlnet": "controlnet"}


def hf_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def civitai_endpoint() -> str:
    return (os.environ.get("SD1KIT_CIVITAI_ENDPOINT") or "https://civitai.com").rstrip("/")


def resolve(source: Source, client: httpx.Client, variant: str | None = None) -> Remote:
    if source.scheme == "hf":
        return _hf(source)
    if source.scheme == "civitai":
        return _civitai(source, client, variant)
    return Remote(url=source.url, name=None, label=shown_url(source.text), kind=source.kind)


def _hf(source: Source) -> Remote:
    from huggingface_hub import get_hf_file_metadata, get_token, hf_hub_url
    from huggingface_hub import errors as hf_errors

    label = source.text
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise Sd1kitError(label, "HF_HUB_OFFLINE is set: not going online (download elsewhere, then "
                                 "sd1kit get --from-dir DIR)")
    endpoint = hf_endpoint()
    url = hf_hub_url(source.repo, source.path, revision=source.revision, endpoint=endpoint)
    token = os.environ.get("HF_TOKEN") or get_token()
    try:
        meta = get_hf_file_metadata(url, token=token or False, endpoint=endpoint)
    except hf_errors.GatedRepoError:
        raise Sd1kitError(label, f"{source.repo} is a gated repository: accept its terms on the Hub, then set HF_TOKEN "
                                 "to a token of that account") from None
    except hf_errors.RevisionNotFoundError:
        raise Sd1kitError(label, f"{source.repo} has no revision {source.revision!r}") from None
    except hf_errors.RemoteEntryNotFoundError:
        raise Sd1kitError(label, f"{source.repo} has no file {source.path!r}") from None
    except hf_errors.RepositoryNotFoundError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        raise Sd1kitError(label, f"repository {source.repo} not found, or private (HTTP {status}): for a private or "
                                 "gated one set HF_TOKEN") from None
    except hf_errors.HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            raise Sd1kitError(label, f"HTTP {status}: the file needs an access token; set HF_TOKEN") from None
        raise Sd1kitError(label, f"the Hub answered HTTP {status}") from None
    except hf_errors.OfflineModeIsEnabled:
        raise Sd1kitError(label, "huggingface_hub is in offline mode (HF_HUB_OFFLINE)") from None
    except Exception as e:  # noqa: BLE001 - transport errors of the Hub client (httpx2), said in one line
        if isinstance(e, Sd1kitError):
            raise
        raise Sd1kitError(label, f"cannot reach {endpoint} ({e.__class__.__name__}: {e})") from None
    etag = (meta.etag or "").lower()
    sha = etag if _HEX64.match(etag) else None  # an LFS file's ETag is its sha256; a git blob's is a sha1
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Remote(url=url, name=safe_name(source.filename), sha256=sha, sha256_from="Hugging Face" if sha else None,
                  size=meta.size, headers=headers, token_var="HF_TOKEN", label=label)


def _civitai_get(client: httpx.Client, path: str, label: str, headers: dict) -> dict:
    url = f"{civitai_endpoint()}{path}"
    try:
        response = client.get(url, headers=headers)
    except httpx.HTTPError as e:
        raise Sd1kitError(label, f"cannot reach {civitai_endpoint()} ({e.__class__.__name__}: {e})") from None
    if response.status_code in (401, 403):
        raise Sd1kitError(label, f"civitai answered HTTP {response.status_code}: this needs an API token; set "
                                 "CIVITAI_API_TOKEN")
    if response.status_code == 404:
        raise Sd1kitError(label, "civitai knows no such model or version")
    if response.status_code >= 400:
        raise Sd1kitError(label, f"civitai answered HTTP {response.status_code}")
    try:
        data = response.json()
    except ValueError:
        raise Sd1kitError(label, "civitai's answer is not JSON") from None
    if not isinstance(data, dict):
        raise Sd1kitError(label, "civitai's answer is not an object")
    return data


def _civitai(source: Source, client: httpx.Client, variant: str | None) -> Remote:
    label = source.text
    token = os.environ.get("CIVITAI_API_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    model_type = None
    if source.version_id is None:
        model = _civitai_get(client, f"/api/v1/models/{source.model_id}", label, headers)
        versions = model.get("modelVersions") or []
        if not versions or not isinstance(versions[0], dict) or "id" not in versions[0]:
            raise Sd1kitError(label, "civitai lists no version of this model")
        version_id, model_type = versions[0]["id"], model.get("type")
    else:
        version_id = source.version_id
    version = _civitai_get(client, f"/api/v1/model-versions/{version_id}", label, headers)
    if source.model_id is not None and version.get("modelId") not in (None, source.model_id):
        raise Sd1kitError(label, f"version {version_id} belongs to civitai model {version.get('modelId')}, "
                                 f"not {source.model_id}")
    model_type = model_type or (version.get("model") or {}).get("type")
    files = [f for f in version.get("files") or [] if isinstance(f, dict) and f.get("downloadUrl")]
    if not files:
        raise Sd1kitError(label, "civitai lists no downloadable file for this version")
    models = [f for f in files if f.get("type") in (None, "Model", "Pruned Model")] or files
    chosen = None
    if variant:
        chosen = next((f for f in models if str((f.get("metadata") or {}).get("fp", "")).lower() == variant), None)
        if chosen is None:
            raise Sd1kitError(label, f"civitai lists no {variant} file for this version")
    chosen = chosen or next((f for f in models if f.get("primary")), models[0])
    sha = str((chosen.get("hashes") or {}).get("SHA256", "")).lower() or None
    if sha and not _HEX64.match(sha):
        sha = None
    kind = source.kind or CIVITAI_TYPES.get(str(model_type or "").lower()) or AIR_KINDS.get(str(model_type or "").lower())
    url = str(chosen["downloadUrl"])
    try:
        where, endpoint = urlparse(url), urlparse(civitai_endpoint())
    except ValueError:
        raise Sd1kitError(label, f"civitai gives a download URL that is not one: {shown_url(url)!r}") from None
    if where.scheme.lower() not in ("http", "https") or not where.netloc:
        raise Sd1kitError(label, f"civitai gives a download URL that is not http(s): {shown_url(url)!r}")
    if endpoint.scheme.lower() == "https" and where.scheme.lower() != "https":
        raise Sd1kitError(label, f"civitai gives a plain-http download URL ({shown_url(url)}); refused")
    own = (where.scheme.lower(), where.netloc.lower()) == (endpoint.scheme.lower(), endpoint.netloc.lower())
    size_kb = chosen.get("sizeKB")
    limit = None
    if isinstance(size_kb, (int, float)) and not isinstance(size_kb, bool) and math.isfinite(size_kb) and size_kb > 0:
        limit = math.ceil(size_kb * 1024 * 1.01) + 4096  # sizeKB is bytes / 1024, as a float: a bound, not exact
    return Remote(url=url, name=safe_name(chosen.get("name")), sha256=sha,
                  sha256_from="civitai" if sha else None, limit=limit,
                  headers=headers if own else {}, token_var="CIVITAI_API_TOKEN", kind=kind,
                  label=label)
