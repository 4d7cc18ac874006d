"""How an application is started, checked and stopped on the master VM.

Each runtime is a handful of fixed shell scripts; folders, file names,
process ids and program arguments reach them only as quoted positional
parameters.
"""

import logging
import re
from dataclasses import dataclass

from deploy.errors import DeployError
from deploy.ssh import http_get_json, remote_command

log = logging.getLogger(__name__)

LOG_TAIL_BYTES = 64 * 1024

# Starts the file detached from the SSH session, in a session of its own so a
# stop can signal its whole process group. Output is appended to the log, so
# a start after a stop keeps what the earlier run printed. The wrapper shell
# records the exit status beside the file, which tells a batch job that
# ended well from one that failed. Waits a moment to catch an application
# that fails at once, then prints the process id, which is also the process
# group's id.
_START_EXEC = r"""
folder=$1 name=$2 tries=$3
shift 3
cd -- "$folder" || exit 1
rm -f -- "$name.exit"
nohup setsid sh -c '
    name=$1
    shift
    "./$name" "$@" >>"$name.log" 2>&1 </dev/null
    echo $? >"$name.exit"
' sh "$name" "$@" >/dev/null 2>&1 </dev/null &
pid=$!
while [ "$tries" -gt 0 ] && kill -0 "$pid" 2>/dev/null; do
    sleep 0.1
    tries=$((tries - 1))
done
echo "$pid"
"""

# True when process "$1" lives and is the wrapper that runs file "$2": a
# process id the system gave to someone else since is not ours to signal.
_OURS = r"""
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    # A zombie has ended; it only waits for init to reap it, which can take
    # a second.
    [ -r "/proc/$1/stat" ] || return 0
    [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -d ' ' -f 1)" != Z ]
}
ours() {
    alive "$1" || return 1
    [ -r "/proc/$1/cmdline" ] || return 0
    tr '\0' '\n' <"/proc/$1/cmdline" | grep -qxF -- "$2"
}
"""

# Prints "running", "exited <status>" or "vanished".
_STATE_EXEC = (
    _OURS
    + r"""
cd -- "$1" 2>/dev/null || { echo vanished; exit 0; }
if ours "$3" "$2"; then
    echo running
elif [ -f "$2.exit" ]; then
    echo "exited $(cat -- "$2.exit")"
else
    echo vanished
fi
"""
)

_LOG_TAIL = r"""
tail -c "$2" -- "$1" 2>/dev/null || true
"""

# Asks the process group to end, then insists after five seconds. The
# "-s NAME --" spelling is the one dash, the usual /bin/sh, understands.
_STOP_EXEC = (
    _OURS
    + r"""
ours "$1" "$2" || exit 0
kill -s TERM -- "-$1" 2>/dev/null || exit 0
tries=50
while [ "$tries" -gt 0 ] && alive "$1"; do
    sleep 0.1
    tries=$((tries - 1))
done
kill -s KILL -- "-$1" 2>/dev/null
exit 0
"""
)

# Runs the Flink client with its arguments: the command first, then "$@".
_FLINK = r"""
command=$1
shift
exec "$command" "$@"
"""

_JOB_ID = re.compile(r"JobID ([0-9a-f]{32})")

# Flink's job states, as the deployment statuses they mean.
_FLINK_STATES = {
    "FINISHED": "finished",
    "FAILED": "failed",
    "CANCELED": "stopped",
}


@dataclass
class ApplicationState:
    """What the master VM says of a started application."""

    status: str  # running, finished, failed or stopped
    detail: str


def _location(deployment):
    folder, _, name = deployment.remote_path.rpartition("/")
    return folder, name


