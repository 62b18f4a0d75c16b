"""``spikewatch serve``: scheduled batch deployments from ``configs/schedules.yaml``.

Each entry of the schedules file becomes a Prefect deployment of
:func:`~spikewatch.pipelines.flows.batch_analyze` with a cron or interval
schedule, served by this process (``prefect.serve``): scheduled runs execute
here, each in a subprocess. With no Prefect API configured
(``PREFECT_API_URL`` unset, in the environment or the active Prefect
profile), a local server is started (``prefect server start --host 127.0.0.1``
on a free port) and stopped on exit; otherwise that server is used.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from spikewatch.config import CONFIG_DIR, load_config
from spikewatch.errors import ConfigError, SpikewatchError

DEFAULT_SCHEDULES = CONFIG_DIR / "schedules.yaml"
SERVER_LOG = "spikewatch-server.log"


class DeploymentSpec(BaseModel):
    """One scheduled batch: what to scan, where to write, when."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="Deployment name (unique in the file).")
    description: str | None = Field(None, description="Shown in the Prefect UI.")
    inputs: list[str] = Field(..., min_length=1, description="Folders, quoted glob patterns, manifest files or "
                              "recordings; relative paths are taken from the folder serve runs in.")
    out: str = Field("reports", description="Output root (batch.tsv, index.html, one folder per recording).")
    config: str | None = Field(None, description="Analysis config file or name; null = configs/<modality>.yaml.")
    sfreq: float | None = Field(None, gt=0, description="Sampling rate of header-less segments (Hz).")
    seed: int | None = Field(None, ge=0, description="Seed override.")
    start: float | None = Field(None, ge=0, description="Start of the analysed span of each recording (s).")
    stop: float | None = Field(None, gt=0, description="End of the analysed span of each recording (s).")
    cron: str | None = Field(None, description="Cron schedule, e.g. '0 2 * * *' (02:00 every night).")
    interval_s: float | None = Field(None, gt=0, description="Interval schedule (s).")
    timezone: str = Field("UTC", description="Time zone of the cron schedule.")
    concurrency: int | None = Field(None, ge=1, description="Override pipeline.concurrency.")
    retries: int | None = Field(None, ge=0, description="Override pipeline.retries.")
    retry_delay_s: float | None = Field(None, ge=0, description="Override pipeline.retry_delay_s.")
    dask_address: str | None = Field(None, description="Override pipeline.dask_address.")
    workers: int | None = Field(None, ge=1, description="Override pipeline.workers.")

    @field_validator("inputs", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_schedule(self):
        if (self.cron is None) == (self.interval_s is None):
            raise ValueError("give exactly one of 'cron' and 'interval_s'")
        if self.cron is not None:
            from prefect.schedules import Cron

            Cron(self.cron, timezone=self.timezone)  # ValueError on a bad cron string or time zone
        return self


class SchedulesFile(BaseModel):
    """The schedules file: deployments and how many runs may execute at once."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(1, ge=1, description="Flow runs this server executes at once (others wait).")
    deployments: list[DeploymentSpec] = Field(..., min_length=1, description="Scheduled batches.")

    @model_validator(mode="after")
    def _unique(self):
        names = [d.name for d in self.deployments]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"deployment names must be unique: {', '.join(dup)}")
        return self


def load_schedules(path: str | os.PathLike = DEFAULT_SCHEDULES) -> SchedulesFile:
    """Read and validate a schedules file; every deployment's analysis config must load.

    Parameters
    ----------
    path : path-like
        YAML file (see ``configs/schedules.yaml``).

    Returns
    -------
    SchedulesFile

    Raises
    ------
    ConfigError
        One line naming the file, the entry and the problem.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: schedules file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML: {' '.join(str(exc).split())}") from None
    try:
        spec = SchedulesFile.model_validate(data if data is not None else {})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "top level"
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{path}: '{where}': {msg}") from None
    for d in spec.deployments:
        cfg = _config_path(d.config)
        try:
            load_config(cfg)
        except ConfigError as exc:
            raise ConfigError(f"{path}: deployment '{d.name}': {exc}") from None
    return spec


def _config_path(config: str | None) -> str | None:
    """An existing file becomes absolute; a bare name (``eeg``) stays a name."""
    if config is None:
        return None
    p = Path(config).expanduser()
    return str(p.resolve()) if p.exists() else config


def _absolute_input(text: str) -> str:
    p = Path(text).expanduser()
    return text if p.is_absolute() else str(Path.cwd() / p)


def flow_parameters(d: DeploymentSpec) -> dict:
    """Parameters of :func:`~spikewatch.pipelines.flows.batch_analyze` for one deployment (absolute paths)."""
    params = {
        "inputs": [_absolute_input(i) for i in d.inputs], "out": str(Path(d.out).expanduser().resolve()),
        "config": _config_path(d.config), "sfreq": d.sfreq, "seed": d.seed, "start": d.start, "stop": d.stop,
        "concurrency": d.concurrency, "retries": d.retries, "retry_delay_s": d.retry_delay_s,
        "dask_address": d.dask_address, "workers": d.workers, "missing_ok": True,
    }
    return {k: v for k, v in params.items() if v is not None}


def build_deployments(spec: SchedulesFile) -> list:
    """One ``RunnerDeployment`` of the batch flow per entry, with its schedule.

    Parameters
    ----------
    spec : SchedulesFile

    Returns
    -------
    list of prefect.deployments.runner.RunnerDeployment
    """
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron, Interval

    from spikewatch.pipelines.flows import batch_analyze

    out = []
    for d in spec.deployments:
        schedule = (Cron(d.cron, timezone=d.timezone) if d.cron is not None
                    else Interval(datetime.timedelta(seconds=d.interval_s)))
        out.append(batch_analyze.to_deployment(
            name=d.name, schedule=schedule, parameters=flow_parameters(d), description=d.description,
            tags=["spikewatch"], entrypoint_type=EntrypointType.MODULE_PATH))
    return out


def configured_api_url() -> str | None:
    """The Prefect API URL from the environment or the active Prefect profile, if any."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the server gets SIGTERM if spikewatch dies, even by SIGKILL (no orphaned server)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _tail(path: Path, n: int = 5) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in lines[-n:])


@contextmanager
def local_server(port: int | None = None, timeout_s: float = 90.0, echo: Callable[[str], None] | None = None):
    """Run ``prefect server start --host 127.0.0.1`` for the duration of the block.

    Parameters
    ----------
    port : int, optional
        Port (default: a free one).
    timeout_s : float
        How long to wait for ``/api/health``.
    echo : callable, optional
        Receives one-line status messages.

    Yields
    ------
    (str, subprocess.Popen)
        The API URL (``http://127.0.0.1:PORT/api``) and the server process,
        which is stopped (SIGTERM, then SIGKILL after 15 s) when the block exits.

    Raises
    ------
    SpikewatchError
        The server did not become healthy in time (its log's last lines quoted).
    """
    from prefect.settings import get_current_settings

    port = port or free_port()
    url = f"http://127.0.0.1:{port}/api"
    home = Path(get_current_settings().home).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / SERVER_LOG
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    try:
        if echo:
            echo(f"starting a local Prefect server on 127.0.0.1:{port} (pid {proc.pid}, log {log_path})")
        deadline = time.monotonic() + timeout_s
        while not _healthy(url):
            if proc.poll() is not None:
                raise SpikewatchError(f"{log_path}: Prefect server exited with code {proc.returncode}: "
                                      f"{_tail(log_path)}")
            if time.monotonic() > deadline:
                raise SpikewatchError(f"{log_path}: Prefect server not healthy after {timeout_s:.0f} s: "
                                      f"{_tail(log_path)}")
            time.sleep(0.25)
        if echo:
            echo(f"Prefect server ready: UI http://127.0.0.1:{port}, API {url}")
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if echo:
            echo(f"Prefect server on 127.0.0.1:{port} stopped")


@contextmanager
def _sigterm_as_exit():
    """Until the runner installs its own handler, SIGTERM unwinds (so the server is stopped)."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def serve_schedules(path: str | os.PathLike = DEFAULT_SCHEDULES, port: int | None = None,
                    echo: Callable[[str], None] | None = None) -> None:
    """Serve the deployments of a schedules file until SIGINT or SIGTERM.

    Parameters
    ----------
    path : path-like
        Schedules file.
    port : int, optional
        Port of the local server started when no Prefect API is configured.
    echo : callable, optional
        Receives one-line status messages.

    Raises
    ------
    ConfigError
        Invalid schedules file.
    SpikewatchError
        The local server did not start.
    """
    from prefect import serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    spec = load_schedules(path)
    for d in spec.deployments:
        missing = [i for i in d.inputs if not any(c in i for c in "*?[") and not Path(_absolute_input(i)).exists()]
        if missing and echo:
            echo(f"note: deployment '{d.name}': {', '.join(missing)} does not exist yet (runs find nothing until it does)")
    external = configured_api_url()
    with _sigterm_as_exit():
        server = nullcontext((external, None)) if external else local_server(port, echo=echo)
        with server as (url, _proc):
            old = os.environ.get("PREFECT_API_URL")
            os.environ["PREFECT_API_URL"] = url  # flow-run subprocesses inherit it
            try:
                with temporary_settings(updates={PREFECT_API_URL: url}):
                    deployments = build_deployments(spec)
                    if echo:
                        for d in spec.deployments:
                            when = f"cron '{d.cron}' ({d.timezone})" if d.cron else f"every {d.interval_s:g} s"
                            echo(f"serving '{d.name}': {', '.join(d.inputs)} -> {d.out}, {when}, API {url}")
                    serve(*deployments, limit=spec.limit, print_starting_message=False)
            finally:
                if old is None:
                    os.environ.pop("PREFECT_API_URL", None)
                else:
                    os.environ["PREFECT_API_URL"] = old
