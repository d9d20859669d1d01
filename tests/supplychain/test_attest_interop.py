"""End to end (subprocess): ``build --sbom --provenance``, push, ``sign``, ``verify``, ``image
attestations`` and the pull policy, against distribution 2.8 (127.0.0.1:5000: tag schema) and
dockyard's own registry (referrers API); read back by independent clients: skopeo and ORAS's Python
library (``oras``), and signatures checked by ``cosign_spec`` (cryptography, not dockyard's code)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.client import Client
from dockyard.registry.server import RegistryServer
from tests.supplychain.cosign_spec import verify_simple_signing

PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))
BUSYBOX = PEERS_DIR / "images" / "busybox-amd64.tar"
DISTRIBUTION = "127.0.0.1:5000"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SPDX = "https://spdx.dev/Document"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
SIG_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
IN_TOTO = "application/vnd.in-toto+json"

pytestmark = [pytest.mark.busybox, pytest.mark.slow]


def run(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "dockyard", *args], env=env, text=True, capture_output=True,
                          timeout=300, cwd=env["WORKDIR"])
    if ok:
        assert done.returncode == 0, f"dockyard {' '.join(args)}: {done.stderr[-3000:]}"
    return done


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    root = Path("/dev/shm") / f"dytest-attest-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "config.toml"
    config.write_text("")
    (tmp_path / "ctx").mkdir()
    dockerfile = "FROM busybox:att\nARG GREETING=hi\nRUN echo $GREETING > /hi\n"
    (tmp_path / "ctx" / "Dockerfile").write_text(dockerfile)
    environment = {**os.environ, "DOCKYARD_ROOT": str(root), "DOCKER_CONFIG": str(tmp_path / "docker"),
                   "DOCKYARD_CONFIG": str(config), "DOCKYARD_DAEMON_JSON": "", "COSIGN_PASSWORD": "pw",
                   "WORKDIR": str(tmp_path)}
    run(environment, "import", "--change", 'CMD ["sh"]', str(BUSYBOX), "busybox:att")
    run(environment, "generate-key-pair")
    yield environment
    subprocess.run(["rm", "-rf", str(root)], check=False)


class Oras:
    """ORAS's Python client, for what ``oras discover`` and ``oras manifest fetch`` show."""

    def __init__(self, host: str) -> None:
        import oras.client

        self.host = host
        self.client = oras.client.OrasClient(hostname=host, insecure=True)

    def manifest(self, ref: str, accept: str = f"{OCI_INDEX}, {OCI_MANIFEST}, {DOCKER_MANIFEST}") -> Any:
        import oras.container

        return self.client.get_manifest(oras.container.Container(f"{self.host}/{ref}"),
                                        allowed_media_type=[a.strip() for a in accept.split(",")])

    def blob(self, repo: str, digest: str) -> bytes:
        import oras.container

        response = self.client.get_blob(oras.container.Container(f"{self.host}/{repo}"), digest)
        assert response.status_code == 200, response.text
        return bytes(response.content)

    def discover(self, repo: str, digest: str) -> list[dict[str, Any]]:
        """The referrers of ``digest``: the API when the registry has it, else the tag schema."""
        response = self.client.do_request(f"http://{self.host}/v2/{repo}/referrers/{digest}", "GET",
                                          headers={"Accept": OCI_INDEX})
        if response.status_code == 200:
            return list(response.json()["manifests"])
        assert response.status_code == 404
        tag = digest.replace(":", "-")
        tags = self.client.get_tags(f"{self.host}/{repo}")
        if tag not in tags:
            return []
        return list(self.manifest(f"{repo}:{tag}", OCI_INDEX)["manifests"])


