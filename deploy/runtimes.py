"""How an application is started, checked and stopped on the master VM.

Each runtime is a handful of fixed shell scripts; the application's folder,
file name and process id reach them only as quoted positional parameters.
"""

import logging
from dataclasses import dataclass

from deploy.errors import DeployError
from deploy.ssh import remote_command

log = logging.getLogger(__name__)

# Starts the file detached from the SSH session, in a session of its own so a
# stop can signal its whole process group. The wrapper shell records the exit
# status beside the file, which tells a batch job that ended well from one
# that failed. It prints the process id, which is also the process group id.
_START_EXEC = r"""
cd -- "$1" || exit 1
rm -f -- "$2.exit"
nohup setsid sh -c '"./$1" >"$1.log" 2>&1 </dev/null; echo $? >"$1.exit"' \
    sh "$2" >/dev/null 2>&1 </dev/null &
pid=$!
tries=$3
while [ "$tries" -gt 0 ] && kill -0 "$pid" 2>/dev/null; do
    sleep 0.1
    tries=$((tries - 1))
done
echo "$pid"
"""

# Prints "running", "exited <status>" or "vanished", then the log's tail.
_STATUS_EXEC = r"""
cd -- "$1" 2>/dev/null || { echo vanished; exit 0; }
if kill -0 "$3" 2>/dev/null; then
    echo running
elif [ -f "$2.exit" ]; then
    echo "exited $(cat -- "$2.exit")"
else
    echo vanished
fi
tail -c "$4" -- "$2.log" 2>/dev/null
"""

# Asks the process group to end, then insists after five seconds. The
# "-s NAME --" spelling is the one dash, the usual /bin/sh, understands.
_STOP_EXEC = r"""
kill -s TERM -- "-$1" 2>/dev/null || exit 0
tries=50
while [ "$tries" -gt 0 ] && kill -0 "$1" 2>/dev/null; do
    sleep 0.1
    tries=$((tries - 1))
done
kill -s KILL -- "-$1" 2>/dev/null
exit 0
"""

LOG_TAIL_BYTES = 4096


@dataclass
class ProcessState:
    """What the master VM says of a started application."""

    state: str  # running, finished, failed
    detail: str
    log_tail: str


class ExecRuntime:
    """Runs the uploaded file itself as a detached process."""

    name = "exec"

    def __init__(self, startup_checks=5):
        # Tenths of a second the start waits to catch an application that
        # fails at once, before the deployment is called running.
        self.startup_checks = startup_checks

    def start(self, master, folder, file_name):
        """Start the application; return its process id and what was printed."""
        result = master.check(
            remote_command(_START_EXEC, folder, file_name, self.startup_checks),
            "Starting the application",
        )
        try:
            process_id = int(result.stdout.split()[-1])
        except (IndexError, ValueError):
            raise DeployError(
                f"Starting the application on {master.address} printed no "
                f"process id: {result.output[-500:]}"
            ) from None
        return process_id, result.output

    def state(self, master, folder, file_name, process_id):
        result = master.check(
            remote_command(_STATUS_EXEC, folder, file_name, process_id, LOG_TAIL_BYTES),
            "Checking the application",
        )
        first, _, log_tail = result.stdout.partition("\n")
        if first == "running":
            return ProcessState("running", f"process {process_id} is running", log_tail)

        if first.startswith("exited "):
            status = first.split()[1]
            if status == "0":
                return ProcessState(
                    "finished", "the application exited with status 0", log_tail
                )
            return ProcessState(
                "failed", f"the application exited with status {status}", log_tail
            )
        return ProcessState(
            "failed", f"process {process_id} is gone and left no exit status", log_tail
        )

    def stop(self, master, process_id):
        master.check(remote_command(_STOP_EXEC, process_id), "Stopping the application")


RUNTIMES = {runtime.name: runtime for runtime in (ExecRuntime(),)}


def runtime_for(application):
    try:
        return RUNTIMES[application.runtime]
    except KeyError:
        raise DeployError(
            f"The {application.runtime!r} runtime is not supported yet."
        ) from None