class ExecRuntime:
    """Runs the uploaded file itself as a detached process."""

    name = "exec"

    def __init__(self, startup_checks=5):
        # Tenths of a second the start waits to catch an application that
        # fails at once, before the deployment is called running.
        self.startup_checks = startup_checks

    def start(self, master, deployment):
        """Start the application; return what the start printed."""
        folder, name = _location(deployment)
        result = master.check(
            remote_command(
                _START_EXEC,
                folder,
                name,
                self.startup_checks,
                *deployment.application.args,
            ),
            "Starting the application",
        )
        try:
            deployment.process_id = int(result.stdout.split()[-1])
        except (IndexError, ValueError):
            raise DeployError(
                f"Starting the application on {master.address} printed no "
                f"process id: {result.output[-500:]}"
            ) from None
        return f"started process {deployment.process_id}"

    def state(self, master, deployment):
        folder, name = _location(deployment)
        result = master.check(
            remote_command(_STATE_EXEC, folder, name, deployment.process_id),
            "Checking the application",
        )
        first = result.stdout.strip()
        if first == "running":
            return ApplicationState("running", f"process {deployment.process_id} runs")

        if first.startswith("exited "):
            status = first.split()[1]
            if status == "0":
                return ApplicationState("finished", "the application exited with 0")
            detail = f"the application exited with status {status}"
            if status == "127":
                # The wrapper shell's own words for this ("sh: 4: not found")
                # hide the usual causes.
                detail += (
                    " (not found: check its #! line names an interpreter that "
                    "exists on the master VM, and that it has Unix line endings)"
                )
            output = self.log(master, deployment, 2000).strip()
            return ApplicationState(
                "failed",
                detail + (f"; its output ends: {output}" if output else "; no output"),
            )
        return ApplicationState(
            "failed",
            f"process {deployment.process_id} is gone and left no exit status",
        )

    def stop(self, master, deployment):
        if deployment.process_id:
            _, name = _location(deployment)
            master.check(
                remote_command(_STOP_EXEC, deployment.process_id, name),
                "Stopping the application",
            )

    def log(self, master, deployment, limit):
        folder, name = _location(deployment)
        result = master.run(
            remote_command(_LOG_TAIL, f"{folder}/{name}.log", limit), limit=limit
        )
        return result.stdout


class FlinkRuntime:
    """Submits the jar to the instance's Flink cluster with its client."""

    name = "flink"

    def _client(self, master, deployment, what, *arguments):
        command = deployment.lambda_instance.flink_command
        return master.check(remote_command(_FLINK, command, *arguments), what)

    def start(self, master, deployment):
        result = self._client(
            master,
            deployment,
            "Submitting the job to Flink",
            "run",
            "-d",
            deployment.remote_path,
            *deployment.application.args,
        )
        found = _JOB_ID.search(result.stdout)
        if found is None:
            raise DeployError(
                f"Flink on {master.address} printed no JobID: {result.output[-2000:]}"
            )
        deployment.flink_job_id = found.group(1)
        return result.output

    def _job(self, master, deployment):
        base = deployment.lambda_instance.flink_rest_url.rstrip("/")
        status, job = http_get_json(master, f"{base}/jobs/{deployment.flink_job_id}")
        if status == 404:
            return None, base
        if status != 200:
            raise DeployError(f"Flink's REST API answered {status}: {job}")
        return job, base

    def state(self, master, deployment):
        job, base = self._job(master, deployment)
        if job is None:
            return ApplicationState(
                "failed", f"Flink no longer knows job {deployment.flink_job_id}"
            )

        flink_state = job.get("state", "UNKNOWN")
        status = _FLINK_STATES.get(flink_state, "running")
        detail = f"Flink job {deployment.flink_job_id} is {flink_state}"
        if status == "failed":
            detail += ": " + self._failure(master, deployment, base)
        return ApplicationState(status, detail)

    def _failure(self, master, deployment, base):
        _, exceptions = http_get_json(
            master, f"{base}/jobs/{deployment.flink_job_id}/exceptions"
        )
        root = exceptions.get("root-exception") or ""
        if not root:
            history = exceptions.get("exceptionHistory", {}).get("entries", [])
            root = history[0].get("stacktrace", "") if history else ""
        # The first line says what failed and the last "Caused by" why; the
        # rest is Flink's own stack.
        lines = root.strip().splitlines()
        if not lines:
            return "Flink gave no reason"
        causes = [line.strip() for line in lines if line.startswith("Caused by:")]
        return lines[0] + (f"; {causes[-1]}" if causes else "")

    def stop(self, master, deployment):
        """Cancel the job. The client needs no REST address of ours, so a
        wrong one cannot keep a job running; only when the cancel fails is
        the job's state asked, to tell a job that ended from a real fault."""
        if not deployment.flink_job_id:
            return
        try:
            self._client(
                master,
                deployment,
                "Cancelling the Flink job",
                "cancel",
                deployment.flink_job_id,
            )
        except DeployError:
            job, _ = self._job(master, deployment)
            if job is not None and job.get("state") not in _FLINK_STATES:
                raise

    def log(self, master, deployment, limit):
        started = [step for step in deployment.steps if step.name == "start"]
        client_output = started[-1].output if started else ""
        try:
            state = self.state(master, deployment).detail
        except DeployError as error:
            state = f"Flink's state cannot be read now: {error}"
        return f"{client_output}\n{state}\n"[-limit:]


RUNTIMES = {runtime.name: runtime for runtime in (ExecRuntime(), FlinkRuntime())}


def runtime_for(application):
    try:
        return RUNTIMES[application.runtime]
    except KeyError:
        raise DeployError(f"Unknown runtime {application.runtime!r}.") from None
