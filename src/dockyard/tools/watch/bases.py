"""Which external images a build reads, and whether the local copies are still what their tags name.

    base_refs(options) -> list[BaseRef]          # FROM / COPY --from / RUN --mount from= images
    check_bases(client, options) -> list[BaseStatus]

A tag's current digest is learnt with a manifest HEAD (the same Accept list a pull sends, and the
same sources: configured mirrors first, then the origin), so nothing is downloaded when nothing
moved. For an index the platform's manifest is looked up too, so an index that only gained another
platform does not count as a move for this one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from dockyard.dockerfile import CopyInstruction, RunInstruction, Stage, needed_stages, parse, parse_stages
from dockyard.dockerfile import Platform as DfPlatform
from dockyard.errors import BuildError, DockyardError, InvalidArgument, RegistryError
from dockyard.oci import mediatypes as mt
from dockyard.oci.platform import Platform
from dockyard.oci.platform import parse as parse_platform
from dockyard.oci.reference import Reference, parse_normalized
from dockyard.record import field, record

if TYPE_CHECKING:
    from dockyard.builder.options import BuildOptions
    from dockyard.client import Client
    from dockyard.registry.client import RegistryClient

__all__ = ["BaseRef", "BaseStatus", "RemoteDigest", "Status", "base_refs", "check_bases", "remote_digest",
           "target_base"]

Status = Literal["up to date", "outdated", "not pulled", "unreachable", "pinned"]


@record(frozen=True, slots=True)
class BaseRef:
    """One external image the build reads: as written, normalised, for which platform, and where."""

    ref: str             # as the Dockerfile names it after ARG expansion (``busybox:1``)
    reference: Reference  # normalised, with ``:latest`` added when no tag or digest is given
    platform: str        # ``linux/amd64``
    used_by: tuple[str, ...] = ()  # ``FROM (stage build)``, ``COPY --from (stage 1)``


@record(frozen=True, slots=True)
class RemoteDigest:
    """What a registry says a tag names now: the top manifest (or index) and this platform's manifest."""

    digest: str
    media_type: str
    manifest_digest: str  # == digest unless ``digest`` is an index
    source: str           # the registry (or mirror) that answered


@record(slots=True)
class BaseStatus:
    """One base image's state. ``local_digest`` is the repo digest recorded at pull ("" = none)."""

    base: BaseRef
    status: Status
    local_image_id: str = ""
    local_digest: str = ""
    remote_digest: str = ""
    remote_manifest_digest: str = ""
    reason: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return self.base.ref

    def to_json(self) -> dict[str, object]:
        return {"reference": self.base.ref, "name": str(self.base.reference), "platform": self.base.platform,
                "usedBy": list(self.base.used_by), "status": self.status, "localImageId": self.local_image_id,
                "localDigest": self.local_digest, "remoteDigest": self.remote_digest,
                "remoteManifestDigest": self.remote_manifest_digest, "reason": self.reason}


# -- which images ---------------------------------------------------------------------------------


def _dockerfile_text(options: BuildOptions) -> tuple[str, str]:
    if options.dockerfile_text is not None:
        return options.dockerfile_text, os.path.basename(options.dockerfile or "Dockerfile")
    path = options.dockerfile or os.path.join(options.context_dir, "Dockerfile")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read(), os.path.basename(path)
    except FileNotFoundError:
        raise BuildError(f"failed to read dockerfile: open {path}: no such file or directory") from None
    except IsADirectoryError:
        raise BuildError(f"failed to read dockerfile: read {path}: is a directory") from None
    except NotADirectoryError:  # PATH names a file
        raise BuildError(f"failed to read dockerfile: open {path}: not a directory") from None


def _platforms(options: BuildOptions) -> list[str]:
    """The build's target platforms (``--platform a,b``), normalised; the host's when none is given."""
    specs = [p.strip() for p in options.platform.split(",") if p.strip()] if options.platform else []
    if not specs:
        return [str(DfPlatform.host())]
    return [str(DfPlatform.parse(p)) for p in specs]


def _is_stage(ref: str, stage: Stage, stages: Sequence[Stage]) -> bool:
    if ref.isdigit():
        return int(ref) < stage.index
    return any(st.name and st.name == ref.lower() for st in stages[:stage.index])


