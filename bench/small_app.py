"""A small application from the POST to running, against bare paramiko.

    python -m bench.small_app [--rounds 10]

The service: the spec's POST, then the deployment polled every 5 ms until it
reads ``running``; each round deploys a new application (same script) so
nothing is skipped. The reference: a script that opens a paramiko
connection (TCP_NODELAY set, the host key known), puts the same file with
``SFTPClient.put``, makes it executable and starts it detached, reading the
start command's exit status. Rounds alternate between the two.
"""

import argparse
import base64
import logging
import shlex
import socket
from datetime import datetime

import paramiko

from bench.common import Client, Workspace, configure, median, step_seconds, timed

log = logging.getLogger(__name__)

SCRIPT = b"#!/bin/sh\nexec sleep 900\n"

_START = "cd -- FOLDER && nohup setsid ./app.sh >app.log 2>&1 </dev/null & echo $!"


def bare_paramiko(workspace, master, folder):
    """Connect, put and start the script the way a plain script would."""
    key = paramiko.Ed25519Key.from_private_key_file(str(workspace.key_file))
    local = workspace.folder / "app.sh"
    local.write_bytes(SCRIPT)

    with timed() as elapsed:
        sock = socket.create_connection((master.address, master.port), timeout=15)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = paramiko.SSHClient()
        kind, data = master.host_key_line().split()
        client.get_host_keys().add(
            f"[{master.address}]:{master.port}",
            kind,
            paramiko.PKey.from_type_string(kind, base64.b64decode(data)),
        )
        client.connect(
            master.address,
            master.port,
            username=master.user,
            pkey=key,
            sock=sock,
            allow_agent=False,
            look_for_keys=False,
        )
        with client:
            # The folder is the bench's own, quoted all the same.
            quoted = shlex.quote(str(folder))
            _, stdout, _ = client.exec_command("mkdir -p -- " + quoted)
            stdout.channel.recv_exit_status()
            with client.open_sftp() as sftp:
                sftp.put(str(local), f"{folder}/app.sh")
                sftp.chmod(f"{folder}/app.sh", 0o755)
            _, stdout, _ = client.exec_command(_START.replace("FOLDER", quoted))
            process_id = int(stdout.read().split()[-1])
            if stdout.channel.recv_exit_status() != 0:
                raise RuntimeError("the reference start failed")
    return elapsed[0], process_id


def phases(deployment):
    """Where a deployment's time went: the queue, then each recorded step."""
    created = datetime.fromisoformat(deployment["created_at"])
    first = datetime.fromisoformat(deployment["steps"][0]["started_at"])
    spent = {"queued (until the first step)": (first - created).total_seconds()}
    for step in deployment["steps"]:
        spent[f"step {step['name']}"] = step_seconds(deployment, step["name"])
    last = datetime.fromisoformat(deployment["steps"][-1]["finished_at"])
    updated = datetime.fromisoformat(deployment["updated_at"])
    spent["after the last step"] = (updated - last).total_seconds()
    return spent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    options = parser.parse_args()
    configure()

    with Workspace("small") as workspace:
        [master] = workspace.start_masters(1)
        service = workspace.start_service()
        client = Client(service, service.new_token("bench"))
        instance = client.register(master, workspace.deploy_dir)
        applications = [
            client.upload(SCRIPT, name="app.sh") for _ in range(options.rounds)
        ]

        service_seconds, reference_seconds, steps = [], [], {}
        reference_processes = []
        for round_number, application in enumerate(applications, start=1):
            seconds, process_id = bare_paramiko(
                workspace, master, f"{workspace.deploy_dir}/bare-{round_number}"
            )
            reference_seconds.append(seconds)
            reference_processes.append(process_id)
            with timed() as elapsed:
                deployment = client.deploy(application["id"], instance["id"])
                done = client.wait(deployment["id"])
            service_seconds.append(elapsed[0])
            for name, seconds in phases(done).items():
                steps.setdefault(name, []).append(seconds)
            log.info(
                "round %d: service %.3f s, bare paramiko %.3f s",
                round_number,
                service_seconds[-1],
                reference_seconds[-1],
            )

        workspace.kill_applications(service.env["DATABASE_URL"])
        # Only now: right after its start, a process may not have made its
        # own process group yet.
        for process_id in reference_processes:
            master.kill_process_group(process_id)

    service_median = median(service_seconds)
    reference_median = median(reference_seconds)
    print(f"{options.rounds} rounds, medians")
    print(f"service, POST to running:             {service_median * 1000:5.0f} ms")
    for name, seconds in sorted(steps.items(), key=lambda item: -median(item[1])):
        print(f"  {name + ':':36} {median(seconds) * 1000:5.0f} ms")
    print(f"reference paramiko connect+put+start: {reference_median * 1000:5.0f} ms")
    print(
        f"service / reference: {service_median / reference_median:.2f}x (target <= 2x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
