"""Stop, start and withdraw; deleting applications and instances; live status
and logs. The exec runtime on a real sshd, with a real worker."""

import time
import uuid

import pytest

from tests.conftest import auth, wait_for_status
from tests.helpers import deploy, error_of, register, upload
from tests.test_deploy_worker import deploy_and_wait, process_group

TICKER = b'#!/bin/sh\necho args: "$@"\nwhile true; do echo tick; sleep 0.2; done\n'


def act(client, token, action, application_id, instance_id):
    return client.post(
        f"/api/apps/{application_id}/{action}/",
        headers=auth(token),
        data={"lambda_instance_id": instance_id},
    )


def details(client, token, deployment_id):
    response = client.get(f"/api/deployments/{deployment_id}/", headers=auth(token))
    assert response.status_code == 200
    return response.get_json()["data"]


@pytest.fixture
def running(client, alice, master_vm, worker):
    application = upload(
        client, alice, TICKER, filename="ticker.sh", args="--name 'two words' $HOME"
    )
    instance = register(client, alice, master_vm)
    deployment = deploy_and_wait(client, alice, application, instance)
    assert deployment["status"] == "running", deployment
    return application, instance, deployment


def test_stop_start_and_withdraw_an_exec_application(client, alice, master_vm, running):
    application, instance, deployment = running
    remote = master_vm.remote_file(deployment["remote_path"])
    first_process = deployment["process_id"]
    assert process_group(first_process)

    stopped = act(client, alice, "stop", application["id"], instance["id"])
    assert stopped.status_code == 202, stopped.get_json()
    assert stopped.get_json()["data"]["id"] == deployment["id"]
    assert stopped.get_json()["data"]["status"] == "stopping"
    wait_for_status(client, alice, deployment["id"], ("stopped",))
    assert process_group(first_process) == []
    assert remote.exists()

    started = act(client, alice, "start", application["id"], instance["id"])
    assert started.status_code == 202, started.get_json()
    again = wait_for_status(client, alice, deployment["id"], ("running",))
    assert again["process_id"] != first_process
    assert process_group(again["process_id"])
    assert [step["name"] for step in again["steps"]][-2:] == ["prepare", "start"]
    assert "copy" not in [step["name"] for step in again["steps"]][4:]

    withdrawn = act(client, alice, "withdraw", application["id"], instance["id"])
    assert withdrawn.status_code == 202, withdrawn.get_json()
    final = wait_for_status(client, alice, deployment["id"], ("withdrawn",))
    assert final["remote_path"] is None
    assert process_group(again["process_id"]) == []
    assert not remote.exists()
    assert not remote.parent.exists()


def test_program_arguments_arrive_as_words(client, alice, master_vm, running):
    application, _, deployment = running
    assert application["args"] == ["--name", "two words", "$HOME"]

    log = master_vm.remote_file(deployment["remote_path"] + ".log")
    deadline = time.monotonic() + 5
    while not log.read_text().startswith("args:") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert log.read_text().splitlines()[0] == "args: --name two words $HOME"


def test_the_log_endpoint_shows_the_end_of_the_output(client, alice, running):
    _, _, deployment = running
    time.sleep(0.5)

    response = client.get(
        f"/api/deployments/{deployment['id']}/log/?bytes=20", headers=auth(alice)
    )

    assert response.status_code == 200, response.get_json()
    text = response.get_json()["data"]["log"]
    assert 0 < len(text) <= 20
    assert "tick" in text


def test_a_process_that_died_is_no_longer_running(
    app, client, alice, master_vm, running
):
    _, _, deployment = running
    master_vm.kill_process_group(deployment["process_id"])

    seen = details(client, alice, deployment["id"])

    assert seen["status"] == "failed"
    assert "gone" in seen["error"] or "status" in seen["error"]
    assert seen["checked_at"] is not None


def test_a_batch_application_is_finished_when_read(
    app, client, alice, master_vm, worker
):
    application = upload(client, alice, b"#!/bin/sh\nsleep 1.5\necho done\n")
    instance = register(client, alice, master_vm)
    deployment = deploy_and_wait(client, alice, application, instance)
    assert deployment["status"] == "running"

    time.sleep(2)
    seen = details(client, alice, deployment["id"])

    assert seen["status"] == "finished", seen


