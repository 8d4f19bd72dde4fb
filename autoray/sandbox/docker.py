"""The ``docker`` sandbox: one container per lane, through the ``docker`` SDK.

The container is named after the lane identity, so a retried lane re-attaches to the container
it already had (and its files) instead of starting a second one. It carries the labels
``autoray.managed=1``, ``autoray.run=<run>`` and ``autoray.lane=<lane>``, by which
:func:`~autoray.sandbox.remove_sandboxes` force-removes a run's containers when its lanes could
not (killed, swept, cancelled). It has no network, memory and
pids limits, an init process, and lives on ``sleep infinity``; every command is an exec in it.

Failures of the engine or the container (unreachable engine, missing image, refused create,
container gone mid-run) raise :class:`~autoray.errors.SandboxUnavailableError`: the lane retries
them. A command's own failure or timeout is an :class:`~autoray.sandbox.base.ExecResult`.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import posixpath
import secrets
import select
import shlex
import struct
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from autoray.config import DEFAULT_SANDBOX_IMAGE
from autoray.errors import SandboxUnavailableError
from autoray.sandbox.base import (
    TIMEOUT_EXIT_CODE,
    ExecResult,
    OutputBuffer,
    Sandbox,
    check_timeout,
    is_long_command,
    register_backend,
    safe_join,
    safe_name,
    short_hash,
    sourced,
    workdir_path,
)

if TYPE_CHECKING:
    from autoray.config import SandboxConfig

log = logging.getLogger(__name__)

SANDBOX_ROOT = "/sandbox"
LANE_LABEL = "autoray.lane"
RUN_LABEL = "autoray.run"
MANAGED_LABEL = "autoray.managed"
CONTAINER_PREFIX = "autoray-"
API_TIMEOUT_S = 60
PING_TIMEOUT_S = 5
CLIENT_GRACE_S = 5.0
"""The client stops waiting this long after the in-container ``timeout`` should have fired."""

_ENV = {"HOME": SANDBOX_ROOT, "TMPDIR": f"{SANDBOX_ROOT}/tmp", "LANG": "C.UTF-8"}
_HEADER = struct.Struct(">BxxxL")
_STDOUT, _STDERR = 1, 2
_READ_CHUNK = 1 << 16
_IDLE_CHECK_S = 1.0
_EXIT_WAIT_S = 2.0
_MAX_LINKS = 8
_NO_ENGINE_FIX = (
    "start it (scripts/docker-engine.sh up prints the DOCKER_HOST to use) "
    "or set sandbox.backend to 'process'"
)
_PIDFILE = "/tmp/.autoray-exec-"
_SCRIPT_NAME = ".autoray-cmd-"
_RUNTIME_FAILURE = "OCI runtime exec failed"

# Runs the command under coreutils `timeout` in its own process group, records that group for a
# client-side kill (output overflow), and kills what the command left in the background. The
# wrapper's own stderr goes to /dev/null (the shell would report "Killed" into the command's).
# Arguments: $1 timeout seconds, $2 token naming the pidfile, $3 the command.
_WRAPPER = f"""t=$1; k=$2; f={_PIDFILE}$2; shift 2
exec 3>&2 2>/dev/null
if command -v bash >/dev/null 2>&1; then s=bash; else s=sh; fi
timeout -s KILL "$t" "$s" -c "$1" 2>&3 3>&- &
c=$!
echo "$c" > "$f"
wait "$c"; rc=$?
kill -9 -"$c" 2>/dev/null
rm -f "$f" /tmp/{_SCRIPT_NAME}"$k"
exit "$rc"
"""
# Waits (briefly) for the wrapper's pidfile: a fast writer can overflow before it is written.
_KILLER = f"""f={_PIDFILE}$1; n=0
while [ ! -s "$f" ] && [ "$n" -lt 40 ]; do sleep 0.05; n=$((n + 1)); done
p=$(cat "$f" 2>/dev/null) && kill -9 -"$p" "$p" 2>/dev/null; true
"""


def container_name(identity: str) -> str:
    """Docker's name charset, plus a hash of the raw identity so distinct lanes never collide."""
    slug = safe_name(identity)
    if slug == identity:
        slug = f"{identity[:40]}-{short_hash(identity)}"
    return CONTAINER_PREFIX + slug


