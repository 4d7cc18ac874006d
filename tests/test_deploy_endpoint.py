"""Every row of DESIGN.md's deploy table: the code and the body a user sees."""

import uuid

import pytest

from tests.conftest import auth
from tests.helpers import SPEC_ACCEPTED, deploy, error_of, register, upload

SCRIPT = b"#!/bin/sh\nsleep 300\n"


@pytest.fixture
def pair(client, alice, master_vm):
    application = upload(client, alice, SCRIPT)
    instance = register(client, alice, master_vm)
    return application, instance


@pytest.mark.parametrize(
    "header",
    [None, "Token", "Bearer {token}", "Token not-a-token", "{token}"],
    ids=["missing", "scheme-alone", "other-scheme", "unknown-key", "no-scheme"],
)
def test_bad_or_missing_token_is_401(client, alice, pair, header):
    application, instance = pair
    headers = {} if header is None else {"Authorization": header.format(token=alice)}

    response = client.post(
        f"/api/apps/{application['id']}/deploy/",
        headers=headers,
        data={"lambda_instance_id": instance["id"]},
    )

    assert response.status_code == 401
    assert error_of(response)


def test_revoked_token_is_401(app, client, alice, pair):
    application, instance = pair
    result = app.test_cli_runner().invoke(args=["tokens", "revoke", alice])
    assert result.exit_code == 0, result.output

    response = deploy(client, alice, application["id"], instance["id"])

    assert response.status_code == 401


@pytest.mark.parametrize(
    "form", [{}, {"lambda_instance_id": ""}, {"lambda_instance_id": "  "}]
)
def test_missing_or_empty_instance_id_is_400(client, alice, pair, form):
    application, _ = pair

    response = client.post(
        f"/api/apps/{application['id']}/deploy/", headers=auth(alice), data=form
    )

    assert response.status_code == 400
    assert "lambda_instance_id" in error_of(response)


def test_unknown_application_is_404(client, alice, pair):
    _, instance = pair

    response = deploy(client, alice, str(uuid.uuid4()), instance["id"])

    assert response.status_code == 404
    assert "application" in error_of(response)


@pytest.mark.parametrize(
    "instance_id", [str(uuid.uuid4()), "not-a-uuid", "1; rm -rf /"]
)
def test_unknown_instance_is_404(client, alice, pair, instance_id):
    application, _ = pair

    response = deploy(client, alice, application["id"], instance_id)

    assert response.status_code == 404
    assert "lambda instance" in error_of(response)


def test_application_id_that_is_not_a_uuid_is_404(client, alice, pair):
    _, instance = pair

    response = deploy(client, alice, "7186be3f", instance["id"])

    assert response.status_code == 404


def test_another_users_objects_are_404(client, alice, bob, pair, master_vm):
    application, instance = pair
    bobs_instance = register(client, bob, master_vm)

    assert (
        deploy(client, bob, application["id"], bobs_instance["id"]).status_code == 404
    )
    bobs_application = upload(client, bob, SCRIPT)
    assert (
        deploy(client, bob, bobs_application["id"], instance["id"]).status_code == 404
    )


def test_stopped_instance_is_409(client, alice, master_vm):
    application = upload(client, alice, SCRIPT)
    instance = register(client, alice, master_vm, status="stopped")

    response = deploy(client, alice, application["id"], instance["id"])

    assert response.status_code == 409
    assert "stopped" in error_of(response)


def test_deploy_in_progress_is_409_naming_it(client, alice, pair, redis_queue):
    application, instance = pair
    first = deploy(client, alice, application["id"], instance["id"])
    assert first.status_code == 202
    first_id = first.get_json()["data"]["id"]

    second = deploy(client, alice, application["id"], instance["id"])

    assert second.status_code == 409
    assert first_id in error_of(second)
    listed = client.get(
        f"/api/deployments/?application_id={application['id']}", headers=auth(alice)
    ).get_json()["data"]
    assert listed["total"] == 1


def test_accepted_is_202_with_the_spec_body_and_the_job_queued(
    client, alice, pair, redis_queue
):
    application, instance = pair

    response = deploy(client, alice, application["id"], instance["id"])

    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == {"short-description": SPEC_ACCEPTED, "code": 202}
    deployment_id = body["data"]["id"]
    assert body["data"]["status"] == "queued"
    assert body["data"]["url"] == f"/api/deployments/{deployment_id}/"
    assert response.headers["Location"].endswith(f"/api/deployments/{deployment_id}/")

    details = client.get(body["data"]["url"], headers=auth(alice)).get_json()["data"]
    assert details["status"] == "queued"
    assert details["application_id"] == application["id"]
    assert details["lambda_instance_id"] == instance["id"]
    queued = [job.args for job in redis_queue.get_jobs()]
    assert (deployment_id,) in queued


@pytest.mark.parametrize("path", ["/deploy/", "/deploy"])
@pytest.mark.parametrize("encoding", ["multipart", "urlencoded", "json"])
def test_deploy_takes_every_encoding_and_both_path_spellings(
    client, alice, pair, redis_queue, path, encoding
):
    application, instance = pair
    url = f"/api/apps/{application['id']}{path}"
    fields = {"lambda_instance_id": instance["id"]}
    if encoding == "json":
        response = client.post(url, headers=auth(alice), json=fields)
    else:
        content_type = (
            "multipart/form-data"
            if encoding == "multipart"
            else "application/x-www-form-urlencoded"
        )
        response = client.post(
            url, headers=auth(alice), data=fields, content_type=content_type
        )

    assert response.status_code == 202, response.get_json()
