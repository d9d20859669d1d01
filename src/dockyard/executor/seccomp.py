"""seccomp: profiles in Docker's JSON format, resolved as Docker does, compiled by libseccomp.

A profile (``defaultAction``, ``defaultErrnoRet``, ``archMap`` or ``architectures``, ``syscalls`` with
``names``, ``action``, ``errnoRet``, ``args``, ``includes``/``excludes``) is first *resolved* for one
container on this machine: a rule whose ``includes`` (all of its capabilities in the bounding set, the
architecture, a minimum kernel) or ``excludes`` (any of them) say no is dropped, and the native
architecture brings its sub-architectures. The result is OCI's ``linux.seccomp`` object, which runc
takes as it is. :func:`compile_bpf` turns it into a BPF program with libseccomp (``libseccomp.so.2``
through ctypes), following runc's rules; :func:`install` loads a program into the calling process.

Compiling takes milliseconds, installing microseconds: the zygote compiles the default profile once
(:func:`warm`) and every container forked from it only installs the cached program.
"""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Collection

from dockyard.errors import ExecutionError, InvalidArgument
from dockyard.executor import mount as m

TYPE_CHECKING = False  # no typing at run time (see zygote.py)
if TYPE_CHECKING:
    from typing import Any

DEFAULT = "default"  # ProcessSpec.seccomp: Docker's default profile; None is unconfined
DEFAULT_PROFILE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp_default.json")

_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000,
}
_WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
        "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
_EPERM = 1
_MAX_ERRNO = 4095

# uname -m -> (the arch name Docker's includes/excludes use, its SCMP_ARCH_* name)
_MACHINES = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"), "i686": ("x86", "SCMP_ARCH_X86"),
    "i386": ("x86", "SCMP_ARCH_X86"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"), "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"), "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"), "loongarch64": ("loongarch64", "SCMP_ARCH_LOONGARCH64"),
    "mips64": ("mips64", "SCMP_ARCH_MIPS64"),
}

_SCMP_FLTATR_CTL_OPTIMIZE = 8
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


def _fail(source: str, where: str, what: str) -> InvalidArgument:
    place = f"{where}: " if where else ""
    return InvalidArgument(f"seccomp profile {source}: {place}{what}")


def parse_profile(text: str, source: str) -> dict[str, Any]:
    """The profile in ``text`` (Docker's JSON format), checked; errors name ``source`` and the place."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(source, f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise _fail(source, "", "a profile is a JSON object")
    # Without a default action and rules the profile turns seccomp off (Docker); rules need one.
    _check_action(raw, "defaultAction", "defaultErrnoRet", source, "", required=bool(raw.get("syscalls")))
    if raw.get("architectures") and raw.get("archMap"):
        raise _fail(source, "", "both 'architectures' and 'archMap' are given; use one")
    for key in ("architectures", "syscalls", "archMap", "flags"):
        if not isinstance(raw.get(key) or [], list):
            raise _fail(source, key, "must be a list")
    for key in ("architectures", "flags"):
        if not all(isinstance(v, str) for v in raw.get(key) or []):
            raise _fail(source, key, "must be a list of names")
    for index, entry in enumerate(raw.get("archMap") or []):
        subs = entry.get("subArchitectures") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or not isinstance(entry.get("architecture"), str) \
                or not isinstance(subs or [], list) or not all(isinstance(v, str) for v in subs or []):
            raise _fail(source, f"archMap[{index}]",
                        'must be {"architecture": NAME, "subArchitectures": [NAME, ...]}')
    for index, call in enumerate(raw.get("syscalls") or []):
        where = f"syscalls[{index}]"
        if not isinstance(call, dict):
            raise _fail(source, where, "must be an object")
        if call.get("name") and call.get("names"):
            raise _fail(source, where, "both 'name' and 'names' are given; use one")
        names = [call["name"]] if call.get("name") else call.get("names") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _fail(source, f"{where}.names", "must be a list of syscall names")
        _check_action(call, "action", "errnoRet", source, where, required=True)
        if not isinstance(call.get("args") or [], list):
            raise _fail(source, f"{where}.args", "must be a list")
        for number, arg in enumerate(call.get("args") or []):
            _check_arg(arg, source, f"{where}.args[{number}]")
        for key in ("includes", "excludes"):
            _check_filter(call.get(key), source, f"{where}.{key}")
    return raw


def _check_action(raw: dict[str, Any], key: str, errno_key: str, source: str, where: str,
                  *, required: bool) -> None:
    place = f"{where}.{key}" if where else key
    action = raw.get(key)
    if action is None and not required:
        return
    if action == "SCMP_ACT_NOTIFY":
        raise _fail(source, place, "SCMP_ACT_NOTIFY needs a listener, which dockyard does not provide")
    if action not in _ACTIONS:
        raise _fail(source, place, f"unknown action {action!r} (one of {', '.join(_ACTIONS)})")
    errno = raw.get(errno_key)
    if errno is not None and (not isinstance(errno, int) or isinstance(errno, bool)
                              or not 0 <= errno <= _MAX_ERRNO):
        raise _fail(source, f"{where}.{errno_key}" if where else errno_key,
                    f"must be an errno number from 0 to {_MAX_ERRNO}, not {errno!r}")


def _check_arg(arg: Any, source: str, where: str) -> None:
    if not isinstance(arg, dict):
        raise _fail(source, where, "must be an object")
    index = arg.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= 5:
        raise _fail(source, f"{where}.index", f"must be 0 to 5, not {index!r}")
    if arg.get("op") not in _OPS:
        raise _fail(source, f"{where}.op", f"unknown operator {arg.get('op')!r} (one of {', '.join(_OPS)})")
    for key in ("value", "valueTwo"):
        value = arg.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 64:
            raise _fail(source, f"{where}.{key}", f"must be an unsigned 64-bit number, not {value!r}")


def _check_filter(raw: Any, source: str, where: str) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise _fail(source, where, "must be an object")
    for key in ("caps", "arches"):
        value = raw.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _fail(source, f"{where}.{key}", "must be a list of names")
    if raw.get("minKernel"):
        _kernel_version(raw["minKernel"], source, f"{where}.minKernel")


def _kernel_version(text: Any, source: str, where: str) -> tuple[int, int]:
    parts = text.split(".") if isinstance(text, str) else []
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or parts == ["0", "0"]:
        raise _fail(source, where, f'invalid kernel version {text!r}, expected "<kernel>.<major>"')
    return int(parts[0]), int(parts[1])


def running_kernel() -> tuple[int, int]:
    """The running kernel's (version, major revision), e.g. (6, 1)."""
    release = os.uname().release.split("-")[0].split(".")
    return int(release[0]), int(release[1]) if len(release) > 1 and release[1].isdigit() else 0


