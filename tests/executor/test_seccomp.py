"""seccomp: Docker's profile format resolved as Docker does, compiled by libseccomp, and the verdicts of
real syscalls in a container (both backends), against ``docker run`` where the engine is there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import ExecutionError, InvalidArgument
from dockyard.executor import Mount, ProcessSpec, RootfsSpec
from dockyard.executor import seccomp as sc
from dockyard.executor.base import Executor
from dockyard.executor.mount import DEFAULT_CAPS
from tests.executor.probes import (
    COMPARED,
    DEFAULT_VERDICTS,
    REFUSED_BY_SECCOMP_ONLY,
    docker_probe,
    probe_binary,
    verdicts,
)

CAPS = tuple(DEFAULT_CAPS)


def rules(oci: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [r for r in oci["syscalls"] if name in r["names"]]


def test_default_profile_resolved_for_docker_default_caps() -> None:
    oci = sc.resolve(sc.default_profile(), CAPS, "x86_64", (6, 1))
    assert oci is not None
    assert (oci["defaultAction"], oci["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", 1)
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    # clone only without namespace flags, clone3 answers ENOSYS (so libc falls back to clone)
    assert [r.get("args") for r in rules(oci, "clone")] == [
        [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]]
    assert rules(oci, "clone3") == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    for refused in ("unshare", "mount", "bpf", "keyctl", "add_key", "setns", "open_by_handle_at", "reboot"):
        assert rules(oci, refused) == [], refused
    assert {a["value"] for r in rules(oci, "personality") for a in r["args"]} == {0, 8, 0x20000, 0x20008,
                                                                                    0xFFFFFFFF}
    assert rules(oci, "ptrace") and rules(oci, "arch_prctl") and not rules(oci, "s390_runtime_instr")
    # an older kernel loses ptrace (minKernel 4.8); CAP_SYS_ADMIN brings clone, unshare and mount back
    old = sc.resolve(sc.default_profile(), CAPS, "x86_64", (4, 4))
    assert old is not None and rules(old, "ptrace") == []
    admin = sc.resolve(sc.default_profile(), (*CAPS, "CAP_SYS_ADMIN"), "x86_64", (6, 1))
    assert admin is not None
    assert [r.get("args") for r in rules(admin, "clone")] == [None]
    assert rules(admin, "unshare") and rules(admin, "mount")
    assert [r["action"] for r in rules(admin, "clone3")] == ["SCMP_ACT_ALLOW"]
    arm = sc.resolve(sc.default_profile(), CAPS, "aarch64", (6, 1))
    assert arm is not None and arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert rules(arm, "arch_prctl") == []


def test_includes_and_excludes_follow_docker() -> None:
    profile = sc.parse_profile(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"name": "a", "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_CHOWN", "CAP_KILL"]}},
            {"names": ["b"], "action": "SCMP_ACT_ERRNO",
             "includes": {"caps": ["CAP_CHOWN", "CAP_SYS_ADMIN"]}},
            {"names": ["c"], "action": "SCMP_ACT_ERRNO",
             "excludes": {"caps": ["CAP_SYS_ADMIN", "CAP_KILL"]}},
            {"names": ["d"], "action": "SCMP_ACT_ERRNO", "excludes": {"arches": ["amd64"]}},
            {"names": ["e"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "5.11"}},
            {"names": ["f"], "action": "SCMP_ACT_ERRNO", "excludes": {"minKernel": "5.11"}},
        ]}), "t.json")
    oci = sc.resolve(profile, CAPS, "x86_64", (5, 10))
    assert oci is not None
    assert [r["names"] for r in oci["syscalls"]] == [["a"], ["f"]]
    assert oci["architectures"] == ["SCMP_ARCH_X86_64"]
    newer = sc.resolve(profile, CAPS, "x86_64", (5, 11))
    assert newer is not None and [r["names"] for r in newer["syscalls"]] == [["a"], ["e"]]
    # no default action and no rules: seccomp off, as with Docker
    assert sc.resolve(sc.parse_profile("{}", "empty.json"), CAPS) is None


@pytest.mark.parametrize(("text", "message"), [
    ('{"defaultAction": "SCMP_ACT_ERRNO",\n "syscalls": [}', "p.json: line 2 column 15: invalid JSON"),
    ("[]", "p.json: a profile is a JSON object"),
    ('{"defaultAction": "SCMP_ACT_DENY"}', "p.json: defaultAction: unknown action 'SCMP_ACT_DENY'"),
    ('{"defaultAction": "SCMP_ACT_NOTIFY"}', "needs a listener"),
    ('{"syscalls": [{"names": ["x"]}]}', "p.json: defaultAction: unknown action None"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"]}]}',
     "p.json: syscalls[0].action: unknown action None"),
    ('{D "syscalls": [{"name": "x", "names": ["y"], "action": "SCMP_ACT_ALLOW"}]}',
     "syscalls[0]: both 'name' and 'names'"),
    ('{D "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}',
     "syscalls[0].errnoRet: must be an errno number"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{}, {"names": ["x"], "action": "SCMP_ACT_ALLOW"}]}',
     "syscalls[0].action"),
    ('{D "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW",\n'
     ' "args": [{"index": 6, "op": "SCMP_CMP_EQ"}]}]}', "syscalls[0].args[0].index: must be 0 to 5, not 6"),
    ('{D "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "EQ"}]}]}',
     "syscalls[0].args[0].op: unknown operator 'EQ'"),
    ('{D "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "SCMP_CMP_EQ",'
     ' "value": -1}]}]}', "syscalls[0].args[0].value: must be an unsigned 64-bit number"),
    ('{D "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5"}}]}',
     "syscalls[0].includes.minKernel: invalid kernel version '5'"),
    ('{"archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": "x"}]}',
     "p.json: archMap[0]: must be"),
    ('{"architectures": ["SCMP_ARCH_X86_64", 7]}', "p.json: architectures: must be a list of names"),
    ('{"architectures": ["SCMP_ARCH_X86_64"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}',
     "both 'architectures' and 'archMap'"),
])
def test_bad_profiles_name_the_place(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        sc.parse_profile(text.replace("{D ", '{"defaultAction": "SCMP_ACT_ERRNO", '), "p.json")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_default_profile_compiles_to_a_bpf_program() -> None:
    program = sc.program_for(sc.DEFAULT)
    assert program is not None and len(program) % 8 == 0 and 100 < len(program) // 8 <= 4096
    assert sc.program_for(sc.DEFAULT) is program  # cached: containers only install it
    assert sc.program_for(None) is None
    with pytest.raises(InvalidArgument, match="flags are not supported by the built-in executor: "
                                               "SECCOMP_FILTER_FLAG_LOG"):
        sc.compile_bpf({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]})


# -- real syscalls in a container ------------------------------------------------------------------

def run_probe(ex: Executor, rootfs: RootfsSpec, seccomp: str | None) -> dict[str, int]:
    out: list[bytes] = []
    err: list[bytes] = []
    spec = ProcessSpec(args=["/probe"], seccomp=seccomp,
                       mounts=[Mount("/probe", source=str(probe_binary()), readonly=True)])
    code = ex.run(spec, rootfs, stdout=out.append, stderr=err.append, timeout=60)
    assert code == 0, b"".join(err).decode()
    return verdicts(b"".join(out).decode())


def test_default_profile_refuses_what_docker_refuses(executor: Executor, overlay: RootfsSpec) -> None:
    found = run_probe(executor, overlay, sc.DEFAULT)
    assert {k: found[k] for k in DEFAULT_VERDICTS} == DEFAULT_VERDICTS
    assert found["socket-vsock"] == 1  # the current profile's argument rule for socket(AF_VSOCK)


def test_unconfined_allows_what_only_the_profile_refuses(executor: Executor, overlay: RootfsSpec) -> None:
    found = run_probe(executor, overlay, None)
    assert {k: found[k] for k in REFUSED_BY_SECCOMP_ONLY} == dict.fromkeys(REFUSED_BY_SECCOMP_ONLY, 0)
    assert (found["mount"], found["reboot"], found["swapon"]) == (1, 1, 1)  # capabilities still refuse


def test_custom_profile_actions_and_arguments(executor: Executor, overlay: RootfsSpec) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            # two comparisons of one argument mean either (runc splits them; libseccomp would AND them)
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 97,
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 0x40000, "op": "SCMP_CMP_EQ"}]},
            {"names": ["no_such_syscall_anywhere"], "action": "SCMP_ACT_ERRNO"},
        ]}
    found = run_probe(executor, overlay, json.dumps(profile))
    assert found["getppid"] == 38
    assert (found["socket-unix"], found["socket-vsock"]) == (97, 97)
    assert (found["personality-addr-no-randomize"], found["personality-query"]) == (1, 0)
    assert found["unshare-user"] == 0  # allowed by default here


def test_a_profile_that_cannot_be_compiled_fails_the_start(ns_executor: Executor,
                                                            overlay: RootfsSpec) -> None:
    profile = json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]})
    with pytest.raises(ExecutionError, match=r"^seccomp: profile flags are not supported") as info:
        ns_executor.run(ProcessSpec(args=["/bin/true"], seccomp=profile), overlay, timeout=30)
    assert info.value.exit_code == 125


@pytest.mark.docker
@pytest.mark.parametrize("security_opt", [(), ("seccomp=unconfined",)], ids=["default", "unconfined"])
def test_verdicts_match_docker_run(ns_executor: Executor, overlay: RootfsSpec, security_opt: tuple[str, ...],
                                   scratch_base: Path) -> None:
    theirs = docker_probe(*security_opt)
    ours = run_probe(ns_executor, overlay, None if security_opt else sc.DEFAULT)
    assert {k: ours[k] for k in COMPARED} == {k: theirs[k] for k in COMPARED}