def skopeo_raw(ref: str) -> Any:
    done = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def statements_of(oras: Oras, repo: str, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for layer in manifest["layers"]:
        assert layer["mediaType"] == IN_TOTO
        doc = json.loads(oras.blob(repo, layer["digest"]))
        assert layer["annotations"]["in-toto.io/predicate-type"] == doc["predicateType"]
        out[doc["predicateType"]] = doc
    return out


def independent_verify(oras: Oras, repo: str, digest: str, public_pem: bytes) -> int:
    """Signatures under the .sig tag that verify by cosign's rules; how many."""
    sig = oras.manifest(f"{repo}:{digest.replace(':', '-')}.sig", OCI_MANIFEST)
    good = 0
    for layer in sig["layers"]:
        assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
        payload = oras.blob(repo, layer["digest"])
        verify_simple_signing(public_pem, payload, layer["annotations"]["dev.cosignproject.cosign/signature"],
                              digest)
        good += 1
    return good


def test_local_build_keeps_attestations_the_buildkit_way(env: dict[str, str]) -> None:
    name = "127.0.0.1:5000/dytest-attest/local:1"
    run(env, "build", "-q", "--sbom=true", "--provenance=mode=max", "--build-arg", "GREETING=yo", "-t", name,
        "ctx")
    with Client(env["DOCKYARD_ROOT"]) as client:
        full = "127.0.0.1:5000/dytest-attest/local:1"
        index = json.loads(client.store.content.read(client.store.meta.tag_index(full)))
        image, att = index["manifests"]
        assert image["platform"] == {"architecture": "amd64", "os": "linux"}
        assert att["platform"] == {"architecture": "unknown", "os": "unknown"}
        assert att["annotations"] == {"vnd.docker.reference.digest": image["digest"],
                                      "vnd.docker.reference.type": "attestation-manifest"}
        manifest = json.loads(client.store.content.read(att["digest"]))
        types = [layer["annotations"]["in-toto.io/predicate-type"] for layer in manifest["layers"]]
        assert types == [SPDX, SLSA_V02]
        assert {layer["mediaType"] for layer in manifest["layers"]} == {IN_TOTO}
        client.gc()  # the tag's index keeps its attestation manifest and statements
        for blob in (att["digest"], manifest["config"]["digest"], *(x["digest"] for x in manifest["layers"])):
            assert client.store.content.exists(blob), blob
    sbom = json.loads(run(env, "image", "attestations", name, "--type", "sbom").stdout)
    assert sbom["subject"][0]["digest"] == {"sha256": image["digest"].removeprefix("sha256:")}
    want = "pkg:docker/127.0.0.1:5000/dytest-attest/local@1?platform=linux%2Famd64"
    assert sbom["subject"][0]["name"] == want
    assert sbom["predicate"]["spdxVersion"] == "SPDX-2.3"
    prov = json.loads(run(env, "image", "attestations", name, "--type", "provenance").stdout)["predicate"]
    assert prov["buildType"] == "https://mobyproject.org/buildkit@v1"
    assert prov["invocation"]["parameters"]["args"] == {"build-arg:GREETING": "yo"}  # mode=max only
    assert prov["materials"][0]["uri"] == "pkg:docker/busybox@att?platform=linux%2Famd64"
    source = prov["metadata"]["https://mobyproject.org/buildkit@v1#metadata"]["source"]["infos"][0]
    assert base64.b64decode(source["data"]).startswith(b"FROM busybox:att")
    # mode=min (buildx's default mode) leaves the build arguments and the Dockerfile out; v1 on request
    run(env, "build", "-q", "--attest", "type=provenance,version=v1", "--build-arg", "GREETING=yo",
        "-t", name, "ctx")
    v1 = json.loads(run(env, "image", "attestations", name, "--type", "provenance").stdout)
    assert v1["predicateType"] == "https://slsa.dev/provenance/v1"
    assert "args" not in v1["predicate"]["buildDefinition"]["externalParameters"]["request"]
    listed = run(env, "image", "attestations", name).stdout
    assert "https://slsa.dev/provenance/v1" in listed and SPDX not in listed


@pytest.mark.registry
@pytest.mark.skopeo
def test_push_to_distribution_sign_and_verify(env: dict[str, str]) -> None:
    repo = f"dytest-attest/app-{uuid.uuid4().hex[:8]}"
    ref = f"{DISTRIBUTION}/{repo}:1"
    run(env, "build", "-q", "--sbom", "--provenance", "--push", "-t", ref, "ctx")
    index = skopeo_raw(ref)
    assert index["mediaType"] == OCI_INDEX
    image, att = index["manifests"]
    assert att["annotations"]["vnd.docker.reference.digest"] == image["digest"]
    oras = Oras(DISTRIBUTION)
    stmts = statements_of(oras, repo, oras.manifest(f"{repo}@{att['digest']}", OCI_MANIFEST))
    assert set(stmts) == {SPDX, SLSA_V02}
    for doc in stmts.values():  # the subject is the manifest as pushed (compressed layers), not the local one
        assert doc["subject"][0]["digest"] == {"sha256": image["digest"].removeprefix("sha256:")}
    listed = run(env, "image", "attestations", "--remote", ref).stdout
    assert listed.count(" index ") == 2

    unsigned = run(env, "verify", "--key", "cosign.pub", ref, ok=False)
    assert unsigned.returncode == 1 and "no matching signatures: no signatures found" in unsigned.stderr
    run(env, "sign", "--key", "cosign.key", ref)
    raw = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
                         capture_output=True, timeout=120, check=True).stdout
    assert json.loads(raw) == index  # signing changes nothing of the image
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    public_pem = (Path(env["WORKDIR"]) / "cosign.pub").read_bytes()
    assert independent_verify(oras, repo, digest, public_pem) == 1
    # distribution 2.8 has no referrers API: the signature referrer is in the tag schema's index
    found = oras.discover(repo, digest)
    assert [d["artifactType"] for d in found] == [SIG_ARTIFACT]
    payloads = json.loads(run(env, "verify", "--key", "cosign.pub", ref).stdout)
    assert payloads[0]["critical"]["image"]["docker-manifest-digest"] == digest
    # another key verifies nothing
    other = Path(env["WORKDIR"]) / "other"
    other.mkdir()
    run({**env, "WORKDIR": str(other)}, "generate-key-pair")
    wrong = run(env, "verify", "--key", "other/cosign.pub", ref, ok=False)
    assert wrong.returncode == 1 and "none of 2 signature(s) verifies with the key" in wrong.stderr


