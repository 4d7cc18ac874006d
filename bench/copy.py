"""Copy of a 256 MiB artifact by a deployment, against OpenSSH on the same sshd.

    python -m bench.copy [--rounds 3] [--size-mib 256]

Each round deploys the artifact to a fresh folder on the master VM (so the
copy is never skipped) and, right beside it, copies the same file with
OpenSSH's ``scp`` and with ``ssh host 'cat > f'`` (aes128-gcm). The figure is
the deployment's ``copy`` step: the SFTP transfer, the size check and the
digest check on the master VM, as the deployment's record times it. The
transfer alone (``MasterVM.upload``) and the master VM's ``sha256sum`` are
timed too, to show where the step's time goes.
"""

import argparse
import logging
import subprocess
import time

import paramiko

from bench.common import (
    Client,
    MiB,
    Workspace,
    configure,
    executable_artifact,
    median,
    ssh_options,
    step_seconds,
    timed,
)
from deploy.ssh import MasterVM as Connection

log = logging.getLogger(__name__)


def scp(workspace, master, source, target):
    subprocess.run(
        [
            "scp",
            *ssh_options(workspace, master),
            "-P",
            str(master.port),
            str(source),
            f"{master.user}@{master.address}:{target}",
        ],
        check=True,
    )


def ssh_cat(workspace, master, source, target):
    with open(source, "rb") as data:
        subprocess.run(
            [
                "ssh",
                *ssh_options(workspace, master),
                "-p",
                str(master.port),
                "-c",
                "aes128-gcm@openssh.com",
                f"{master.user}@{master.address}",
                f"cat > {target}",
            ],
            stdin=data,
            check=True,
        )


def ssh_run(workspace, master, command):
    subprocess.run(
        [
            "ssh",
            *ssh_options(workspace, master),
            "-p",
            str(master.port),
            f"{master.user}@{master.address}",
            command,
        ],
        check=True,
        capture_output=True,
    )


def upload_only(workspace, master, source, target):
    """The deployment's own SFTP transfer, without the service around it."""
    key = paramiko.Ed25519Key.from_private_key_file(str(workspace.key_file))
    connection, _ = Connection.connect(
        master.address, master.port, master.user, key, None, "accept-new", 15
    )
    with connection:
        # The SFTP session opens before the clock starts, as scp's does.
        connection.sftp.normalize(".")
        with timed() as elapsed:
            connection.upload(str(source), target)
    return elapsed[0]


def paramiko_put(workspace, master, source, target):
    """paramiko's own ``SFTPClient.put`` with its default settings."""
    key = paramiko.Ed25519Key.from_private_key_file(str(workspace.key_file))
    transport = paramiko.Transport((master.address, master.port))
    try:
        transport.connect(username=master.user, pkey=key)
        sftp = paramiko.SFTPClient.from_transport(transport)
        with timed() as elapsed:
            sftp.put(str(source), target)
    finally:
        transport.close()
    return elapsed[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=256)
    options = parser.parse_args()
    configure()

    with Workspace("copy") as workspace:
        [master] = workspace.start_masters(1)
        size = options.size_mib * MiB
        artifact = executable_artifact(workspace.folder / "artifact.sh", size)
        service = workspace.start_service()
        client = Client(service, service.new_token("bench"))
        application = client.upload_with_curl(artifact)
        scratch = f"{workspace.deploy_dir}/scratch"
        ssh_run(workspace, master, f"mkdir -p {scratch}")

        names = ("scp", "cat", "step", "upload", "put", "sha256sum", "openssl")
        figures = {name: [] for name in names}
        for round_number in range(1, options.rounds + 1):
            with timed() as elapsed:
                scp(workspace, master, artifact, f"{scratch}/scp.bin")
            figures["scp"].append(elapsed[0])

            with timed() as elapsed:
                ssh_cat(workspace, master, artifact, f"{scratch}/cat.bin")
            figures["cat"].append(elapsed[0])

            with timed() as elapsed:
                ssh_run(workspace, master, f"sha256sum < {scratch}/cat.bin")
            figures["sha256sum"].append(elapsed[0])

            with timed() as elapsed:
                ssh_run(workspace, master, f"openssl dgst -sha256 < {scratch}/cat.bin")
            figures["openssl"].append(elapsed[0])
            ssh_run(workspace, master, f"rm -f {scratch}/*.bin")

            figures["upload"].append(
                upload_only(workspace, master, artifact, f"{scratch}/upload.bin")
            )
            figures["put"].append(
                paramiko_put(workspace, master, artifact, f"{scratch}/put.bin")
            )
            ssh_run(workspace, master, f"rm -f {scratch}/*.bin")

            # A folder of its own for each round: the copy is never skipped.
            instance = client.register(
                master, f"{workspace.deploy_dir}/round-{round_number}"
            )
            deployment = client.deploy(application["id"], instance["id"])
            done = client.wait(deployment["id"], pause=0.2)
            figures["step"].append(step_seconds(done, "copy"))
            log.info(
                "round %d: %s",
                round_number,
                ", ".join(f"{k} {v[-1]:.2f} s" for k, v in figures.items()),
            )

        workspace.kill_applications(service.env["DATABASE_URL"])

    rate = {name: size / median(seconds) / 1e6 for name, seconds in figures.items()}
    print(f"artifact: {size} bytes, {options.rounds} rounds, medians")
    print(f"deployment copy step:        {rate['step']:7.1f} MB/s")
    print(f"  of which SFTP transfer:    {rate['upload']:7.1f} MB/s (MasterVM.upload)")
    print(
        f"  master's sha256sum alone:  {median(figures['sha256sum']):7.2f} s "
        f"({rate['sha256sum']:.1f} MB/s)"
    )
    print(
        f"  master's openssl dgst:     {median(figures['openssl']):7.2f} s "
        f"({rate['openssl']:.1f} MB/s), for comparison"
    )
    print(f"paramiko SFTPClient.put:     {rate['put']:7.1f} MB/s (defaults)")
    print(f"reference scp:               {rate['scp']:7.1f} MB/s")
    print(f"reference ssh 'cat > f' gcm: {rate['cat']:7.1f} MB/s")
    print(
        f"copy step / scp: {rate['step'] / rate['scp']:.2f}x (target >= 1.0x); "
        f"/ cat: {rate['step'] / rate['cat']:.2f}x"
    )
    print(
        f"SFTP transfer / scp: {rate['upload'] / rate['scp']:.2f}x; "
        f"/ cat: {rate['upload'] / rate['cat']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    status = main()
    log.info("took %.0f s", time.monotonic() - started)
    raise SystemExit(status)
