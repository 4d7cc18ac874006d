"""Small steps the tests share: uploading, registering, deploying."""

import io

from tests.conftest import auth

SPEC_ACCEPTED = "Your request to deploy the specified application has been accepted."


def upload(client, token, content, filename="app.sh", **fields):
    response = client.post(
        "/api/apps/",
        headers=auth(token),
        data={"file": (io.BytesIO(content), filename), **fields},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def register(client, token, master_vm, **fields):
    form = {
        "name": "test cluster",
        "master_host": master_vm.address,
        "ssh_port": str(master_vm.port),
        "ssh_user": master_vm.user,
        **fields,
    }
    response = client.post("/api/lambda-instances/", headers=auth(token), data=form)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def deploy(client, token, application_id, instance_id):
    return client.post(
        f"/api/apps/{application_id}/deploy/",
        headers=auth(token),
        data={"lambda_instance_id": instance_id},
        content_type="multipart/form-data",
    )


def error_of(response):
    body = response.get_json()
    assert set(body) == {"errors"}, body
    [error] = body["errors"]
    assert error["status"] == response.status_code
    return error["detail"]