@pytest.mark.parametrize(
    "action, status",
    [("stop", "stopped"), ("start", "running"), ("withdraw", "withdrawn")],
)
def test_an_action_that_makes_no_sense_now_is_409(
    client, alice, running, action, status
):
    application, instance, deployment = running
    if action == "start":
        # A running application cannot be started again.
        response = act(client, alice, "start", application["id"], instance["id"])
        assert response.status_code == 409
        assert "running" in error_of(response)
        return

    assert (
        act(client, alice, action, application["id"], instance["id"]).status_code == 202
    )
    wait_for_status(client, alice, deployment["id"], (status,))

    response = act(client, alice, action, application["id"], instance["id"])

    assert response.status_code == 409
    assert status in error_of(response)


def test_lifecycle_answers_400_401_404_and_409_before_any_deployment(
    client, alice, bob, master_vm
):
    application = upload(client, alice, TICKER)
    instance = register(client, alice, master_vm)
    url = f"/api/apps/{application['id']}/stop/"

    assert (
        client.post(url, data={"lambda_instance_id": instance["id"]}).status_code == 401
    )
    assert client.post(url, headers=auth(alice), data={}).status_code == 400
    assert (
        act(client, alice, "stop", str(uuid.uuid4()), instance["id"]).status_code == 404
    )
    assert (
        act(client, bob, "stop", application["id"], instance["id"]).status_code == 404
    )
    never = act(client, alice, "withdraw", application["id"], instance["id"])
    assert never.status_code == 409
    assert "not deployed" in error_of(never)


def test_deleting_what_is_deployed_is_409_until_withdrawn(app, client, alice, running):
    application, instance, deployment = running
    app_url = f"/api/apps/{application['id']}/"
    instance_url = f"/api/lambda-instances/{instance['id']}/"

    refused = client.delete(app_url, headers=auth(alice))
    assert refused.status_code == 409
    assert deployment["id"] in error_of(refused)
    assert client.delete(instance_url, headers=auth(alice)).status_code == 409

    act(client, alice, "withdraw", application["id"], instance["id"])
    wait_for_status(client, alice, deployment["id"], ("withdrawn",))

    assert client.delete(app_url, headers=auth(alice)).status_code == 200
    assert client.get(app_url, headers=auth(alice)).status_code == 404
    assert client.delete(instance_url, headers=auth(alice)).status_code == 200
    assert client.get(instance_url, headers=auth(alice)).status_code == 404
    gone = client.get(f"/api/deployments/{deployment['id']}/", headers=auth(alice))
    assert gone.status_code == 404
    artifact = (
        app.config["ARTIFACT_DIR"] / application["sha256"][:2] / application["sha256"]
    )
    assert not artifact.exists()


def test_a_stored_file_stays_while_another_application_uses_it(app, client, alice):
    first = upload(client, alice, TICKER)
    second = upload(client, alice, TICKER)
    artifact = app.config["ARTIFACT_DIR"] / first["sha256"][:2] / first["sha256"]

    assert (
        client.delete(f"/api/apps/{first['id']}/", headers=auth(alice)).status_code
        == 200
    )
    assert artifact.exists()
    assert (
        client.delete(f"/api/apps/{second['id']}/", headers=auth(alice)).status_code
        == 200
    )
    assert not artifact.exists()


def test_a_failed_deployment_that_never_copied_does_not_hold_deletion(
    client, alice, master_vm, worker
):
    application = upload(client, alice, TICKER)
    instance = register(client, alice, master_vm, ssh_port="1")
    deployment = deploy_and_wait(client, alice, application, instance)
    assert deployment["status"] == "failed"

    response = client.delete(f"/api/apps/{application['id']}/", headers=auth(alice))

    assert response.status_code == 200, response.get_json()
    assert deploy(client, alice, application["id"], instance["id"]).status_code == 404


