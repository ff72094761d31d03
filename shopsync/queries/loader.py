"""Loading the resource files: the packaged ones, then the user's ``queries_dir``.

A user file with the same name replaces the packaged one. Each file is parsed
(:mod:`shopsync.queries.parser`) and every document built from it validated
(:mod:`shopsync.queries.validation`) once per process and content (the cache below).
"""

from __future__ import annotations

from importlib import resources as _pkg_resources
from pathlib import Path

from shopsync.errors import QueryDocumentError
from shopsync.queries.model import Resource
from shopsync.queries.parser import parse_resource
from shopsync.queries.validation import validate_documents
from shopsync.shopify.schema import load_schema


def packaged_dir() -> Path:
    """The folder of the resource files shipped with shopsync."""
    return Path(str(_pkg_resources.files(__package__) / "resources"))


#: (path, file content) -> Resource: each file content is validated at most once per process.
_CACHE: dict[tuple[str, str], Resource] = {}


def load_resources(extra_dir: Path | None = None) -> dict[str, Resource]:
    """All resources: the packaged files, then ``extra_dir``'s (same name replaces packaged).

    Each resource's header is checked and every document built from it is validated against the
    pinned schema; the first problem raises :class:`QueryDocumentError` naming the file and line.
    """
    files: dict[str, Path] = {p.stem: p for p in sorted(packaged_dir().glob("*.graphql"))}
    if extra_dir is not None:
        extra_dir = Path(extra_dir)
        if not extra_dir.is_dir():
            raise QueryDocumentError(f"{extra_dir}: queries_dir is not a readable directory")
        for p in sorted(extra_dir.glob("*.graphql")):
            files[p.stem] = p
    out: dict[str, Resource] = {}
    for name, path in files.items():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise QueryDocumentError(f"{path}: cannot read: {exc}") from exc
        out[name] = load_resource_text(name, path, text)
    return out


def load_resource_text(name: str, path: Path, text: str) -> Resource:
    """Parse and validate one resource file's ``text`` (cached by path and content)."""
    key = (str(path), text)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    resource = parse_resource(name, Path(path), text, load_schema())
    validate_documents(resource)
    _CACHE[key] = resource
    return resource


__all__ = ["load_resource_text", "load_resources", "packaged_dir"]