@register_backend
class DockerSandbox(Sandbox):
    """One long-lived container per lane identity, re-attached by name on retry."""

    backend = "docker"
    options = frozenset({"docker_host"})

    def __init__(self, config: SandboxConfig, *, docker_host: str | None = None) -> None:
        super().__init__(config)
        self._docker_host = docker_host
        self._client: docker.DockerClient | None = None
        self._container: Any = None

    @property
    def container_id(self) -> str | None:
        return None if self._container is None else str(self._container.id)

    @property
    def image(self) -> str:
        return self.config.image or DEFAULT_SANDBOX_IMAGE

    def start(self, identity: str, *, run_id: str | None = None) -> None:
        if self._check_identity(identity, run_id) and self._running():
            return
        if self._client is None:
            self._client = _connect(self._docker_host, API_TIMEOUT_S)
        lane = _Lane(identity, run_id, self.image)
        self._container = _attach_or_create(self._client, self.config, lane)
        self._run_checked(f"mkdir -p {SANDBOX_ROOT}/tmp {SANDBOX_ROOT}/cases", "prepare it")
        self.identity, self.run_id = identity, run_id
        log.info(
            "docker sandbox for lane %r: container %s (%s), image %s, no network",
            identity,
            self._container.name,
            self.container_id,
            self.image,
        )

    def _running(self) -> bool:
        try:
            self._container.reload()
        except (DockerException, OSError):
            return False
        return bool(self._container.status == "running")

    def _alive(self) -> bool:
        """Whether the container can still run a command. Asked after a SIGKILL status: when the
        container itself was killed, the engine may still report it running for a moment."""
        if not self._running():
            return False
        try:
            probe = self._api().exec_create(self.container_id, ["true"])["Id"]
            self._api().exec_start(probe)
            return bool(self._api().exec_inspect(probe)["ExitCode"] == 0)
        except (DockerException, OSError):
            return False

    def new_workdir(self, name: str) -> str:
        self._check_started()
        relative = workdir_path(name)
        target = safe_join(SANDBOX_ROOT, relative)
        quoted = shlex.quote(target)
        self._run_checked(f"rm -rf -- {quoted} && mkdir -p -- {quoted}", "reset a workdir")
        return relative

    def _run_checked(self, command: str, purpose: str) -> None:
        result = self._exec(command, timeout=self.config.timeout_s, cwd=SANDBOX_ROOT)
        if result.exit_code != 0:
            raise OSError(
                f"could not {purpose} in container {self._container.name}: "
                f"exit {result.exit_code}: {result.stderr.strip()[:300]!r}"
            )

    def exec(self, command: str, *, timeout_s: float, cwd: str | None = None) -> ExecResult:
        self._check_started()
        timeout = check_timeout(timeout_s, self.config)
        return self._exec(command, timeout=timeout, cwd=safe_join(SANDBOX_ROOT, cwd or ""))

    def _exec(self, command: str, *, timeout: float, cwd: str) -> ExecResult:
        token = secrets.token_hex(8)
        if is_long_command(command):
            command = self._save_script(command, token)
        argv = ["sh", "-c", _WRAPPER, "autoray-exec", f"{timeout:.3f}", token, command]
        out = OutputBuffer(self.config.output_cap_bytes)
        err = OutputBuffer(self.config.output_cap_bytes)
        started = time.monotonic()
        with self._errors("run a command"):
            exec_id = self._api().exec_create(self.container_id, argv, workdir=cwd)["Id"]
            sock = self._api().exec_start(exec_id, socket=True)
        frames = _Frames({_STDOUT: out, _STDERR: err})
        try:
            ending = _pump(sock, frames, started + timeout, lambda: self._exec_running(exec_id))
            if ending != "exited":
                self._kill_exec(token)
                _drain(sock, frames, time.monotonic() + _EXIT_WAIT_S)
        finally:
            _close(sock)
        exit_code = self._exit_code(exec_id)
        if exit_code in (137, -1) and not self._alive():
            raise self._vanished("run a command", f"exit {exit_code}")
        duration_ms = (time.monotonic() - started) * 1000
        timed_out = ending == "timeout" or (exit_code == 137 and duration_ms >= timeout * 1000)
        return _result(exit_code, out, err, timed_out=timed_out, duration_ms=duration_ms)

    def _save_script(self, command: str, token: str) -> str:
        """Put a long command in a file the wrapper removes afterwards; returns its runner."""
        archive = _tar_of(f"{_SCRIPT_NAME}{token}", command.encode("utf-8"))
        with self._errors("save a long command"):
            self._api().put_archive(self.container_id, "/tmp", archive)
        return sourced(f"/tmp/{_SCRIPT_NAME}{token}")

    def _exec_running(self, exec_id: str) -> bool:
        with self._errors("inspect a command"):
            return bool(self._api().exec_inspect(exec_id)["Running"])

    def _exit_code(self, exec_id: str) -> int:
        """The exec's exit status; its stream can close a moment before docker records it."""
        deadline = time.monotonic() + _EXIT_WAIT_S
        with self._errors("inspect a command"):
            info = self._api().exec_inspect(exec_id)
            while info["Running"] and time.monotonic() < deadline:
                time.sleep(0.02)
                info = self._api().exec_inspect(exec_id)
        code = info.get("ExitCode")
        return -1 if code is None else int(code)

    def _kill_exec(self, token: str) -> None:
        """Stop a command whose output overflowed or whose client deadline passed.

        Detached: an attached exec would wait on the engine, which is itself blocked writing the
        undrained output of the command being killed.
        """
        with self._errors("stop a command"):
            killer = self._api().exec_create(
                self.container_id, ["sh", "-c", _KILLER, "autoray-kill", token]
            )["Id"]
            self._api().exec_start(killer, detach=True)

    def write_file(self, path: str, content: str) -> None:
        self._check_started()
        target = safe_join(SANDBOX_ROOT, path)
        relative = posixpath.relpath(target, SANDBOX_ROOT)
        if relative == ".":
            raise IsADirectoryError(f"sandbox path {path!r} is the sandbox root; name a file")
        archive = _tar_of(relative, content.encode("utf-8"))
        with self._errors("write a file", path_error=path):
            self._api().put_archive(self.container_id, SANDBOX_ROOT, archive)

    def read_file(self, path: str, *, max_bytes: int = 1_000_000) -> str:
        self._check_started()
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes!r}")
        target = safe_join(SANDBOX_ROOT, path)
        for _ in range(_MAX_LINKS):
            chunks, stat = self._get_archive(target, path)
            link = stat.get("linkTarget") or ""
            if not link:
                return _read_member(chunks, path, max_bytes).decode("utf-8", errors="replace")
            _close_chunks(chunks)
            target = posixpath.join(posixpath.dirname(target), link)
        raise OSError(errno.ELOOP, f"sandbox path {path!r}: too many levels of symlinks", path)

    def _get_archive(self, target: str, path: str) -> tuple[Iterator[bytes], dict[str, Any]]:
        with self._errors("read a file", path_error=path):
            chunks, stat = self._api().get_archive(self.container_id, target)
        return chunks, stat

    def destroy(self) -> None:
        container, client = self._container, self._client
        self._container, self._client = None, None
        self.identity, self.run_id = None, None
        if container is not None:
            _force_remove(container)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    @classmethod
    def remove(
        cls,
        config: SandboxConfig,
        *,
        run_id: str,
        lane: str | None = None,
        docker_host: str | None = None,
    ) -> int:
        """Force-remove the containers labelled with ``run_id`` (and ``lane``) on this engine.

        An unreachable engine is logged, not raised: cleanup runs while a run ends or is
        cancelled, and must not turn that into a failure; the next cleanup tries again.
        """
        try:
            client = _connect(docker_host, API_TIMEOUT_S)
        except SandboxUnavailableError as exc:
            log.warning("sandbox cleanup of run %r skipped: %s", run_id, exc)
            return 0
        try:
            return _remove_labelled(client, _labels(run_id, lane))
        finally:
            with contextlib.suppress(Exception):
                client.close()

    @classmethod
    def preflight(cls, config: SandboxConfig, *, docker_host: str | None = None) -> None:
        client = _connect(docker_host, PING_TIMEOUT_S)
        image = config.image or DEFAULT_SANDBOX_IMAGE
        try:
            client.images.get(image)
        except ImageNotFound:
            raise SandboxUnavailableError(_missing_image(image)) from None
        except (DockerException, OSError) as exc:
            raise SandboxUnavailableError(
                f"Docker engine failed to inspect image {image!r}: {exc}; check the engine"
            ) from exc
        finally:
            client.close()

    def _api(self) -> Any:
        assert self._client is not None, "start() connects the client"
        return self._client.api

    @contextlib.contextmanager
    def _errors(self, action: str, *, path_error: str | None = None) -> Iterator[None]:
        """Translate SDK errors: an engine or container problem becomes SandboxUnavailableError;
        a path problem (``path_error`` given) stays the command's own OSError."""
        try:
            yield
        except (DockerException, OSError) as exc:
            raise self._translate(exc, action, path_error) from exc

    def _vanished(self, action: str, detail: str) -> SandboxUnavailableError:
        name = getattr(self._container, "name", "?")
        return SandboxUnavailableError(
            f"container {name} of lane {self.identity!r} stopped or vanished while trying to "
            f"{action} ({detail}); retrying the lane starts a fresh one"
        )

    def _translate(self, exc: Exception, action: str, path_error: str | None) -> Exception:
        name = getattr(self._container, "name", "?")
        if not self._running():
            return self._vanished(action, str(exc))
        if path_error is not None and isinstance(exc, NotFound):
            return FileNotFoundError(errno.ENOENT, f"no file {path_error!r} in the sandbox")
        if path_error is not None and isinstance(exc, APIError):
            return OSError(f"sandbox path {path_error!r}: {exc.explanation or exc}")
        return SandboxUnavailableError(
            f"Docker engine failed to {action} in container {name}: {exc}; check the engine"
        )


