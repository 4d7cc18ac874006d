"""200 deployments across 10 master VMs, with 1 worker and with 4.

    python -m bench.workers [--deployments 200] [--masters 10] [--many 4]

Ten sshd master VMs listen on 127.0.0.10 to 127.0.0.19; each is registered
as a lambda instance with a folder of its own. For each worker count, the
workers are started and listening first; then 20 new applications (the same
small script) are deployed onto every instance, 200 POSTs in a row, and the
clock runs from the first POST until every deployment is ``running`` (read
from the database every 0.2 s, so polling costs the service nothing).
"""

import argparse
import logging
import time

import psycopg

from bench.common import Client, Workspace, configure, timed

log = logging.getLogger(__name__)

SCRIPT = b"#!/bin/sh\nexec sleep 900\n"
SETTLED = ("running", "finished", "failed", "stopped")


def wait_until_settled(database_url, deployment_ids, timeout):
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as connection:
        while True:
            rows = connection.execute(
                "SELECT status, count(*) FROM deployments WHERE id = ANY(%s) "
                "GROUP BY status",
                (deployment_ids,),
            ).fetchall()
            counts = dict(rows)
            if sum(counts.get(status, 0) for status in SETTLED) == len(deployment_ids):
                return counts
            if time.monotonic() > deadline:
                raise RuntimeError(f"deployments did not settle in time: {counts}")
            time.sleep(0.2)


def run(workspace, service, client, instances, worker_count, per_instance):
    """Deploy ``per_instance`` new applications onto every instance."""
    workers = workspace.start_workers(service, worker_count)
    applications = [
        client.upload(SCRIPT, name="app.sh")["id"] for _ in range(per_instance)
    ]
    with timed() as elapsed:
        deployment_ids = [
            client.deploy(application, instance)["id"]
            for application in applications
            for instance in instances
        ]
        counts = wait_until_settled(
            service.env["DATABASE_URL"], deployment_ids, timeout=900
        )
    for worker in workers:
        worker.stop()
    return elapsed[0], counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=200)
    parser.add_argument("--masters", type=int, default=10)
    parser.add_argument("--many", type=int, default=4)
    options = parser.parse_args()
    configure()
    per_instance = options.deployments // options.masters

    with Workspace("workers") as workspace:
        masters = workspace.start_masters(options.masters)
        service = workspace.start_service(worker=False)
        client = Client(service, service.new_token("bench"))
        instances = [
            client.register(master, f"{workspace.deploy_dir}/{master.address}")["id"]
            for master in masters
        ]

        results = {}
        for worker_count in (1, options.many):
            results[worker_count] = run(
                workspace, service, client, instances, worker_count, per_instance
            )
            log.info("%d worker(s): %.1f s, %s", worker_count, *results[worker_count])
        workspace.kill_applications(service.env["DATABASE_URL"])

    deployments = per_instance * options.masters
    for worker_count, (seconds, counts) in results.items():
        print(
            f"{worker_count} worker(s): {deployments} deployments on "
            f"{options.masters} master VMs in {seconds:.1f} s, "
            f"{deployments / seconds:.2f} deployments/s, statuses {counts}"
        )
    ratio = results[1][0] / results[options.many][0]
    print(f"{options.many} workers / 1 worker: {ratio:.2f}x (target >= 1.8x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
