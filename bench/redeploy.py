"""Redeploy of the same 256 MiB artifact, against its first deployment.

    python -m bench.redeploy [--rounds 3] [--size-mib 256]

Each round registers a lambda instance with a folder of its own on the
master VM, deploys the artifact there (the first deployment: it copies) and
deploys it again (the redeploy: the same digest is in place, so it must not
copy). Both are timed from the POST until the deployment reads ``running``,
polled every 5 ms.
"""

import argparse
import logging

from bench.common import (
    Client,
    MiB,
    Workspace,
    configure,
    executable_artifact,
    median,
    step_seconds,
    timed,
)

log = logging.getLogger(__name__)


def deploy_and_time(client, application_id, instance_id):
    with timed() as elapsed:
        deployment = client.deploy(application_id, instance_id)
        done = client.wait(deployment["id"])
    return elapsed[0], done


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=256)
    options = parser.parse_args()
    configure()

    with Workspace("redeploy") as workspace:
        [master] = workspace.start_masters(1)
        artifact = executable_artifact(
            workspace.folder / "artifact.sh", options.size_mib * MiB
        )
        service = workspace.start_service()
        client = Client(service, service.new_token("bench"))
        application = client.upload_with_curl(artifact)

        first, again, prepare = [], [], []
        for round_number in range(1, options.rounds + 1):
            instance = client.register(
                master, f"{workspace.deploy_dir}/round-{round_number}"
            )
            seconds, _ = deploy_and_time(client, application["id"], instance["id"])
            first.append(seconds)
            seconds, done = deploy_and_time(client, application["id"], instance["id"])
            again.append(seconds)
            prepare.append(step_seconds(done, "prepare"))
            if any(step["name"] == "copy" for step in done["steps"]):
                raise RuntimeError("the redeploy copied the artifact again")
            log.info(
                "round %d: first %.2f s, redeploy %.2f s, its steps: %s",
                round_number,
                first[-1],
                again[-1],
                ", ".join(
                    f"{step['name']} {step_seconds(done, step['name']):.2f} s"
                    for step in done["steps"]
                ),
            )

        workspace.kill_applications(service.env["DATABASE_URL"])

    print(f"artifact: {options.size_mib} MiB, {options.rounds} rounds, medians")
    print(f"redeploy, POST to running:         {median(again):6.2f} s")
    print(f"  of which the prepare step:       {median(prepare):6.2f} s")
    print(f"reference first deployment:        {median(first):6.2f} s")
    print(f"redeploy / first: {median(again) / median(first):.2f}x (target <= 0.1x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