@pytest.mark.registry
def test_referrers_on_distribution_use_the_tag_schema(env: dict[str, str]) -> None:
    repo = f"dytest-attest/ref-{uuid.uuid4().hex[:8]}"
    ref = f"{DISTRIBUTION}/{repo}:1"
    run(env, "build", "-q", "--sbom", "--provenance", "--attest-as-referrers", "--push", "-t", ref, "ctx")
    oras = Oras(DISTRIBUTION)
    top = oras.manifest(f"{repo}:1")
    assert top["mediaType"] == DOCKER_MANIFEST  # one platform, attestations beside it: no index
    inspected = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
                               capture_output=True, text=True, timeout=120, check=True)
    image_digest = json.loads(inspected.stdout)["Digest"]
    found = oras.discover(repo, image_digest)
    assert sorted(d["annotations"]["in-toto.io/predicate-type"] for d in found) == sorted([SPDX, SLSA_V02])
    assert {d["artifactType"] for d in found} == {IN_TOTO}
    listed = run(env, "image", "attestations", "--remote", ref).stdout
    assert listed.count(" referrer ") == 2


def test_referrers_api_of_dockyards_registry(env: dict[str, str], tmp_path: Path) -> None:
    with RegistryServer(storage=tmp_path / "storage") as server:
        repo = "attest/app"
        ref = f"{server.address}/{repo}:1"
        run(env, "build", "-q", "--sbom", "--provenance", "--attest-as-referrers", "--push",
            "--platform", "linux/amd64", "-t", ref, "ctx")
        oras = Oras(server.address)
        top = oras.manifest(f"{repo}:1")
        raw = oras.client.do_request(f"http://{server.address}/v2/{repo}/manifests/1", "GET",
                                     headers={"Accept": DOCKER_MANIFEST}).content
        image_digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        assert top["mediaType"] == DOCKER_MANIFEST
        run(env, "sign", "--key", "cosign.key", ref)
        found = oras.discover(repo, image_digest)
        kinds = sorted(d.get("annotations", {}).get("in-toto.io/predicate-type", d["artifactType"])
                       for d in found)
        assert kinds == sorted([SPDX, SLSA_V02, SIG_ARTIFACT])
        # the API answers, so no fallback tag was written; the cosign .sig tag is
        tags = oras.client.get_tags(f"{server.address}/{repo}")
        assert tags == ["1", f"{image_digest.replace(':', '-')}.sig"]
        sig_ref = next(d for d in found if d["artifactType"] == SIG_ARTIFACT)
        sig = oras.manifest(f"{repo}@{sig_ref['digest']}", OCI_MANIFEST)
        assert sig["subject"]["digest"] == image_digest
        layer = sig["layers"][0]
        public_pem = (Path(env["WORKDIR"]) / "cosign.pub").read_bytes()
        verify_simple_signing(public_pem, oras.blob(repo, layer["digest"]),
                              layer["annotations"]["dev.cosignproject.cosign/signature"], image_digest)
        run(env, "verify", "--key", "cosign.pub", ref)
        listed = run(env, "image", "attestations", "--remote", ref).stdout
        assert listed.count(" referrer ") == 2


