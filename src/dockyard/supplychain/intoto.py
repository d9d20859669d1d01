"""The in-toto statements a build attaches: an SPDX SBOM and SLSA provenance (v0.2 or v1).

    build_statements(client, options, images, name, specs, started, finished) -> {image_id: [Statement]}

Each statement's subject is the image manifest as stored locally (``pkg:docker/<name>@<tag>?platform=``
with its sha256), rewritten to the pushed manifest's digest by a push. Provenance follows BuildKit's
layout (``https://mobyproject.org/buildkit@v1`` build type for v0.2; its slsa-definitions build type
for v1). ``mode=min`` records the frontend, the Dockerfile's path, the base images (materials) with
their digests, the platform and the times; ``mode=max`` adds the build arguments, the target, and the
Dockerfile's text (as BuildKit does, base64 under its metadata key).
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dockyard.errors import DockyardError
from dockyard.imageops.attestations import Statement
from dockyard.imageops.platforms import manifest_for
from dockyard.oci.reference import parse_normalized
from dockyard.supplychain.spec import AttestSpec

if TYPE_CHECKING:
    from dockyard.builder.options import BuildOptions
    from dockyard.client import Client

__all__ = ["SPDX", "build_statements", "provenance_predicate", "sbom_predicate"]

STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
SPDX = "https://spdx.dev/Document"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_V1 = "https://slsa.dev/provenance/v1"
BUILDKIT_V02_TYPE = "https://mobyproject.org/buildkit@v1"
BUILDKIT_V1_TYPE = "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md"
BUILDKIT_METADATA = "https://mobyproject.org/buildkit@v1#metadata"


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def purl(name: str, platform: str) -> str:
    """``pkg:docker/127.0.0.1:5000/app@1?platform=linux%2Famd64``, as BuildKit names subjects."""
    ref = parse_normalized(name)
    version = ref.digest or ref.tag or "latest"
    return f"pkg:docker/{ref.familiar_name()}@{version}?platform={quote(platform, safe='')}"


def _statement(predicate_type: str, subjects: list[dict[str, Any]], predicate: dict[str, Any],
               version: str = STATEMENT_V01) -> Statement:
    doc = {"_type": version, "predicateType": predicate_type, "subject": subjects, "predicate": predicate}
    return Statement(predicate_type, json.dumps(doc, separators=(",", ":")).encode())


def sbom_predicate(client: Client, image_id: str, name: str) -> dict[str, Any]:
    """An SPDX 2.3 document of the image's packages (``tools.scan``'s SBOM)."""
    from dockyard.tools.scan import ScanResult, image_sbom, to_spdx

    sbom = image_sbom(client, image_id)
    sbom.image = name
    return to_spdx(ScanResult(sbom))


def _dockerfile(options: BuildOptions) -> tuple[str, str]:
    """(path relative to the context as BuildKit reports it, text)."""
    if options.dockerfile_text is not None:
        return "Dockerfile", options.dockerfile_text
    path = options.dockerfile or os.path.join(options.context_dir, "Dockerfile")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        text = ""
    rel = os.path.relpath(path, options.context_dir)
    return (os.path.basename(path) if rel.startswith("..") else rel), text


def materials(client: Client, options: BuildOptions, text: str, platform: str) -> list[dict[str, Any]]:
    """The base images the Dockerfile names (stage bases, not earlier stages or scratch), with the
    manifest digest each was pulled by when the store knows it."""
    from dockyard.dockerfile import Platform, parse
    from dockyard.dockerfile.stages import parse_stages

    try:
        plan = parse_stages(parse(text), options.build_args, target_platform=Platform.parse(platform))
    except (DockyardError, ValueError):
        return []
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for stage in plan.stages:
        base = stage.base_name
        if stage.base_stage is not None or not base or base == "scratch" or base in seen:
            continue
        seen.add(base)
        entry: dict[str, Any] = {"uri": purl(base, stage.platform or platform)}
        try:
            ref = parse_normalized(base)
            digest = str(ref.digest or "")
            if not digest:
                image_id = client.store.meta.get_tag(str(ref.tag_or_latest()))
                named = [d for d in (client.store.meta.repo_digests_for(str(image_id)) if image_id else [])
                         if d.startswith(str(ref.name_only()) + "@")]
                digest = named[0].partition("@")[2] if named else ""
        except DockyardError:
            digest = ""
        if digest:
            algorithm, _, hexpart = digest.partition(":")
            entry["digest"] = {algorithm: hexpart}
        out.append(entry)
    return out


def provenance_predicate(client: Client, options: BuildOptions, spec: AttestSpec, platform: str,
                         started: float, finished: float) -> tuple[str, dict[str, Any]]:
    """(predicate type, SLSA provenance as BuildKit lays it out) for one platform's image."""
    path, text = _dockerfile(options)
    mats = materials(client, options, text, platform)
    full = spec.mode == "max"
    args: dict[str, str] = {}
    if full:
        args = {f"build-arg:{k}": v for k, v in sorted(options.build_args.items())}
        if options.target:
            args["target"] = options.target
    request: dict[str, Any] = {"frontend": "dockerfile.v0",
                               "locals": [{"name": "context"}, {"name": "dockerfile"}]}
    if args:
        request["args"] = args
    kit_meta: dict[str, Any] = {}
    if full and text:
        kit_meta["source"] = {"infos": [{"filename": path, "language": "Dockerfile",
                                         "data": base64.b64encode(text.encode()).decode()}]}
    builder_id = spec.attrs.get("builder-id", "")
    if spec.version == "v1":
        predicate: dict[str, Any] = {
            "buildDefinition": {
                "buildType": BUILDKIT_V1_TYPE,
                "externalParameters": {"configSource": {"path": path}, "request": request},
                "internalParameters": {"builderPlatform": platform},
                "resolvedDependencies": mats},
            "runDetails": {"builder": {"id": builder_id},
                           "metadata": {"invocationID": uuid.uuid4().hex, "startedOn": _time(started),
                                        "finishedOn": _time(finished)}}}
        if kit_meta:
            predicate["runDetails"]["metadata"]["buildkit_metadata"] = kit_meta
        return SLSA_V1, predicate
    predicate = {
        "builder": {"id": builder_id}, "buildType": BUILDKIT_V02_TYPE, "materials": mats,
        "invocation": {"configSource": {"entryPoint": path}, "parameters": request,
                       "environment": {"platform": platform}},
        "metadata": {"buildInvocationID": uuid.uuid4().hex, "buildStartedOn": _time(started),
                     "buildFinishedOn": _time(finished),
                     "completeness": {"parameters": full, "environment": True, "materials": False},
                     "reproducible": False}}
    if kit_meta:
        predicate["metadata"][BUILDKIT_METADATA] = kit_meta
    return SLSA_V02, predicate