def base_refs(options: BuildOptions) -> list[BaseRef]:
    """The external images the target stage needs, once per (image, platform), in Dockerfile order.

    Stages, ``scratch`` and ``--build-context`` directories are left out; a ``--build-context`` given
    as ``docker-image://ref`` stands for that image."""
    text, filename = _dockerfile_text(options)
    out: dict[tuple[str, str], BaseRef] = {}
    for target_platform in _platforms(options):
        plan = parse_stages(parse(text, filename), options.build_args,
                            target_platform=DfPlatform.parse(target_platform))
        target = plan.stage(options.target) if options.target else plan.stages[-1]
        for stage in needed_stages(plan, target):
            where = f"stage {stage.display_name}"
            wanted: list[tuple[str, str, str]] = []  # (ref, platform, used by)
            if stage.base_stage is None:
                wanted.append((stage.base_name, stage.platform or target_platform, f"FROM ({where})"))
            for instr in stage.instructions:
                if isinstance(instr, CopyInstruction) and instr.from_:
                    if not _is_stage(instr.from_, stage, plan.stages):
                        wanted.append((instr.from_, target_platform, f"COPY --from ({where})"))
                elif isinstance(instr, RunInstruction):
                    wanted.extend((m.from_, target_platform, f"RUN --mount from= ({where})")
                                  for m in instr.mounts
                                  if m.from_ and not _is_stage(m.from_, stage, plan.stages))
            for ref, plat, used in wanted:
                if ref == "scratch":
                    continue
                named = options.build_contexts.get(ref)
                if named is not None:
                    if not named.startswith("docker-image://"):
                        continue  # a local directory: its files are the context's business
                    ref = named.removeprefix("docker-image://")
                if "$" in ref:
                    continue  # uses a stage-local ARG: only the build knows its value
                try:
                    reference = parse_normalized(ref).tag_or_latest()
                except InvalidArgument as exc:
                    raise InvalidArgument(f"{filename}: {used}: {exc}") from None
                plat = str(DfPlatform.parse(plat))
                key = (str(reference), plat)
                known = out.get(key)
                if known is None:
                    out[key] = BaseRef(ref, reference, plat, (used,))
                elif used not in known.used_by:
                    out[key] = BaseRef(known.ref, reference, plat, (*known.used_by, used))
    return list(out.values())


def target_base(options: BuildOptions) -> str | None:
    """The external image the target stage is built on (following ``FROM <stage>`` to its root), or
    None for ``scratch``, a named context, a stage-local ARG, or several platforms."""
    if "," in options.platform:
        return None
    text, filename = _dockerfile_text(options)
    target_platform = DfPlatform.parse(options.platform) if options.platform else None
    plan = parse_stages(parse(text, filename), options.build_args, target_platform=target_platform)
    stage = plan.stage(options.target) if options.target else plan.stages[-1]
    while stage.base_stage is not None:
        stage = plan.stages[stage.base_stage]
    ref = stage.base_name
    if ref == "scratch" or ref in options.build_contexts or "$" in ref:
        return None
    return ref


# -- what the registry says --------------------------------------------------------------------------


def remote_digest(registry: RegistryClient, reference: Reference, platform: Platform) -> RemoteDigest:
    """The digest ``reference``'s tag names now, and the manifest it serves ``platform``.

    Raises ``RegistryError`` (unreachable, unauthorized, unknown tag) or ``NotFound`` (no manifest
    for that platform in the index)."""
    from dockyard.imageops.pull import select_platform

    tag = reference.tag or "latest"
    last: DockyardError | None = None
    for repo in registry.pull_sources(reference.domain, reference.path):
        try:
            desc = repo.head_manifest(tag)
            if desc is None or desc.media_type in ("", "application/json", "text/plain"):
                # No digest header (or no type) in the HEAD answer: the GET tells, and says why not.
                fetched = repo.get_manifest(tag)
                digest, media_type, data = str(fetched.digest), fetched.media_type, fetched.data
            else:
                digest, media_type, data = str(desc.digest), desc.media_type, b""
            manifest_digest = digest
            if media_type in mt.INDEXES:
                if not data:
                    data = repo.get_manifest(digest).data
                manifest_digest = str(select_platform(data, platform, reference.familiar()).digest)
            return RemoteDigest(digest, media_type, manifest_digest, repo.where)
        except RegistryError as exc:
            last = exc  # a mirror that is down or lacks the tag: try the next source, as a pull does
    assert last is not None
    raise last


