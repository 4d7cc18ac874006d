"""Peak memory of the web process across a 1 GiB upload.

    python -m bench.upload_memory [--size-mib 1024]

The service runs from the Procfile (gunicorn, its usual two worker
processes). After a small upload and a read have warmed every worker, the
peak resident size (``VmHWM`` in ``/proc/<pid>/status``) of each gunicorn
worker is read; curl then streams the artifact with ``-F file=@...``, and
the peaks are read again. The figure is the largest growth of any worker,
which is the growth of the one that served the upload.
"""

import argparse
import logging
import os

from bench.common import Client, MiB, Workspace, configure, timed, write_random_file

log = logging.getLogger(__name__)


def group_members(group_id):
    """Process ids in a process group, with their command lines."""
    members = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # The command name may hold spaces; the fields after it do not.
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[2]) == group_id:
            members[int(entry)] = (int(fields[1]), command)
    return members


def gunicorn_workers(web_process):
    """The gunicorn worker processes: those whose parent is gunicorn too."""
    members = group_members(web_process.popen.pid)
    # The Procfile's shell names gunicorn too, but runs no Python.
    gunicorns = {
        pid
        for pid, (_, command) in members.items()
        if "gunicorn" in command and not command.startswith("sh ")
    }
    return sorted(pid for pid in gunicorns if members[pid][0] in gunicorns)


def memory_kib(process_id, field):
    with open(f"/proc/{process_id}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {process_id}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    options = parser.parse_args()
    configure()

    with Workspace("upload") as workspace:
        artifact = write_random_file(
            workspace.folder / "artifact.bin", options.size_mib * MiB
        )
        service = workspace.start_service(worker=False)
        client = Client(service, service.new_token("bench"))

        # Every worker serves a first upload and read before the measurement:
        # what they load once (imports, connections) is not the upload's cost.
        workers = gunicorn_workers(service.web)
        for number in range(4 * len(workers)):
            client.upload(b"warm-up", name=f"warm-{number}.bin")
            client.session.get(f"{client.base}/apps/")

        before = {pid: memory_kib(pid, "VmHWM") for pid in workers}
        with timed() as elapsed:
            application = client.upload_with_curl(artifact)
        after = {pid: memory_kib(pid, "VmHWM") for pid in workers}
        if application["size"] != artifact.stat().st_size:
            raise RuntimeError(f"the upload stored {application['size']} bytes")

        growth = {pid: after[pid] - before[pid] for pid in workers}
        server = max(growth, key=growth.get)
        client.session.delete(f"{client.base}/apps/{application['id']}/")

    print(
        f"upload of {options.size_mib} MiB with curl -F: {elapsed[0]:.1f} s, "
        f"{options.size_mib * MiB / elapsed[0] / 1e6:.0f} MB/s"
    )
    for pid in workers:
        print(
            f"gunicorn worker {pid}: peak RSS {before[pid] / 1024:.1f} MiB before, "
            f"{after[pid] / 1024:.1f} MiB after"
        )
    print(
        f"peak memory growth of the worker that served it: "
        f"{growth[server] / 1024:.1f} MiB (target <= 64 MiB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
