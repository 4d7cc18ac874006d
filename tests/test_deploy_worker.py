"""A real worker deploys onto a real sshd: what ends up on the master VM."""

import hashlib
import os
import time
from pathlib import Path

from tests.conftest import auth, wait_for_status
from tests.helpers import deploy, register, upload

LONG_RUNNING = b"#!/bin/sh\necho started as $(id -un)\nexec sleep 300\n"


def process_group(process_id):
    """The command lines of the processes in a process group on this machine."""
    commands = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != process_id:
                continue
            # A zombie has ended and only waits to be reaped: not running.
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except (ProcessLookupError, FileNotFoundError):
            continue
        commands.append(" ".join(part.decode() for part in arguments if part))
    return commands


def deploy_and_wait(client, token, application, instance, statuses=("running",)):
    response = deploy(client, token, application["id"], instance["id"])
    assert response.status_code == 202, response.get_json()
    return wait_for_status(
        client, token, response.get_json()["data"]["id"], statuses + ("failed",)
    )


def test_a_script_is_copied_started_and_left_running(client, alice, master_vm, worker):
    application = upload(client, alice, LONG_RUNNING, filename="long job.sh")
    instance = register(client, alice, master_vm, deploy_dir="apps")

    deployment = deploy_and_wait(client, alice, application, instance)

    assert deployment["status"] == "running", deployment
    assert deployment["error"] is None
    assert [step["name"] for step in deployment["steps"]] == [
        "connect",
        "prepare",
        "copy",
        "start",
    ]
    assert all(step["status"] == "succeeded" for step in deployment["steps"])
    assert all(step["finished_at"] for step in deployment["steps"])

    remote = master_vm.remote_file(deployment["remote_path"])
    assert deployment["remote_path"] == f"apps/{application['id']}/long_job.sh"
    assert hashlib.sha256(remote.read_bytes()).hexdigest() == application["sha256"]
    assert os.stat(remote).st_uid == os.stat(master_vm.home).st_uid

    commands = process_group(deployment["process_id"])
    assert any("long_job.sh" in command for command in commands), commands
    log = remote.with_name("long_job.sh.log")
    deadline = time.monotonic() + 5
    while (
        "started as deploytest" not in log.read_text() and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert log.read_text().strip() == "started as deploytest"


def test_the_first_connection_pins_the_host_key(client, alice, master_vm, worker):
    application = upload(client, alice, LONG_RUNNING)
    instance = register(client, alice, master_vm)
    assert instance["host_key"] is None

    deploy_and_wait(client, alice, application, instance)

    details = client.get(instance["url"], headers=auth(alice)).get_json()["data"]
    assert details["host_key"] == master_vm.host_key_line()


def test_a_changed_host_key_fails_before_anything_is_sent(
    client, alice, master_vm, worker, service_key_file
):
    application = upload(client, alice, LONG_RUNNING)
    other_key = service_key_file.with_suffix(".pub").read_text().split()[:2]
    instance = register(
        client, alice, master_vm, host_key=" ".join(other_key), deploy_dir="pinned"
    )

    deployment = deploy_and_wait(client, alice, application, instance)

    assert deployment["status"] == "failed"
    assert "host key" in deployment["error"]
    assert deployment["error"].count("SHA256:") == 2
    assert not (master_vm.home / "pinned").exists()


def test_a_redeploy_of_the_same_artifact_skips_the_copy(
    client, alice, master_vm, worker
):
    application = upload(client, alice, LONG_RUNNING)
    instance = register(client, alice, master_vm)
    first = deploy_and_wait(client, alice, application, instance)

    second = deploy_and_wait(client, alice, application, instance)

    assert second["status"] == "running", second
    assert [step["name"] for step in second["steps"]] == [
        "connect",
        "prepare",
        "replace",
        "start",
    ]
    assert "already in place" in second["steps"][1]["output"]
    earlier = client.get(f"/api/deployments/{first['id']}/", headers=auth(alice))
    assert earlier.get_json()["data"]["status"] == "stopped"
    assert process_group(first["process_id"]) == []
    assert process_group(second["process_id"])


def test_a_batch_script_that_ends_well_is_finished(client, alice, master_vm, worker):
    application = upload(client, alice, b"#!/bin/sh\necho done\n")
    instance = register(client, alice, master_vm)

    deployment = deploy_and_wait(
        client, alice, application, instance, statuses=("finished",)
    )

    assert deployment["status"] == "finished", deployment


def test_a_script_that_fails_at_once_is_failed_with_its_output(
    client, alice, master_vm, worker
):
    application = upload(client, alice, b"#!/bin/sh\necho missing config >&2\nexit 3\n")
    instance = register(client, alice, master_vm)

    deployment = deploy_and_wait(client, alice, application, instance)

    assert deployment["status"] == "failed"
    assert "status 3" in deployment["error"]
    assert "missing config" in deployment["error"]


def test_a_refused_key_fails_and_names_the_fix(client, alice, master_vm, worker):
    application = upload(client, alice, LONG_RUNNING)
    instance = register(client, alice, master_vm, ssh_user="root")

    deployment = deploy_and_wait(client, alice, application, instance)

    assert deployment["status"] == "failed"
    assert "refused the service's SSH key" in deployment["error"]
    assert "/api/ssh-key/" in deployment["error"]
    [connect] = deployment["steps"]
    assert "attempt" not in connect["output"]


def test_an_unreachable_master_fails_after_retries_naming_the_host(
    client, alice, master_vm, worker
):
    application = upload(client, alice, LONG_RUNNING)
    instance = register(client, alice, master_vm, ssh_port="1")

    deployment = deploy_and_wait(client, alice, application, instance)

    assert deployment["status"] == "failed"
    assert f"{master_vm.address}:1" in deployment["error"]
    [connect] = deployment["steps"]
    assert "attempt 2" in connect["output"]


def test_copy_progress_is_shown_while_the_artifact_travels(
    client, alice, master_vm, worker
):
    content = b"#!/bin/sh\nexec sleep 300\n" + b"#" * (150 * 1024 * 1024)
    application = upload(client, alice, content, filename="big.sh")
    instance = register(client, alice, master_vm)
    response = deploy(client, alice, application["id"], instance["id"])
    deployment_id = response.get_json()["data"]["id"]

    seen = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        data = client.get(
            f"/api/deployments/{deployment_id}/", headers=auth(alice)
        ).get_json()["data"]
        if data["status"] == "copying" and data["bytes_total"]:
            assert data["bytes_total"] == len(content)
            seen.add(data["bytes_sent"])
        if data["status"] in ("running", "failed"):
            break
        time.sleep(0.05)

    assert data["status"] == "running", data
    assert data["bytes_sent"] == data["bytes_total"] == len(content)
    assert any(0 < sent < len(content) for sent in seen), seen