def _config_digest(registry: RegistryClient, reference: Reference, manifest_digest: str) -> str:
    """The config digest (= image ID) of a manifest, or "" if it cannot be read."""
    from dockyard.oci.manifest import parse_manifest

    for repo in registry.pull_sources(reference.domain, reference.path):
        try:
            fetched = repo.get_manifest(manifest_digest)
            return str(parse_manifest(fetched.data, f"manifest of {reference.familiar()}").config.digest)
        except DockyardError:
            continue
    return ""


# -- the check ---------------------------------------------------------------------------------------


def _local(client: Client, base: BaseRef) -> tuple[str, list[str], str, str]:
    """(image ID, repo digests under this name, its manifest digest, why it does not count) for a base."""
    from dockyard.errors import NotFound

    ref = base.reference
    lookup = str(ref)
    try:
        image_id = str(client.resolve(lookup))
    except NotFound:
        return "", [], "", ""
    record = client.image_record(image_id)
    want = parse_platform(base.platform)
    have = Platform(record.os, record.architecture, record.variant)
    if not want.matches(have):
        return "", [], "", f"the local image is {have}"
    name = str(ref.name_only())
    digests = [rd.partition("@")[2] for rd in client.store.meta.repo_digests_for(image_id)
               if rd.partition("@")[0] == name]
    return image_id, digests, record.manifest_digest, ""


def check_one(client: Client, registry: RegistryClient, base: BaseRef) -> BaseStatus:
    """One base image's status (never raises for registry trouble: that is the ``unreachable`` status)."""
    image_id, digests, manifest_digest, mismatch = _local(client, base)
    ref = base.reference
    if ref.digest is not None:
        status: Status = "pinned" if image_id else "not pulled"
        return BaseStatus(base, status, image_id, ref.digest if image_id else "", ref.digest, ref.digest,
                          reason=mismatch)
    local_digest = digests[0] if digests else ""
    try:
        remote = remote_digest(registry, ref, parse_platform(base.platform))
    except DockyardError as exc:
        return BaseStatus(base, "unreachable" if image_id else "not pulled", image_id, local_digest,
                          reason=str(exc))
    if remote.digest in digests:
        local_digest = remote.digest
    if not image_id:
        return BaseStatus(base, "not pulled", "", "", remote.digest, remote.manifest_digest, reason=mismatch)
    current = remote.digest in digests or (manifest_digest and manifest_digest == remote.manifest_digest)
    if not current:
        # No recorded digest matches (an imported or locally built image, say): the image ID is the
        # config digest, so the manifest's config tells whether the bytes are the same after all.
        current = _config_digest(registry, ref, remote.manifest_digest) == image_id
    return BaseStatus(base, "up to date" if current else "outdated", image_id, local_digest, remote.digest,
                      remote.manifest_digest)


def check_bases(client: Client, options: BuildOptions, *,
                registry: RegistryClient | None = None) -> list[BaseStatus]:
    """The status of every external image the build of ``options`` reads (see :func:`base_refs`).

    ``registry`` defaults to ``client.registry_client()`` (mirrors, insecure registries, logins)."""
    bases = base_refs(options)
    if not bases:
        return []
    own = registry is None
    reg = client.registry_client() if registry is None else registry
    dead: dict[str, str] = {}  # a registry that could not be reached is not asked again this time
    out: list[BaseStatus] = []
    try:
        for base in bases:
            domain = base.reference.domain
            if domain in dead and base.reference.digest is None:
                image_id, digests, _manifest, _why = _local(client, base)
                out.append(BaseStatus(base, "unreachable" if image_id else "not pulled", image_id,
                                      digests[0] if digests else "", reason=dead[domain]))
                continue
            status = check_one(client, reg, base)
            if status.reason.startswith("cannot reach registry") and not reg.options.mirrors_for(domain):
                dead[domain] = status.reason
            out.append(status)
        return out
    finally:
        if own:
            reg.close()
