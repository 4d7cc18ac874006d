"""Run a real Apache Flink 2.3.0 standalone cluster on this host for tests.

Plain functions and a class for a conftest to call; nothing here is a fixture.

``ensure_flink()`` pip-installs the two PyPI packages that make up Flink, if
missing: ``apache-flink`` carries ``bin/`` and ``conf/``,
``apache-flink-libraries`` carries the jars (about 330 MB download, 10 s).

``build_jobs(workdir)`` compiles the job sources in ``tests/flink_jobs`` into
two jars, cached in ``workdir`` by source hash:

``streaming`` -- ``StreamingJob [job-name]`` (name defaults to
    ``streaming-job``). A data generator emits 10 records a second, which are
    mapped and discarded. It never ends: the job stays RUNNING until cancelled.

``batch`` -- ``BatchJob [fail] [output-file]`` (named ``batch-job``, or
    ``batch-job-fail``). In BATCH mode it sums 1..1000 and FINISHES in a couple
    of seconds. The result is printed to the task manager's stdout (the
    ``taskmanager.out`` file in ``FlinkCluster.log_dir``) and, given an output
    file, written there as the single line ``sum=500500``. The file is written
    by the cluster, so by this process's user; its folder must exist. It is
    published by a rename once complete, so it never appears half-written.
    With ``fail`` as the first argument a task throws at record 500 and the
    job ends FAILED on the cluster (``flink run -d`` still succeeds); restarts
    are disabled and no file is written.

``FlinkCluster`` starts a job manager and a task manager as foreground
processes in their own process groups, bound to 127.0.0.1 on free ports, with
everything (conf, logs, pids, temp dirs) inside the given workdir. Its
``flink_command`` is a wrapper for ``bin/flink`` that any local user can run,
e.g. over SSH as an unprivileged user. The wrapper keeps Flink's default REST
retries: against a cluster that is down, ``flink run`` and ``flink list`` keep
trying for about a minute. Callers who want a quick failure (about 3 s) pass
the option after the action: ``flink run -Drest.retry.max-attempts=0 -d x.jar``.

For another user to run the wrapper and read the jars, the folders above
``workdir`` must be searchable by others (``o+x``); ``build_jobs`` and ``start``
add o+rx to the workdir itself. pytest's ``tmp_path`` lives under a mode-700
folder, so rather use e.g. ``tempfile.mkdtemp()`` under /tmp. A warning is
logged when a folder above is out of reach.

Measured on a 2-core host with Java 17: cluster ready 10-11 s after start (15 s
while other tests load the CPUs), about 520 MB resident (about 590 MB with a job
running); ``flink run -d`` 3-4 s; ``flink cancel`` about 2.5 s; stop under 1 s.
"""

import atexit
import contextlib
import fcntl
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

logger = logging.getLogger(__name__)

FLINK_VERSION = "2.3.0"
FLINK_PACKAGES = (
    f"apache-flink=={FLINK_VERSION}",
    f"apache-flink-libraries=={FLINK_VERSION}",
)

JOBS_SOURCE_DIR = Path(__file__).resolve().parent / "flink_jobs"
JOB_MAIN_CLASSES = {"streaming": "StreamingJob", "batch": "BatchJob"}

TERMINAL_STATES = frozenset({"FINISHED", "FAILED", "CANCELED"})

_JOB_ID_RE = re.compile(r"JobID ([0-9a-f]{32})")

# Variables that would make Flink's scripts use another install's folders.
_FOREIGN_FLINK_VARS = (
    "FLINK_HOME",
    "FLINK_LIB_DIR",
    "FLINK_PLUGINS_DIR",
    "FLINK_OPT_DIR",
    "_FLINK_HOME_DETERMINED",
)


class FlinkError(RuntimeError):
    """Flink could not be installed, built, started or queried as expected."""


def ensure_flink() -> Path:
    """Return the pyflink folder, pip-installing Flink first if it is missing."""
    home = _installed_flink_home()
    if home is not None:
        return home

    # Concurrent test processes (e.g. pytest-xdist) must not install at once.
    lock_path = Path(tempfile.gettempdir()) / "flink-cluster-install.lock"
    with _file_lock(lock_path):
        home = _installed_flink_home()
        if home is None:
            _pip_install(FLINK_PACKAGES)
            importlib.invalidate_caches()
            home = _installed_flink_home()

    if home is None:
        raise FlinkError(
            f"pip installed {' '.join(FLINK_PACKAGES)} but pyflink still lacks "
            "bin/flink or lib/flink-dist-*.jar"
        )
    return home