class _Frames:
    """Demultiplexes docker's attach stream (8-byte header per frame) into output buffers."""

    def __init__(self, buffers: dict[int, OutputBuffer]) -> None:
        self.buffers = buffers
        self._pending = bytearray()

    def feed(self, data: bytes) -> None:
        self._pending += data
        while len(self._pending) >= _HEADER.size:
            stream, size = _HEADER.unpack_from(self._pending)
            end = _HEADER.size + size
            if len(self._pending) < end:
                return
            buffer = self.buffers.get(stream)
            if buffer is not None:
                buffer.feed(bytes(self._pending[_HEADER.size : end]))
            del self._pending[:end]

    @property
    def overflowing(self) -> bool:
        return any(buffer.overflowing for buffer in self.buffers.values())


def _pump(
    sock: Any, frames: _Frames, deadline: float, still_running: Callable[[], bool]
) -> Literal["exited", "timeout", "overflow"]:
    """Read the exec's stream until it ends, overflows, or the client-side deadline passes."""
    hard_deadline = deadline + CLIENT_GRACE_S
    while True:
        remaining = hard_deadline - time.monotonic()
        if remaining <= 0:
            return "timeout"
        ready, _, _ = select.select([sock], [], [], min(remaining, _IDLE_CHECK_S))
        if not ready:
            if not still_running():
                return "exited"  # a detached (setsid) child still holds the stream
            continue
        data = _recv(sock)
        if not data:
            return "exited"
        frames.feed(data)
        if frames.overflowing:
            return "overflow"