def resolve(profile: dict[str, Any], caps: Collection[str], machine: str | None = None,
            kernel: tuple[int, int] | None = None, source: str = "") -> dict[str, Any] | None:
    """The OCI ``linux.seccomp`` object of a checked profile for a container whose bounding set is
    ``caps``, on ``machine`` (``uname -m``) with ``kernel``; None when the profile disables seccomp
    (no default action and no rules, as with Docker)."""
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    arch, scmp_arch = _MACHINES.get(machine or os.uname().machine, ("", ""))
    kernel = kernel or running_kernel()
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == scmp_arch:
            arches += [entry["architecture"], *(entry.get("subArchitectures") or [])]
            break
    out["architectures"] = arches
    if profile.get("flags"):
        out["flags"] = list(profile["flags"])
    calls = []
    for index, call in enumerate(profile.get("syscalls") or []):
        where = f"syscalls[{index}]"
        if _applies(call, caps, arch, kernel, source, where):
            names = [call["name"]] if call.get("name") else list(call.get("names") or [])
            rule: dict[str, Any] = {"names": names, "action": call["action"]}
            if call.get("errnoRet") is not None:
                rule["errnoRet"] = call["errnoRet"]
            if call.get("args"):
                rule["args"] = [{"index": a["index"], "value": a.get("value", 0),
                                 "valueTwo": a.get("valueTwo", 0), "op": a["op"]} for a in call["args"]]
            calls.append(rule)
    out["syscalls"] = calls
    return out


def _applies(call: dict[str, Any], caps: Collection[str], arch: str, kernel: tuple[int, int],
             source: str, where: str) -> bool:
    excludes = call.get("excludes") or {}
    if arch in (excludes.get("arches") or []) or any(c in caps for c in excludes.get("caps") or []):
        return False
    if excludes.get("minKernel") and kernel >= _kernel_version(excludes["minKernel"], source, where):
        return False
    includes = call.get("includes") or {}
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if not all(c in caps for c in includes.get("caps") or []):
        return False
    return not (includes.get("minKernel") and kernel < _kernel_version(includes["minKernel"], source, where))


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_lib: ctypes.CDLL | None = None


def _libseccomp() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError as exc:
            raise ExecutionError(f"seccomp: cannot load libseccomp.so.2 ({exc}); install it (Debian: "
                                 "apt-get install libseccomp2) or run with --security-opt seccomp=unconfined")
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.restype = None
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.POINTER(_ArgCmp)]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        _lib = lib
    return _lib