def change(client, token, instance_id, **fields):
    response = client.patch(
        f"/api/lambda-instances/{instance_id}/", headers=auth(token), data=fields
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def test_a_stop_that_cannot_reach_the_master_leaves_it_running_and_says_so(
    client, alice, master_vm, running
):
    application, instance, deployment = running
    change(client, alice, instance["id"], ssh_port="1")

    act(client, alice, "stop", application["id"], instance["id"])
    after = wait_for_status(client, alice, deployment["id"], ("running", "failed"))

    assert after["status"] == "running", after
    assert after["error"].startswith("Stopping failed; nothing was changed")
    assert process_group(deployment["process_id"])

    moved_back = change(client, alice, instance["id"], ssh_port=str(master_vm.port))
    assert moved_back["host_key"] is None
    act(client, alice, "stop", application["id"], instance["id"])
    stopped = wait_for_status(client, alice, deployment["id"], ("stopped", "failed"))
    assert stopped["status"] == "stopped", stopped
    assert process_group(deployment["process_id"]) == []


def test_a_start_finds_a_run_that_is_still_alive_and_starts_no_second(
    app, client, alice, running
):
    application, instance, deployment = running
    # The record lost track: it says stopped while the process lives on.
    with app.app_context():
        from deploy.extensions import db
        from deploy.models import Deployment

        db.session.get(Deployment, deployment["id"]).status = "stopped"
        db.session.commit()

    act(client, alice, "start", application["id"], instance["id"])
    after = wait_for_status(client, alice, deployment["id"], ("running", "failed"))

    assert after["status"] == "running", after
    assert after["process_id"] == deployment["process_id"]
    assert "nothing started" in after["steps"][-1]["output"]
    assert len(process_group(deployment["process_id"])) >= 1


def test_an_instance_is_changed_but_not_while_busy(client, alice, master_vm):
    instance = register(client, alice, master_vm, host_key=master_vm.host_key_line())

    renamed = change(client, alice, instance["id"], name="renamed", deploy_dir="~/x")
    assert renamed["name"] == "renamed" and renamed["deploy_dir"] == "x"
    assert renamed["host_key"] == master_vm.host_key_line()

    application = upload(client, alice, TICKER)
    assert deploy(client, alice, application["id"], instance["id"]).status_code == 202
    busy = client.patch(
        f"/api/lambda-instances/{instance['id']}/",
        headers=auth(alice),
        data={"name": "x"},
    )
    assert busy.status_code == 409
    empty = client.patch(
        f"/api/lambda-instances/{instance['id']}/", headers=auth(alice), data={}
    )
    assert empty.status_code == 400


def test_force_deletes_what_a_gone_master_vm_still_holds(client, alice, running):
    application, instance, deployment = running

    refused = client.delete(
        f"/api/lambda-instances/{instance['id']}/", headers=auth(alice)
    )
    forced = client.delete(
        f"/api/lambda-instances/{instance['id']}/?force=true", headers=auth(alice)
    )

    assert refused.status_code == 409
    assert "force" in error_of(refused)
    assert forced.status_code == 200
    gone = client.get(f"/api/deployments/{deployment['id']}/", headers=auth(alice))
    assert gone.status_code == 404
    assert (
        client.delete(
            f"/api/apps/{application['id']}/", headers=auth(alice)
        ).status_code
        == 200
    )


def test_the_log_endpoint_returns_as_many_bytes_as_asked(
    client, alice, master_vm, worker
):
    chatty = b"#!/bin/sh\nhead -c 300000 /dev/zero | tr '\\0' x\nexec sleep 300\n"
    application = upload(client, alice, chatty)
    instance = register(client, alice, master_vm)
    deployment = deploy_and_wait(client, alice, application, instance)
    time.sleep(0.5)

    response = client.get(
        f"/api/deployments/{deployment['id']}/log/?bytes=200000", headers=auth(alice)
    )

    assert response.status_code == 200
    assert response.get_json()["data"]["log"] == "x" * 200000


def test_arguments_may_be_a_json_list_in_a_form(client, alice):
    application = upload(client, alice, TICKER, args='["a b", "c"]')

    assert application["args"] == ["a b", "c"]
