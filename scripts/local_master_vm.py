"""A throwaway master VM on this machine, for trying the service by hand.

Run through ``scripts/local-master-vm``. It starts a private sshd that lets
the service's key log in as an unprivileged user and, with ``--flink``, a
Flink standalone cluster that user can submit jobs to, plus two example jars.
"""

import argparse
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import config
from deploy.sshkeys import load_service_key, public_key_line
from tests.master_vm import MasterVM


def main():
    parser = argparse.ArgumentParser(prog="scripts/local-master-vm")
    parser.add_argument("--address", default="127.0.0.2")
    parser.add_argument("--port", type=int, default=2222)
    parser.add_argument("--user", default="lambda")
    parser.add_argument(
        "--flink", action="store_true", help="also run a Flink cluster on it"
    )
    options = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="local-master-vm-"))
    folder.chmod(0o755)
    server = MasterVM(folder / "sshd", options.address, options.port, options.user)
    cluster = None
    # sshd and Flink run in sessions of their own; stop them however this ends.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.start()
        server.authorize(public_key_line(load_service_key(config.from_environment())))
        print(f"master_host={server.address}")
        print(f"ssh_port={server.port}")
        print(f"ssh_user={server.user}")
        print(f"host_key={server.host_key_line()}")
        if options.flink:
            cluster = start_flink(folder)
        print(
            f"Files land under {server.home}. Ctrl-C stops this master VM.", flush=True
        )
        signal.pause()
    except RuntimeError as error:
        sys.exit(f"local-master-vm: {error}")
    except KeyboardInterrupt:
        pass
    finally:
        if cluster is not None:
            cluster.stop()
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def start_flink(folder):
    from tests.flink_cluster import FlinkCluster, build_jobs

    print("Starting Flink (about 15 s)...", flush=True)
    jars = build_jobs(folder / "flink")
    cluster = FlinkCluster(folder / "flink").start()
    print(f"flink_command={cluster.flink_command}")
    print(f"flink_rest_url={cluster.rest_url}")
    print(f"example streaming jar (runs until stopped): {jars['streaming']}")
    print(f"example batch jar (sums 1..1000, then ends): {jars['batch']}")
    return cluster


if __name__ == "__main__":
    main()