def _result(
    exit_code: int, out: OutputBuffer, err: OutputBuffer, *, timed_out: bool, duration_ms: float
) -> ExecResult:
    stdout, stderr = out.text(), err.text()
    if exit_code == 126 and stdout.startswith(_RUNTIME_FAILURE) and not stderr:
        # The runtime (e.g. a missing cwd) reports on stdout; it belongs with errors.
        stdout, stderr = "", stdout
    return ExecResult(
        exit_code=TIMEOUT_EXIT_CODE if timed_out else exit_code,
        stdout=stdout,
        stderr=stderr,
        timed_out=timed_out,
        truncated=out.truncated or err.truncated,
        duration_ms=duration_ms,
    )


def _drain(sock: Any, frames: _Frames, deadline: float) -> None:
    """Read a killed command's stream to its end, so the engine is never left blocked on it."""
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], remaining)
        if not ready or not (data := _recv(sock)):
            return
        frames.feed(data)


def _recv(sock: Any) -> bytes:
    if hasattr(sock, "recv"):
        return bytes(sock.recv(_READ_CHUNK))
    return bytes(sock.read(_READ_CHUNK) or b"")


def _close(sock: Any) -> None:
    """Close the hijacked connection; a SocketIO wrapper alone would leave its socket open."""
    raw = getattr(sock, "_sock", None)
    for closable in (sock, raw):
        if closable is not None:
            with contextlib.suppress(OSError):
                closable.close()


