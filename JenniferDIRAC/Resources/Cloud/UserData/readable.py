"""A rendered #cloud-config document as a person reads it: encoded files decoded in place."""

from __future__ import annotations

import base64
import binascii
import gzip

import yaml

_DECODERS = {
    "b64": lambda data: base64.b64decode(data, validate=True),
    "base64": lambda data: base64.b64decode(data, validate=True),
    "gz+b64": lambda data: gzip.decompress(base64.b64decode(data, validate=True)),
    "gzip+base64": lambda data: gzip.decompress(base64.b64decode(data, validate=True)),
    "gz+base64": lambda data: gzip.decompress(base64.b64decode(data, validate=True)),
    "gzip+b64": lambda data: gzip.decompress(base64.b64decode(data, validate=True)),
}


class _Literal(str):
    """Dumped as a YAML literal block, so file contents keep their lines."""


def _literal(dumper, value):
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal)


def _decoded(entry: dict) -> dict:
    decode = _DECODERS.get(str(entry.get("encoding", "")).lower())
    if decode is None or not isinstance(entry.get("content"), str):
        return entry
    try:
        text = decode(entry["content"]).decode("utf-8")
    except (binascii.Error, OSError, EOFError, UnicodeDecodeError, ValueError):
        return entry  # binary content stays encoded
    shown = {key: value for key, value in entry.items() if key not in ("encoding", "content")}
    shown["content"] = _Literal(text)
    return shown


def readable_cloud_config(text: str) -> str:
    """`text` with every encoded ``write_files`` content shown decoded (not for sending: the
    ``encoding`` keys are dropped)."""
    document = yaml.safe_load(text)
    if not isinstance(document, dict):
        return text
    files = document.get("write_files")
    if isinstance(files, list):
        document["write_files"] = [_decoded(entry) if isinstance(entry, dict) else entry for entry in files]
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return "#cloud-config\n" + body