def build_jobs(workdir) -> dict:
    """Compile the test jobs; return {"streaming": jar Path, "batch": jar Path}."""
    flink_home = ensure_flink()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    _open_to_others(workdir)
    sources = [JOBS_SOURCE_DIR / f"{main}.java" for main in JOB_MAIN_CLASSES.values()]

    # The Flink version is part of the key: the jars compile against its API.
    digest = hashlib.sha256(FLINK_VERSION.encode())
    for source in sources:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    out_dir = workdir / f"flink-jobs-{digest.hexdigest()[:16]}"
    jars = {kind: out_dir / f"{kind}.jar" for kind in JOB_MAIN_CLASSES}

    if not all(jar.is_file() for jar in jars.values()):
        with _file_lock(workdir / ".flink-jobs.lock"):
            if not all(jar.is_file() for jar in jars.values()):
                _compile_jobs(flink_home, sources, out_dir)

    _warn_if_hidden(out_dir)
    return jars


def parse_job_id(output: str) -> str:
    """Return the job id from `flink run` output ("...submitted with JobID <id>")."""
    match = _JOB_ID_RE.search(output)
    if match is None:
        raise FlinkError(f"no JobID in flink run output: {output!r}")
    return match.group(1)


class FlinkCluster:
    """A standalone Flink session cluster (one job and one task manager)."""

    def __init__(
        self,
        workdir=None,
        *,
        slots: int = 4,
        memory: str = "1024m",
        extra_config: dict | None = None,
        startup_timeout: float = 90.0,
    ):
        """Configure the cluster; nothing runs until start()."""
        self.workdir = Path(workdir).resolve() if workdir is not None else None
        self.slots = slots
        self.memory = memory
        self.extra_config = dict(extra_config or {})
        self.startup_timeout = startup_timeout
        self.flink_home = None
        self.java_home = None
        self.conf_dir = None
        self.log_dir = None
        self.client_log_dir = None
        self.flink_command = None
        self.rest_port = None
        self.rest_url = None
        self._processes = {}
        self._outputs = []

    def __enter__(self):
        """Start the cluster unless start() already ran."""
        if not self._processes:
            self.start()
        return self

    def __exit__(self, *exc_info):
        """Stop the cluster."""
        self.stop()

    @property
    def pids(self) -> dict:
        """Return {"jobmanager": pid, "taskmanager": pid} of running processes."""
        return {
            name: proc.pid
            for name, proc in self._processes.items()
            if proc.poll() is None
        }

    def start(self, workdir=None):
        """Write the config and wrapper into workdir, start, wait until ready."""
        if self._processes:
            raise FlinkError("cluster already started")
        if workdir is not None:
            self.workdir = Path(workdir).resolve()
        if self.workdir is None:
            raise FlinkError("start() needs a workdir")
        started = time.monotonic()

        self.flink_home = ensure_flink()
        self.java_home = _java_home()
        self._prepare_dirs()
        self.rest_port, rpc_port = _free_ports(2)
        self.rest_url = f"http://127.0.0.1:{self.rest_port}"
        self._write_conf(rpc_port)
        self.flink_command = self._write_wrapper()

        # Registered before launching so an aborted test run still cleans up.
        atexit.register(self.stop)
        try:
            self._launch("jobmanager")
            self._launch("taskmanager")
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

        logger.info(
            "Flink cluster ready at %s in %.1f s (pids %s)",
            self.rest_url,
            time.monotonic() - started,
            self.pids,
        )
        return self

    def stop(self, timeout: float = 20.0):
        """Kill the cluster's process groups and wait until they are gone."""
        atexit.unregister(self.stop)
        if not self._processes:
            return
        started = time.monotonic()

        # SIGTERM lets the JVMs run their shutdown hooks (temp dir cleanup).
        for proc in self._processes.values():
            _signal_group(proc.pid, signal.SIGTERM)

        deadline = time.monotonic() + timeout
        for name, proc in self._processes.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("Flink %s ignored SIGTERM; killing it", name)
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            _wait_group_gone(proc.pid, 10.0)

        for output in self._outputs:
            output.close()
        self._processes = {}
        self._outputs = []
        logger.info("Flink cluster stopped in %.1f s", time.monotonic() - started)

    def rest_get(self, path: str, timeout: float = 10.0):
        """Return the decoded JSON of GET <rest_url><path>."""
        url = self.rest_url + path
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.load(response)

    def jobs(self) -> list:
        """Return the cluster's jobs as dicts from /jobs/overview (jid, name, state)."""
        return self.rest_get("/jobs/overview")["jobs"]

    def job_state(self, job_id: str):
        """Return the job's state (RUNNING, FINISHED...), None if unknown."""
        try:
            return self.rest_get(f"/jobs/{job_id}")["state"]
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def wait_for_state(self, job_id: str, states, timeout: float = 60.0) -> str:
        """Wait until the job is in one of states (a name or names); return it."""
        wanted = {states} if isinstance(states, str) else set(states)
        deadline = time.monotonic() + timeout
        state = None

        while True:
            state = self.job_state(job_id)
            if state in wanted:
                return state

            # A finished job will not change again: say so now, not at timeout.
            if state in TERMINAL_STATES:
                raise FlinkError(
                    f"job {job_id} ended {state}, expected {sorted(wanted)}"
                    f"{self._root_exception(job_id)}"
                )
            if time.monotonic() >= deadline:
                raise FlinkError(
                    f"job {job_id} still {state} after {timeout:.0f} s, "
                    f"expected {sorted(wanted)}"
                )
            time.sleep(0.2)

    def cancel_job(self, job_id: str):
        """Ask the cluster over REST to cancel a job (returns before it is done)."""
        request = urllib.request.Request(
            f"{self.rest_url}/jobs/{job_id}?mode=cancel", method="PATCH"
        )
        with urllib.request.urlopen(request, timeout=10.0):
            pass

    def run_flink(self, *args, timeout: float = 180.0):
        """Run the wrapper (as this user) with args; return the CompletedProcess."""
        return subprocess.run(
            [str(self.flink_command), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _prepare_dirs(self):
        """Create the cluster's folders, readable by the wrapper's users."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        _open_to_others(self.workdir)
        self.conf_dir = self.workdir / "conf"
        self.log_dir = self.workdir / "log"
        self.client_log_dir = self.workdir / "client-logs"
        for name in ("conf", "log", "pid", "tmp", "web-tmp", "client-logs"):
            (self.workdir / name).mkdir(exist_ok=True)
            (self.workdir / name).chmod(0o755)

        # Any user's client creates its own log folder in client-logs, and
        # its JAAS file in tmp (io.tmp.dirs is read by the client too); the
        # sticky bit keeps users from deleting each other's files.
        self.client_log_dir.chmod(0o1777)
        (self.workdir / "tmp").chmod(0o1777)

        _warn_if_hidden(self.workdir)
        _warn_if_hidden(self.flink_home / "bin")

    def _write_conf(self, rpc_port: int):
        """Write conf/: the shipped files, config.yaml edited for this cluster."""
        shipped = self.flink_home / "conf"
        for source in shipped.iterdir():
            if source.is_file() and source.name != "config.yaml":
                shutil.copyfile(source, self.conf_dir / source.name)
                (self.conf_dir / source.name).chmod(0o644)

        # The shipped config.yaml carries env.java.opts.all, the --add-opens
        # list Java 17 needs on client and cluster alike; keep it and the rest.
        config = _flatten_yaml((shipped / "config.yaml").read_text())
        settings = {
            "jobmanager.rpc.address": "127.0.0.1",
            "jobmanager.rpc.port": rpc_port,
            "jobmanager.bind-host": "127.0.0.1",
            "jobmanager.memory.process.size": self.memory,
            "taskmanager.host": "127.0.0.1",
            "taskmanager.bind-host": "127.0.0.1",
            "taskmanager.memory.process.size": self.memory,
            "taskmanager.numberOfTaskSlots": self.slots,
            "rest.address": "127.0.0.1",
            "rest.bind-address": "127.0.0.1",
            "rest.port": self.rest_port,
            "io.tmp.dirs": str(self.workdir / "tmp"),
            "web.tmpdir": str(self.workdir / "web-tmp"),
            # A failing test job should turn FAILED at once, not restart.
            "restart-strategy.type": "none",
            # The task manager usually comes up before the job manager's RPC
            # port opens; the default 10 s pause after that refusal doubled
            # the start-up time.
            "cluster.registration.error-delay": "1 s",
        }
        settings.update(self.extra_config)
        for key, value in settings.items():
            config[key] = _yaml_scalar(value)

        if "env.java.opts.all" not in config:
            raise FlinkError(f"{shipped}/config.yaml has no env.java.opts.all")
        text = "".join(f"{key}: {value}\n" for key, value in config.items())
        (self.conf_dir / "config.yaml").write_text(text)
        (self.conf_dir / "config.yaml").chmod(0o644)

    def _write_wrapper(self) -> Path:
        """Write the executable bin/flink wrapper any local user can run."""
        wrapper = self.workdir / "flink"
        flink = self.flink_home / "bin" / "flink"
        quote = shlex.quote
        wrapper.write_text(
            "#!/bin/sh\n"
            f"# Flink CLI for the test cluster at {self.rest_url}.\n"
            f"# Written by {Path(__file__).name}; any local user may run it.\n"
            f"FLINK_CONF_DIR={quote(str(self.conf_dir))}\n"
            f"JAVA_HOME={quote(str(self.java_home))}\n"
            "export FLINK_CONF_DIR JAVA_HOME\n"
            "# Folders of another Flink install must not leak in.\n"
            f"unset {' '.join(_FOREIGN_FLINK_VARS)}\n"
            "# A log folder per user: the client's log file is named after $USER\n"
            "# only, which su and ssh do not always set, and another user's file\n"
            "# would not be writable.\n"
            f'FLINK_LOG_DIR={quote(str(self.client_log_dir))}/"$(id -u)"\n'
            'mkdir -p "$FLINK_LOG_DIR" || exit 1\n'
            "export FLINK_LOG_DIR\n"
            f'exec /bin/bash {quote(str(flink))} "$@"\n'
        )
        wrapper.chmod(0o755)
        return wrapper

    def _launch(self, name: str):
        """Start <name>.sh start-foreground in its own process group."""
        env = dict(os.environ)
        for var in _FOREIGN_FLINK_VARS:
            env.pop(var, None)
        env.update(
            FLINK_CONF_DIR=str(self.conf_dir),
            FLINK_LOG_DIR=str(self.log_dir),
            FLINK_PID_DIR=str(self.workdir / "pid"),
            JAVA_HOME=str(self.java_home),
        )

        # stdout holds the console log and, for the task manager, the jobs'
        # print() output, which BatchJob uses to show its result.
        output = open(self.log_dir / f"{name}.out", "ab")
        self._outputs.append(output)
        script = self.flink_home / "bin" / f"{name}.sh"
        self._processes[name] = subprocess.Popen(
            ["/bin/bash", str(script), "start-foreground"],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
            start_new_session=True,
        )

    def _wait_until_ready(self):
        """Poll GET /overview until a task manager offers all its slots."""
        deadline = time.monotonic() + self.startup_timeout
        overview = None

        while time.monotonic() < deadline:
            for name, proc in self._processes.items():
                if proc.poll() is not None:
                    raise FlinkError(
                        f"Flink {name} exited with {proc.returncode} while "
                        f"starting:\n{_tail(self.log_dir / f'{name}.out')}"
                    )
            try:
                overview = self.rest_get("/overview", timeout=2.0)
            except (OSError, ValueError):
                overview = None
            if (
                overview
                and overview.get("taskmanagers", 0) >= 1
                and overview.get("slots-total", 0) >= self.slots
            ):
                return
            time.sleep(0.25)

        raise FlinkError(
            f"Flink cluster not ready after {self.startup_timeout:.0f} s "
            f"(last /overview: {overview}); logs in {self.log_dir}"
        )

    def _root_exception(self, job_id: str) -> str:
        """Return ': <latest exception>' of a job for error messages, or ''."""
        try:
            info = self.rest_get(f"/jobs/{job_id}/exceptions")
        except (OSError, ValueError):
            return ""
        entries = (info.get("exceptionHistory") or {}).get("entries") or []
        lines = entries[0].get("stacktrace", "").splitlines() if entries else []

        # The top line is a generic "Recovery is suppressed..."; the last
        # "Caused by" names what the job itself threw.
        causes = [line for line in lines if line.startswith("Caused by: ")]
        summary = causes[-1] if causes else (lines[0] if lines else "")
        return f": {summary}" if summary else ""


def _installed_flink_home():
    """Return the pyflink folder if Flink FLINK_VERSION is complete there."""
    for dist in ("apache-flink", "apache-flink-libraries"):
        try:
            if importlib.metadata.version(dist) != FLINK_VERSION:
                return None
        except importlib.metadata.PackageNotFoundError:
            return None

    spec = importlib.util.find_spec("pyflink")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        home = Path(location)
        has_jars = any((home / "lib").glob("flink-dist-*.jar"))
        if (home / "bin" / "flink").is_file() and has_jars:
            return home
    return None


def _pip_install(requirements):
    """Install requirements without dependencies into this interpreter's env."""
    logger.info("Installing %s", " ".join(requirements))
    started = time.monotonic()

    # --no-deps: the Python side of pyflink (and its heavy deps) is not used.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--disable-pip-version-check",
            "--no-input",
            *requirements,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise FlinkError(f"pip install failed:\n{result.stdout}\n{result.stderr}")

    logger.info("Installed Flink in %.1f s", time.monotonic() - started)


def _compile_jobs(flink_home: Path, sources: list, out_dir: Path):
    """Compile sources against Flink's jars and write one jar per main class."""
    javac = _java_tool("javac")
    jar_tool = _java_tool("jar")
    classpath = os.pathsep.join(
        str(p) for p in sorted((flink_home / "lib").glob("*.jar"))
    )
    started = time.monotonic()

    # Built aside and renamed, so a crash never leaves a half-built cache entry.
    build_dir = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir.parent))
    try:
        classes = build_dir / "classes"
        classes.mkdir()
        _check_run(
            [javac, "--release", "11", "-cp", classpath, "-d", str(classes)]
            + [str(source) for source in sources]
        )

        for kind, main in JOB_MAIN_CLASSES.items():
            members = sorted(
                path.name
                for path in classes.glob(f"{main}*.class")
                if path.stem == main or path.stem.startswith(f"{main}$")
            )
            command = [jar_tool, "--create", "--file", str(build_dir / f"{kind}.jar")]
            command += ["--main-class", main]
            for member in members:
                command += ["-C", str(classes), member]
            _check_run(command)
            (build_dir / f"{kind}.jar").chmod(0o644)

        shutil.rmtree(classes)
        build_dir.chmod(0o755)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        build_dir.rename(out_dir)
    finally:
        if build_dir.exists():
            shutil.rmtree(build_dir)

    logger.info("Built Flink test jobs in %.1f s", time.monotonic() - started)


