"""``buildx imagetools inspect --format``: a Go template over buildx's fields.

``.Name`` (as given), ``.Manifest`` (an index: schemaVersion, mediaType, digest, size, manifests,
annotations; a single manifest: its descriptor) and ``.Image`` (the image config; for several
platforms a map ``os/arch[/variant]`` -> config). Values are Go structs: fields by their Go names
in the template (``{{.Image.Architecture}}``), JSON names in buildx's ``json`` function (indented
by two, struct order, map keys sorted, HTML characters escaped as encoding/json does).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dockyard.gotemplate import Context, Func

# (Go field, JSON name, omitempty) in the order the Go structs declare them.
_PLATFORM = (("Architecture", "architecture", False), ("OS", "os", False),
             ("OSVersion", "os.version", True), ("OSFeatures", "os.features", True),
             ("Variant", "variant", True))
_DESCRIPTOR = (("MediaType", "mediaType", False), ("Digest", "digest", False), ("Size", "size", False),
               ("URLs", "urls", True), ("Annotations", "annotations", True), ("Data", "data", True),
               ("Platform", "platform", True), ("ArtifactType", "artifactType", True))
_INDEX = (("SchemaVersion", "schemaVersion", False), ("MediaType", "mediaType", True),
          ("Digest", "digest", False), ("Size", "size", False), ("Manifests", "manifests", False),
          ("Annotations", "annotations", True))
_IMAGE = (("Created", "created", True), ("Author", "author", True), ("Architecture", "architecture", False),
          ("OS", "os", False), ("OSVersion", "os.version", True), ("OSFeatures", "os.features", True),
          ("Variant", "variant", True), ("Config", "config", False), ("RootFS", "rootfs", False),
          ("History", "history", True))
_CONFIG = tuple((k, k, True) for k in ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes",
                                       "WorkingDir", "Labels", "StopSignal", "ArgsEscaped"))
_ROOTFS = (("Type", "type", False), ("DiffIDs", "diff_ids", False))
_HISTORY = (("Created", "created", True), ("CreatedBy", "created_by", True), ("Author", "author", True),
            ("Comment", "comment", True), ("EmptyLayer", "empty_layer", True))


class GoStruct(Context):
    """A Go struct value: fields by Go name for the template, JSON names (in order) for ``json``."""

    def __init__(self, type_name: str, fields: tuple[tuple[str, str, bool], ...], doc: Mapping[str, Any],
                 nested: Mapping[str, Any] | None = None) -> None:
        nested = nested or {}
        values = {go: nested[go](doc.get(js)) if go in nested else doc.get(js) for go, js, _ in fields}
        super().__init__(values, type_name=type_name)
        self.layout = fields

    @property
    def go_type(self) -> str:
        return f"*{self.type_name}"


def _maybe(make: Any) -> Any:
    return lambda v: None if v is None else make(v)


def _platform(doc: Mapping[str, Any]) -> GoStruct:
    return GoStruct("v1.Platform", _PLATFORM, doc)


def _descriptor(doc: Mapping[str, Any]) -> GoStruct:
    return GoStruct("v1.Descriptor", _DESCRIPTOR, doc, {"Platform": _maybe(_platform)})


def manifest_value(raw: bytes, media_type: str, digest: str, indexes: tuple[str, ...]) -> GoStruct:
    """``.Manifest``: the index (with its digest and size) or the single manifest's descriptor."""
    if media_type in indexes:
        doc = {**json.loads(raw), "digest": digest, "size": len(raw)}
        return GoStruct("struct", _INDEX, doc,
                        {"Manifests": lambda ms: [_descriptor(m) for m in ms or []]})
    return _descriptor({"mediaType": media_type, "digest": digest, "size": len(raw)})


def image_value(config: bytes) -> GoStruct:
    """``.Image``: an image config as image-spec's ``v1.Image``."""
    return GoStruct("v1.Image", _IMAGE, json.loads(config), {
        "Config": lambda c: GoStruct("v1.ImageConfig", _CONFIG, c or {}),
        "RootFS": lambda r: GoStruct("v1.RootFS", _ROOTFS, r or {}),
        "History": _maybe(lambda hs: [GoStruct("v1.History", _HISTORY, h) for h in hs]),
    })


def _empty(v: Any) -> bool:
    return v is None or v is False or v == 0 or v == "" or (isinstance(v, list | tuple | Mapping)
                                                              and not isinstance(v, GoStruct) and not v)


def _plain(v: Any) -> Any:
    if isinstance(v, GoStruct):
        return {js: _plain(v[go]) for go, js, omit in v.layout if not (omit and _empty(v[go]))}
    if isinstance(v, Mapping):
        return {str(k): _plain(v[k]) for k in sorted(v)}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


def buildx_json(v: Any) -> str:
    """buildx's ``json``: ``json.MarshalIndent(v, "", "  ")``."""
    text = json.dumps(_plain(v), indent=2, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def render(fmt: str, name: str, manifest: GoStruct, images: dict[str, GoStruct]) -> str:
    """Execute ``fmt`` as buildx does: ``.Image`` is the config, or a map of them for several platforms."""
    from dockyard import gotemplate
    from dockyard.errors import InvalidArgument
    from dockyard.gotemplate import TemplateError

    image: Any = images if len(images) > 1 else next(iter(images.values()), None)
    data = Context({"Name": name, "Manifest": manifest, "Image": image}, type_name="imagetools.tplInput")
    try:
        return gotemplate.Template(fmt, funcs={"json": Func(buildx_json, arity=1)}).execute(data)
    except TemplateError as exc:
        raise InvalidArgument(f"template: {exc}") from None


__all__ = ["GoStruct", "buildx_json", "image_value", "manifest_value", "render"]