def _connect(docker_host: str | None, timeout: int) -> docker.DockerClient:
    """A client that has answered a ping; the SDK resolves DOCKER_HOST when no host is given."""
    where = docker_host or "DOCKER_HOST or the default socket"
    try:
        client = (
            docker.DockerClient(base_url=docker_host, timeout=timeout)
            if docker_host
            else docker.from_env(timeout=timeout)
        )
        client.ping()
    except (DockerException, OSError) as exc:
        raise SandboxUnavailableError(
            f"Docker engine not reachable at {where!r} ({exc}); {_NO_ENGINE_FIX}"
        ) from None
    return client


@dataclass(frozen=True, slots=True)
class _Lane:
    """What a lane's container is made of: its identity, its run (labels) and its image."""

    identity: str
    run_id: str | None
    image: str

    @property
    def labels(self) -> dict[str, str]:
        labels = {MANAGED_LABEL: "1", LANE_LABEL: self.identity}
        if self.run_id is not None:
            labels[RUN_LABEL] = self.run_id
        return labels


def _labels(run_id: str, lane: str | None) -> list[str]:
    """Docker label filters selecting a run's managed containers (or one lane's)."""
    labels = [f"{MANAGED_LABEL}=1", f"{RUN_LABEL}={run_id}"]
    return labels if lane is None else [*labels, f"{LANE_LABEL}={lane}"]


def _remove_labelled(client: docker.DockerClient, labels: list[str]) -> int:
    """Force-remove every container matching all ``labels``; how many this call removed."""
    try:
        containers = client.containers.list(all=True, filters={"label": labels})
    except (DockerException, OSError) as exc:
        log.warning("could not list sandbox containers labelled %s: %s", labels, exc)
        return 0
    removed = sum(_force_remove(container) for container in containers)
    log.info("removed %d sandbox container(s) labelled %s", removed, labels)
    return removed


def _force_remove(container: Any) -> bool:
    """True when this call removed ``container``; already gone is no error, others are logged."""
    try:
        container.remove(force=True)
    except NotFound:
        return False  # removed meanwhile (its lane's destroy, a cleanup of its run)
    except (DockerException, OSError) as exc:
        log.warning("could not remove sandbox container %s: %s", container.name, exc)
        return False
    return True