def _check_run(command: list):
    """Run a build command; raise FlinkError with its output if it fails."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FlinkError(
            f"{Path(command[0]).name} failed ({result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )


def _java_home() -> Path:
    """Return the JDK folder: $JAVA_HOME if usable, else that of `java` on PATH."""
    env_home = os.environ.get("JAVA_HOME")
    if env_home and (Path(env_home) / "bin" / "java").is_file():
        return Path(env_home)

    java = shutil.which("java")
    if java is None:
        raise FlinkError("no java on PATH and no usable JAVA_HOME")
    return Path(java).resolve().parent.parent


def _java_tool(name: str) -> str:
    """Return the path of a JDK tool (javac, jar)."""
    candidate = _java_home() / "bin" / name
    if candidate.is_file():
        return str(candidate)

    found = shutil.which(name)
    if found is None:
        raise FlinkError(f"{name} not found: a JDK, not just a JRE, is needed")
    return found


def _flatten_yaml(text: str) -> dict:
    """Flatten Flink's shipped config.yaml (nested maps of scalars) to dotted keys.

    Values are kept as their YAML source text. Lists or flow styles, which the
    shipped file does not use, are rejected rather than misread.
    """
    flat = {}
    path = []

    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, colon, value = stripped.partition(":")
        if not colon or stripped.startswith(("-", "{", "[")) or " #" in value:
            raise FlinkError(f"config.yaml line {number} not understood: {line!r}")

        indent = len(line) - len(line.lstrip(" "))
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, key.strip()))
        if value.strip():
            flat[".".join(name for _, name in path)] = value.strip()

    return flat


def _yaml_scalar(value) -> str:
    """Return a YAML scalar for a Python bool, number or string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)

    # A JSON string is a valid double-quoted YAML scalar.
    return json.dumps(str(value))


