"""Replay the OCI distribution-spec v1.1.1 conformance checks against a registry URL.

The checks (``tests/data/oci/distribution_spec_v1.1.1_checks.json``) are a transcription of
the Ginkgo suite; this harness follows its ``how_to_replay``: specs run in order, a spec fails at its
first failing step, ``only_if`` decides Skipped, and ``{...}`` placeholders are substituted from
fixtures built as the suite builds them.

    python tests/registry/conformance/replay.py http://127.0.0.1:5000 [--name repo] [--env K=V ...]

prints one line per spec and then ``N passed, N failed, N skipped``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import re
import string
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx

CHECKS = Path(__file__).resolve().parents[2] / "data" / "oci" / "distribution_spec_v1.1.1_checks.json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ANNOTATION = "org.opencontainers.conformance.test"
WORKFLOWS = ("pull", "push", "content_discovery", "content_management")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _indent(obj: Any) -> bytes:
    # json.MarshalIndent(v, "", "\t"): Go's compact separators inside an indented layout.
    return json.dumps(obj, indent="\t").encode()


def build_fixtures(spec: dict[str, Any], seed: int) -> tuple[dict[str, bytes], dict[str, str]]:
    """The suite's fixtures (bytes by name) and each referrer's annotation (by digest)."""
    rng = random.Random(seed)
    fx: dict[str, bytes] = {}
    fx["layer"] = base64.b64decode(spec["fixtures"]["layer"]["base64"])
    alphabet = string.ascii_letters + string.digits + "-"
    for i in range(5):
        config = {"author": "".join(rng.choice(alphabet) for _ in range(16)), "architecture": "amd64",
                  "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
        fx[f"config[{i}]"] = _indent(config)

    def manifest(i: int, with_type: bool = True, layers: bool = True) -> bytes:
        config = fx[f"config[{i}]"]
        body: dict[str, Any] = {"schemaVersion": 2}
        if with_type:
            body["mediaType"] = OCI_MANIFEST
        body["config"] = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(config),
                          "size": len(config), "data": base64.b64encode(config).decode(),
                          "newUnspecifiedField": "aGVsbG8gd29ybGQ="}
        body["layers"] = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                           "digest": _digest(fx["layer"]), "size": len(fx["layer"]),
                           "newUnspecifiedField": None}] if layers else []
        return _indent(body)

    for i in range(5):
        fx[f"manifest[{i}]"] = manifest(i)
    fx["emptyLayerManifest"] = manifest(1, with_type=False, layers=False)
    fx["testBlobA"] = rng.randbytes(42)
    blob_b = rng.randbytes(42)
    fx["testBlobB"], fx["testBlobB.chunk1"], fx["testBlobB.chunk2"] = blob_b, blob_b[:22], blob_b[22:]
    for key in ("emptyJSON", "testRefBlobA", "testRefBlobB", "invalidManifestContent"):
        fx[key] = spec["fixtures"][key]["content"].encode()
    type_a = spec["fixtures"]["testRefBlobA"]["artifact_type"]
    type_b = spec["fixtures"]["testRefBlobB"]["artifact_type"]

    def desc(media_type: str, data: bytes) -> dict[str, Any]:
        return {"mediaType": media_type, "digest": _digest(data), "size": len(data)}

    empty = desc("application/vnd.oci.empty.v1+json", fx["emptyJSON"])
    subject4 = desc(OCI_MANIFEST, fx["manifest[4]"])
    subject3 = desc(OCI_MANIFEST, fx["manifest[3]"])
    notes: dict[str, str] = {}

    def artifact(key: str, body: dict[str, Any], note: str | None) -> None:
        if note is not None:
            body["annotations"] = {ANNOTATION: note}
        fx[key] = json.dumps(body).encode()
        if note is not None:
            notes[_digest(fx[key])] = note

    for letter, kind, blob in (("A", type_a, "testRefBlobA"), ("B", type_b, "testRefBlobB")):
        artifact(f"refsManifest{letter}ConfigArtifact", {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(kind, fx[blob]),
            "layers": [empty], "subject": subject4}, f"test config {letter.lower()}")
        artifact(f"refsManifest{letter}LayerArtifact", {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": kind, "config": empty,
            "layers": [desc(kind, fx[blob])], "subject": subject4}, f"test layer {letter.lower()}")
    artifact("refsManifestCLayerArtifact", {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": type_b, "config": empty,
        "layers": [desc(type_b, fx["testRefBlobB"])], "subject": subject3}, None)
    artifact("refsIndexArtifact", {
        "schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": "application/vnd.food.stand",
        "manifests": [desc(OCI_MANIFEST, fx["refsManifestAConfigArtifact"]),
                      desc(OCI_MANIFEST, fx["refsManifestALayerArtifact"])],
        "subject": subject4}, "test index")
    return fx, notes


class StepFailed(Exception):
    """A step's expectation did not hold."""