def _attach_or_create(client: docker.DockerClient, config: SandboxConfig, lane: _Lane) -> Any:
    """The lane's running container: re-attached, restarted, or created."""
    name = container_name(lane.identity)
    try:
        container = _existing(client, name, lane.identity)
        if container is None:
            container = _create(client, config, lane)
        elif container.status != "running":
            container = _restart_or_replace(client, config, container, lane)
    except ImageNotFound:
        raise SandboxUnavailableError(_missing_image(lane.image)) from None
    except (DockerException, OSError) as exc:
        raise SandboxUnavailableError(
            f"Docker engine could not start container {name} for lane {lane.identity!r}: "
            f"{exc}; check the engine's capacity (memory, pids) and its log, then retry"
        ) from exc
    return container


def _existing(client: docker.DockerClient, name: str, identity: str) -> Any:
    try:
        container = client.containers.get(name)
    except NotFound:
        return None
    owner = container.labels.get(LANE_LABEL)
    if owner != identity:
        raise SandboxUnavailableError(
            f"a container named {name} exists for lane {owner!r}, not {identity!r}; "
            f"remove it (docker rm -f {name})"
        )
    return container


def _restart_or_replace(
    client: docker.DockerClient, config: SandboxConfig, container: Any, lane: _Lane
) -> Any:
    """A stopped container keeps the lane's files, so restart it; if it will not, replace it."""
    try:
        container.start()
        container.reload()
        if container.status == "running":
            return container
    except APIError as exc:
        log.warning("restarting container %s failed (%s); replacing it", container.name, exc)
    container.remove(force=True)
    return _create(client, config, lane)


def _create(client: docker.DockerClient, config: SandboxConfig, lane: _Lane) -> Any:
    name = container_name(lane.identity)
    try:
        container = client.containers.create(
            lane.image,
            command=["sleep", "infinity"],
            name=name,
            labels=lane.labels,
            working_dir=SANDBOX_ROOT,
            environment=_ENV,
            network_mode="none",
            mem_limit=f"{config.memory_mb}m",
            memswap_limit=f"{config.memory_mb}m",
            pids_limit=config.pids_limit,
            init=True,
        )
    except APIError as exc:
        if exc.status_code != 409:
            raise
        return client.containers.get(name)  # another attempt of this lane created it first
    try:
        container.start()
    except (DockerException, OSError):
        with contextlib.suppress(DockerException, OSError):
            container.remove(force=True)
        raise
    container.reload()
    return container


def _missing_image(image: str) -> str:
    return (
        f"sandbox image {image!r} not found in the Docker engine; build it with "
        "scripts/docker-engine.sh image, or point sandbox.image at your own image with "
        "python3, bash and coreutils"
    )


def _tar_of(relative: str, data: bytes) -> bytes:
    """An in-memory tar holding ``relative`` (with its parent directories) and ``data``."""
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        parts = relative.split("/")
        for depth in range(1, len(parts)):
            entry = tarfile.TarInfo("/".join(parts[:depth]))
            entry.type, entry.mode, entry.mtime = tarfile.DIRTYPE, 0o755, now
            archive.addfile(entry)
        entry = tarfile.TarInfo(relative)
        entry.size, entry.mode, entry.mtime = len(data), 0o644, now
        archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def _read_member(chunks: Iterator[bytes], path: str, max_bytes: int) -> bytes:
    """The first ``max_bytes`` of the one file in the archive stream; stops reading there."""
    try:
        with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as archive:
            member = archive.next()
            if member is None or member.isdir():
                raise IsADirectoryError(errno.EISDIR, f"sandbox path {path!r} is a directory", path)
            handle = archive.extractfile(member)
            if handle is None:
                raise OSError(f"sandbox path {path!r} is not a regular file")
            return handle.read(max_bytes)
    finally:
        _close_chunks(chunks)


def _close_chunks(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (what get_archive streams)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._rest:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._rest = chunk
        size = min(len(target), len(self._rest))
        target[:size] = self._rest[:size]
        self._rest = self._rest[size:]
        return size