def _free_ports(count: int) -> list:
    """Return count distinct free TCP ports on 127.0.0.1."""
    sockets = []
    try:
        # Held open together so the kernel cannot hand out the same port twice.
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _signal_group(pgid: int, signum: int):
    """Send signum to a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _wait_group_gone(pgid: int, timeout: float):
    """Wait until no process of the group remains; raise FlinkError if one does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() >= deadline:
            raise FlinkError(f"processes of group {pgid} survived SIGKILL")
        time.sleep(0.1)


def _open_to_others(folder: Path):
    """Add read and search permission for others to a folder, if ours."""
    with contextlib.suppress(PermissionError):
        folder.chmod(stat.S_IMODE(folder.stat().st_mode) | 0o005)


def _warn_if_hidden(path: Path):
    """Log a warning if other users cannot reach path (a folder above is o-x)."""
    for folder in [path, *path.parents]:
        try:
            mode = folder.stat().st_mode
        except OSError:
            continue
        if not mode & stat.S_IXOTH:
            logger.warning(
                "%s is not searchable by other users (mode %o), so %s is out of "
                "reach of the flink wrapper's unprivileged users",
                folder,
                stat.S_IMODE(mode),
                path,
            )
            return


@contextlib.contextmanager
def _file_lock(path: Path):
    """Hold an exclusive flock on path for the duration of the block."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a text file, or a note if it is unreadable."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"({path}: {error})"