@dataclass
class Result:
    id: str
    workflow: str
    name: str
    outcome: str  # passed | failed | skipped
    reason: str = ""


@dataclass
class Replay:
    """One run of the checks against one registry."""

    base_url: str
    name: str = "conformance/test"
    crossmount: str = field(default_factory=lambda: f"conformance-{uuid.uuid4()}")
    env: dict[str, str] = field(default_factory=dict)
    seed: int = 1
    client: httpx.Client | None = None

    def __post_init__(self) -> None:
        self.spec = json.loads(CHECKS.read_text())
        self.fx, self.notes = build_fixtures(self.spec, self.seed)
        self.http = self.client or httpx.Client(timeout=30, verify=False)
        self.vars: dict[str, Any] = {"numTags": 0, "tagList": [], "blobDeleteAllowed": True,
                                     "emptylayer201": False}
        self.saved: dict[str, httpx.Response] = {}
        self.location = ""
        self.run_pull_setup = not (self.env.get("OCI_TAG_NAME") and self.env.get("OCI_MANIFEST_DIGEST")
                                   and self.env.get("OCI_BLOB_DIGEST"))
        self.run_discovery_setup = not self.env.get("OCI_TAG_LIST")

    # -- substitution ------------------------------------------------------------------------------

    def digest_of(self, key: str) -> str:
        if key == "manifest[0]" and self.env.get("OCI_MANIFEST_DIGEST"):
            return self.env["OCI_MANIFEST_DIGEST"]
        if key == "config[0]" and self.env.get("OCI_BLOB_DIGEST"):
            return self.env["OCI_BLOB_DIGEST"]
        return _digest(self.fx[key])

    def sub(self, text: str) -> str:
        def one(m: re.Match[str]) -> str:
            token = m.group(1)
            kind, _, arg = token.partition(":")
            num = int(self.vars["numTags"])
            simple: dict[str, Callable[[], str]] = {
                "name": lambda: self.name, "crossmount": lambda: self.crossmount,
                "dummyDigest": lambda: self.spec["fixtures"]["dummyDigest"]["value"],
                "tag": lambda: self.env.get("OCI_TAG_NAME") or "tagtest0",
                "location": lambda: self.location,
                "lastResponse.location": lambda: self.saved["lastResponse"].headers.get("Location", ""),
                "prevResponse.location": lambda: self.saved["prevResponse"].headers.get("Location", ""),
                "numTags/2": lambda: str(num // 2),
                "tagList[numTags/2-1]": lambda: str(self.vars["tagList"][num // 2 - 1]),
            }
            if token in simple:
                return simple[token]()
            if kind == "digest":
                return self.digest_of(arg)
            if kind == "len":
                return str(len(self.fx[arg]))
            if kind == "range":
                data = self.fx[arg]
                start = 22 if arg.endswith("chunk2") else 0
                return f"{start}-{start + len(data) - 1}"
            raise KeyError(f"unknown placeholder {{{token}}}")

        return re.sub(r"\{([^{}]+)\}", one, text)

    def url(self, path: str, query: dict[str, str] | None) -> str:
        full = urljoin(self.base_url.rstrip("/") + "/", self.sub(path))
        parts = urlsplit(full)
        params = parse_qsl(parts.query, keep_blank_values=True)
        params += [(k, self.sub(v)) for k, v in (query or {}).items()]
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(params), ""))

    # -- conditions --------------------------------------------------------------------------------

    def last_status(self) -> int:
        last = self.saved.get("lastResponse")
        return last.status_code if last is not None else 0

    def condition(self, text: str | None) -> bool:
        if not text:
            return True
        auto = self.env.get("OCI_AUTOMATIC_CROSSMOUNT")
        table: dict[str, Callable[[], bool]] = {
            "runPullSetup": lambda: self.run_pull_setup,
            "not runPullSetup": lambda: not self.run_pull_setup,
            "runContentDiscoverySetup": lambda: self.run_discovery_setup,
            "not runContentDiscoverySetup": lambda: not self.run_discovery_setup,
            "runContentManagementSetup": lambda: True,
            "runContentManagementSetup and blobDeleteAllowed": lambda: bool(self.vars["blobDeleteAllowed"]),
            "lastResponse.status == 201": lambda: self.last_status() == 201,
            "lastResponse.status == 202": lambda: self.last_status() == 202,
            "OCI_AUTOMATIC_CROSSMOUNT is set and true, and lastResponse.status == 201":
                lambda: auto == "1" and self.last_status() == 201,
            "OCI_AUTOMATIC_CROSSMOUNT is set and false, and lastResponse.status == 201":
                lambda: auto == "0" and self.last_status() == 201,
            "emptylayer push returned 201": lambda: bool(self.vars["emptylayer201"]),
        }
        return table[text]()

    # -- expectations ------------------------------------------------------------------------------

    @staticmethod
    def _status_ok(status: int, allowed: list[Any]) -> bool:
        for item in allowed:
            if item == "200-299" and 200 <= status <= 299:
                return True
            if item == status:
                return True
        return False

    def check_status(self, check: dict[str, Any], step: dict[str, Any], resp: httpx.Response) -> None:
        expect = step.get("expect_status")
        if expect is None:
            return
        if isinstance(expect, dict):
            if "201" in expect:  # 049: anything but 201 is only a warning
                if resp.status_code == 201:
                    self.vars["emptylayer201"] = True
                    if not resp.headers.get("Location"):
                        raise StepFailed("201 without a Location header")
                return
            prior = self.saved.get("lastResponse")
            expect = expect["if lastResponse.status == 202"] if prior is not None and \
                prior.status_code == 202 else expect["else"]
        if not self._status_ok(resp.status_code, expect):
            raise StepFailed(f"{step['method']} {resp.request.url.raw_path.decode()}: status "
                             f"{resp.status_code}, expected {expect}: {resp.text[:200]}")

    def check_headers(self, step: dict[str, Any], resp: httpx.Response) -> None:
        for key, value in (step.get("expect_headers") or {}).items():
            if resp.headers.get(key) != self.sub(value):
                raise StepFailed(f"header {key}: {resp.headers.get(key)!r}, expected {self.sub(value)!r}")
        for key, value in (step.get("expect_headers_if_present") or {}).items():
            if key in resp.headers and resp.headers[key] != self.sub(value):
                raise StepFailed(f"header {key}: {resp.headers[key]!r}, expected {self.sub(value)!r}")
        for key in step.get("expect_headers_present") or []:
            if not resp.headers.get(key):
                raise StepFailed(f"header {key} missing")

    def error_body_ok(self, resp: httpx.Response, code: str | None = None) -> None:
        try:
            errors = resp.json()["errors"]
            first = errors[0]["code"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise StepFailed(f"400 body is not an OCI error: {resp.text[:200]}") from exc
        if first not in self.spec["error_codes"] or (code and first != code):
            raise StepFailed(f"error code {first!r} not acceptable")

    def _referrers(self, resp: httpx.Response, count: int) -> list[dict[str, Any]]:
        body = resp.json()
        manifests = body.get("manifests")
        if not isinstance(manifests, list) or len(manifests) != count:
            raise StepFailed(f"expected {count} referrers, got {manifests!r}"[:300])
        return manifests

    def _annotations_ok(self, manifests: list[dict[str, Any]]) -> None:
        for entry in manifests:
            notes = entry.get("annotations") or {}
            if len(notes) != 1 or notes.get(ANNOTATION) != self.notes.get(entry.get("digest", "")):
                raise StepFailed(f"referrer {entry.get('digest')} has annotations {notes}")

    def assertion(self, check_id: str, resp: httpx.Response) -> None:
        num = int(self.vars["numTags"])
        if check_id == "019" and resp.status_code == 400:
            self.error_body_ok(resp)
        elif check_id == "074" and resp.status_code == 400:
            self.error_body_ok(resp, "UNSUPPORTED")
        elif check_id in ("059", "073"):
            self.vars["numTags"] = len(resp.json().get("tags") or [])
        elif check_id == "056" and resp.request.method == "GET":
            self.vars["tagList"] = resp.json().get("tags") or []
        elif check_id == "060":
            if len(resp.json().get("tags") or []) != num // 2:
                raise StepFailed(f"n={num // 2} returned {resp.json().get('tags')}")
        elif check_id == "061" and "last" not in resp.request.url.params:
            tags = resp.json().get("tags") or []
            self.vars["tagList"] = tags
            if len(tags) > num // 2 or not tags:
                raise StepFailed(f"n={num // 2} returned {tags}")
        elif check_id == "062":
            self._referrers(resp, 0)
        elif check_id == "063":
            manifests = self._referrers(resp, 5)
            if manifests[0].get("digest") == manifests[1].get("digest"):
                raise StepFailed("duplicate referrers")
            self._annotations_ok(manifests)
        elif check_id == "064":
            if "OCI-Filters-Applied" in resp.headers:
                if resp.headers["OCI-Filters-Applied"] != "artifactType":
                    raise StepFailed("OCI-Filters-Applied is not artifactType")
                self._annotations_ok(self._referrers(resp, 2))
            else:
                self._annotations_ok(self._referrers(resp, 5))
        elif check_id == "065":
            manifests = self._referrers(resp, 1)
            if manifests[0].get("digest") != self.digest_of("refsManifestCLayerArtifact"):
                raise StepFailed(f"wrong referrer {manifests[0].get('digest')}")
        elif check_id == "077":
            if resp.status_code == 200 and len(resp.json().get("tags") or []) != num - 1:
                raise StepFailed(f"expected {num - 1} tags, got {resp.json().get('tags')}")
            if resp.status_code == 404 and num - 1 != 0:
                raise StepFailed("404 although tags remain")
        elif check_id == "078" and resp.status_code == 405:
            self.vars["blobDeleteAllowed"] = False

    # -- running -----------------------------------------------------------------------------------

    def step(self, check: dict[str, Any], step: dict[str, Any]) -> None:
        if step["method"] == "LOCAL":
            if _digest(b"{}") != self.spec["fixtures"]["emptyJSON"]["digest"]:
                raise StepFailed("emptyJSON digest")
            return
        if not self.condition(step.get("only_if")):
            return
        if check["id"] == "043":
            want = self.sub("/v2/{crossmount}/blobs/{digest:testBlobA}")
            if urlsplit(self.saved["lastResponse"].headers.get("Location", "")).path != want:
                raise StepFailed("mount Location is not the blob URL")
        headers = {k: self.sub(v) for k, v in (step.get("headers") or {}).items()
                   if k.lower() != "content-length"}  # httpx sends the true length
        body = self.fx[step["body"]] if step.get("body") else b""
        resp = self.http.request(step["method"], self.url(step["path"], step.get("query")),
                                 headers=headers, content=body)
        self.check_status(check, step, resp)
        self.check_headers(step, resp)
        self.assertion(check["id"], resp)
        if resp.headers.get("Location"):
            self.location = resp.headers["Location"]
        if step.get("save"):
            self.saved[step["save"]] = resp

    def enabled(self, workflow: str) -> bool:
        """OCI_TEST_<WORKFLOW>=1 enables a workflow; when none is set, all four run."""
        keys = [f"OCI_TEST_{w.upper()}" for w in WORKFLOWS]
        if not any(k in self.env for k in keys):
            return True
        return self.env.get(f"OCI_TEST_{workflow.upper()}") == "1"

    def run_check(self, check: dict[str, Any]) -> Result:
        result = Result(check["id"], check["workflow"], check["name"], "passed")
        if not self.enabled(check["workflow"]) or not self.condition(check.get("only_if")):
            result.outcome = "skipped"
            return result
        try:
            if check["id"] == "044":
                want = self.sub("/v2/{crossmount}/blobs/uploads/")
                if not urlsplit(self.saved["lastResponse"].headers.get("Location", "")).path.startswith(want):
                    raise StepFailed("fallback Location is not an upload session")
            for step in check["steps"]:
                self.step(check, step)
        except (StepFailed, httpx.HTTPError, ValueError, KeyError) as exc:
            result.outcome, result.reason = "failed", f"{type(exc).__name__}: {exc}"
        return result

    def prepare(self) -> None:
        """Create the content that the env variables say already exists (setup specs, not counted)."""
        by_id = {check["id"]: check for check in self.spec["checks"]}
        # Discovery first: its setup re-points tag "tagtest0", which the pull content must own.
        for check_id in ("054", "055", "056", "058", "001", "002", "003", "004", "005"):
            for step in by_id[check_id]["steps"]:
                self.step(by_id[check_id], step)

    def run(self) -> list[Result]:
        return [self.run_check(check) for check in self.spec["checks"]]


def summary(results: list[Result]) -> str:
    counts = {k: sum(r.outcome == k for r in results) for k in ("passed", "failed", "skipped")}
    return f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--name", default=f"conformance/r{uuid.uuid4().hex[:8]}")
    parser.add_argument("--env", action="append", default=[], metavar="K=V",
                        help="suite variables, e.g. OCI_AUTOMATIC_CROSSMOUNT=0")
    parser.add_argument("--prepare", action="store_true",
                        help="push the content that pre-existing-content variables refer to first")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    replay = Replay(args.url, name=args.name, env=env)
    if args.prepare:
        replay.prepare()
    results = replay.run()
    for r in results:
        if args.verbose or r.outcome == "failed":
            print(f"{r.id} {r.outcome:7} [{r.workflow}] {r.name}" + (f": {r.reason}" if r.reason else ""))
    print(summary(results))
    return 1 if any(r.outcome == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