def _action(name: str, errno: int | None) -> int:
    if name in _WITH_ERRNO:
        return _ACTIONS[name] | (_EPERM if errno is None else errno)
    return _ACTIONS[name]


def compile_bpf(oci: dict[str, Any]) -> bytes:
    """The BPF program of an OCI ``linux.seccomp`` object, by libseccomp.

    As runc: a syscall libseccomp does not know is skipped, a rule whose action is the default one is
    left out, and a rule comparing one argument twice becomes one rule per comparison (libseccomp
    would AND them; Docker's profiles mean OR).
    """
    if oci.get("flags"):
        # they would need seccomp(2) rather than prctl; runc takes them (--runtime runc)
        raise InvalidArgument(f"seccomp: profile flags are not supported by the built-in executor: "
                              f"{', '.join(map(str, oci['flags']))}")
    lib = _libseccomp()
    default = _action(oci["defaultAction"], oci.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise ExecutionError("seccomp: libseccomp cannot make a filter")
    try:
        # A binary tree of syscall numbers rather than a list (libseccomp 2.5; older ones keep the list):
        # installing runs the program once per syscall number to cache the always-allowed ones, which
        # made a list cost 1.3 ms per container here and the tree 0.9 ms.
        lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_OPTIMIZE, 2)
        for name in oci.get("architectures") or []:
            token = lib.seccomp_arch_resolve_name(name.removeprefix("SCMP_ARCH_").lower().encode())
            rc = lib.seccomp_arch_add(ctx, token) if token else -22
            if rc not in (0, -17):  # -EEXIST: the native architecture is always there
                raise ExecutionError(f"seccomp: unsupported architecture {name}")
        for call in oci.get("syscalls") or []:
            action = _action(call["action"], call.get("errnoRet"))
            if action == default:
                continue
            conds = [_ArgCmp(a["index"], _OPS[a["op"]], a["value"], a.get("valueTwo", 0))
                     for a in call.get("args") or []]
            indexes = [c.arg for c in conds]
            groups = [[c] for c in conds] if len(set(indexes)) < len(indexes) else [conds]
            for name in call["names"]:
                number = lib.seccomp_syscall_resolve_name(name.encode())
                if number == -1:
                    continue  # unknown to this libseccomp: runc skips it too
                for group in groups:
                    array = (_ArgCmp * len(group))(*group)
                    rc = lib.seccomp_rule_add_array(ctx, action, number, len(group), array)
                    if rc != 0:
                        raise ExecutionError(f"seccomp: cannot add the rule for {name}: {os.strerror(-rc)}")
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            rc = lib.seccomp_export_bpf(ctx, fd)
            if rc != 0:
                raise ExecutionError(f"seccomp: cannot export the filter: {os.strerror(-rc)}")
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)


def default_profile() -> dict[str, Any]:
    """Docker's default profile (moby's profiles/seccomp/default.json, see seccomp_default.PROVENANCE)."""
    with open(DEFAULT_PROFILE_PATH, encoding="utf-8") as f:
        return parse_profile(f.read(), "default")


def profile_for(setting: str | None) -> dict[str, Any] | None:
    """The profile a ``ProcessSpec.seccomp`` value names: ``default``, None (unconfined), or JSON text."""
    if setting is None:
        return None
    if setting == DEFAULT:
        return default_profile()
    return parse_profile(setting, "(given)")


def oci_seccomp(setting: str | None, caps: Collection[str] = tuple(m.DEFAULT_CAPS)) -> dict[str, Any] | None:
    """The OCI ``linux.seccomp`` object for a ``ProcessSpec.seccomp`` value (None: no filter)."""
    profile = profile_for(setting)
    return None if profile is None else resolve(profile, caps)


_programs: dict[str, bytes | None] = {}


def program_for(setting: str | None) -> bytes | None:
    """The BPF program for a ``ProcessSpec.seccomp`` value with Docker's default capabilities; None for
    no filter. Cached: the zygote's cache is inherited by every container it forks."""
    if setting is None:
        return None
    if setting not in _programs:
        oci = oci_seccomp(setting)
        _programs[setting] = None if oci is None else compile_bpf(oci)
    return _programs[setting]


def warm() -> None:
    """Compile the default profile now (in the zygote, before it forks); a failure is reported later,
    by the run that needs it."""
    try:
        program_for(DEFAULT)
    except Exception:
        pass


def install(program: bytes) -> None:
    """Load a BPF program (from :func:`compile_bpf`) as this process's seccomp filter; it needs
    no_new_privs (or CAP_SYS_ADMIN) and lasts past exec."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    m.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(prog))