def build_statements(client: Client, options: BuildOptions, images: Mapping[str, str], name: str,
                     specs: Sequence[AttestSpec], started: float,
                     finished: float) -> dict[str, list[Statement]]:
    """The statements ``specs`` ask for, per image (``images``: platform -> image ID), each about the
    image's local manifest."""
    out: dict[str, list[Statement]] = {}
    for platform, image_id in images.items():
        manifest = manifest_for(client.store, image_id)
        subjects = [{"name": purl(name, platform), "digest": {"sha256": manifest.digest.hex}}]
        stmts: list[Statement] = []
        for spec in specs:
            if spec.kind == "sbom":
                stmts.append(_statement(SPDX, subjects, sbom_predicate(client, image_id, name)))
            elif spec.kind == "provenance":
                ptype, predicate = provenance_predicate(client, options, spec, platform, started, finished)
                version = STATEMENT_V1 if ptype == SLSA_V1 else STATEMENT_V01
                stmts.append(_statement(ptype, subjects, predicate, version))
        out[image_id] = stmts
    return out


def attach_build(client: Client, options: BuildOptions, result: Any, specs: Sequence[AttestSpec],
                 started: float, finished: float) -> list[str]:
    """Attach the statements ``specs`` ask for to every tag of a finished build; the tags' full names.

    ``result`` is a ``BuildResult`` (its ``images`` map, platform -> image ID, when multi-platform)."""
    from dockyard.imageops.attestations import attach
    from dockyard.imageops.images import normalize_tag
    from dockyard.imageops.platforms import platform_of

    images: dict[str, str] = dict(getattr(result, "images", {}) or {})
    if not images:
        images = {str(platform_of(client.store, result.image_id)): str(result.image_id)}
    names = []
    for tag in options.tags:
        name = normalize_tag(tag)
        attach(client.store, name, build_statements(client, options, images, name, specs, started, finished))
        names.append(name)
    return names