@pytest.mark.registry
def test_policy_refuses_unsigned_images(env: dict[str, str]) -> None:
    repo = f"dytest-attest/pol-{uuid.uuid4().hex[:8]}"
    ref = f"{DISTRIBUTION}/{repo}:1"
    run(env, "build", "-q", "--sbom", "--push", "-t", ref, "ctx")
    config = Path(env["DOCKYARD_CONFIG"])
    config.write_text(f'[[policy]]\nregistry = "{DISTRIBUTION}"\nprefix = "dytest-attest/pol-"\n'
                      f'key = "{env["WORKDIR"]}/cosign.pub"\n')
    run(env, "rmi", ref)
    rule = (f"policy rule 1 in {config}: images from {DISTRIBUTION}/dytest-attest/pol- must carry a valid "
            f"signature by {env['WORKDIR']}/cosign.pub")
    pulled = run(env, "pull", ref, ok=False)
    assert pulled.returncode == 1
    assert pulled.stderr.count("\n") == 1 and rule in pulled.stderr and "no signatures found" in pulled.stderr
    ran = run(env, "run", "--rm", ref, "true", ok=False)
    assert ran.returncode != 0 and rule in ran.stderr
    (Path(env["WORKDIR"]) / "ctx2").mkdir()
    (Path(env["WORKDIR"]) / "ctx2" / "Dockerfile").write_text(f"FROM {ref}\n")
    built = run(env, "build", "-q", "ctx2", ok=False)
    assert built.returncode == 1 and rule in built.stderr
    every = run(env, "pull", "--all-tags", f"{DISTRIBUTION}/{repo}", ok=False)
    assert every.returncode == 1 and "pull --all-tags refused by policy rule 1" in every.stderr
    # outside the rule's prefix nothing is asked; once signed, the pull goes through
    run(env, "sign", "--key", "cosign.key", ref)
    run(env, "pull", ref)
    assert "Status" not in run(env, "run", "--rm", "--network", "none", ref, "cat", "/hi").stderr


@pytest.mark.registry
def test_pull_save_and_load_keep_attestations(env: dict[str, str], tmp_path: Path) -> None:
    repo = f"dytest-attest/keep-{uuid.uuid4().hex[:8]}"
    ref = f"{DISTRIBUTION}/{repo}:1"
    run(env, "build", "-q", "--sbom", "--provenance", "--push", "-t", ref, "ctx")
    image_digest = skopeo_raw(ref)["manifests"][0]["digest"]

    def listed(environment: dict[str, str]) -> list[tuple[str, str]]:
        docs = json.loads(run(environment, "image", "attestations", "--format", "json", ref).stdout)
        return sorted((d["predicateType"], d["subject"]) for d in docs)

    want = sorted([(SPDX, image_digest), (SLSA_V02, image_digest)])
    other = {**env, "DOCKYARD_ROOT": str(tmp_path / "pulled")}
    run(other, "pull", ref)
    assert listed(other) == want
    run(other, "save", "-o", str(tmp_path / "saved.tar"), ref)
    loaded = {**env, "DOCKYARD_ROOT": str(tmp_path / "loaded")}
    run(loaded, "load", "-i", str(tmp_path / "saved.tar"))
    assert listed(loaded) == want
    # pushed again from the loaded store, the index and its attestations are the registry's own
    again = f"{DISTRIBUTION}/{repo}:2"
    run(loaded, "tag", ref, again)
    run(loaded, "push", again)
    assert skopeo_raw(again)["manifests"] == skopeo_raw(ref)["manifests"]


@pytest.mark.registry
def test_multi_platform_build_has_one_attestation_manifest_per_platform(env: dict[str, str]) -> None:
    ctx = Path(env["WORKDIR"]) / "scratch"
    ctx.mkdir()
    (ctx / "f").write_text("x\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY f /f\n")
    repo = f"dytest-attest/multi-{uuid.uuid4().hex[:8]}"
    ref = f"{DISTRIBUTION}/{repo}:1"
    run(env, "build", "-q", "--platform", "linux/amd64,linux/arm64", "--sbom", "--provenance", "--push",
        "-t", ref, "scratch")
    entries = skopeo_raw(ref)["manifests"]
    images = [e for e in entries if e["platform"]["os"] == "linux"]
    atts = [e for e in entries if e["platform"] == {"architecture": "unknown", "os": "unknown"}]
    assert sorted(e["platform"]["architecture"] for e in images) == ["amd64", "arm64"]
    assert sorted(a["annotations"]["vnd.docker.reference.digest"] for a in atts) == \
        sorted(e["digest"] for e in images)
    oras = Oras(DISTRIBUTION)
    for att in atts:
        stmts = statements_of(oras, repo, oras.manifest(f"{repo}@{att['digest']}", OCI_MANIFEST))
        subject = att["annotations"]["vnd.docker.reference.digest"]
        platform = next(e["platform"]["architecture"] for e in images if e["digest"] == subject)
        assert stmts[SLSA_V02]["predicate"]["invocation"]["environment"]["platform"] == f"linux/{platform}"
        assert stmts[SPDX]["subject"][0]["digest"]["sha256"] == subject.removeprefix("sha256:")
    rows = run(env, "image", "attestations", "--remote", ref).stdout.splitlines()[1:]
    assert sorted(r.split()[0] for r in rows) == ["linux/amd64", "linux/amd64", "linux/arm64", "linux/arm64"]
