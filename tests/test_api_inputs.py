"""What the API answers to input a careless or curious user sends."""

import io
import subprocess
import sys

import pytest

from tests.conftest import ROOT, auth
from tests.helpers import error_of, register, upload

SCRIPT = b"#!/bin/sh\nsleep 60\n"


@pytest.mark.parametrize(
    "host_key",
    [
        "ssh-foo AAAA",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
        "ssh-ed25519-cert-v01@openssh.com AAAA",
        "ssh-ed25519 not-base64!",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL",
        "ssh-ed25519",
    ],
)
def test_a_host_key_that_cannot_be_verified_is_400(client, alice, master_vm, host_key):
    response = client.post(
        "/api/lambda-instances/",
        headers=auth(alice),
        data={
            "name": "x",
            "master_host": master_vm.address,
            "ssh_user": "u",
            "host_key": host_key,
        },
    )

    assert response.status_code == 400
    assert "host_key" in error_of(response)


@pytest.mark.parametrize(
    "query",
    ["offset=9223372036854775808", "offset=-1", "limit=0", "limit=101", "limit=x"],
)
@pytest.mark.parametrize(
    "path", ["/api/apps/", "/api/lambda-instances/", "/api/deployments/"]
)
def test_paging_out_of_range_is_400(client, alice, path, query):
    response = client.get(f"{path}?{query}", headers=auth(alice))

    assert response.status_code == 400
    assert error_of(response)


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "a\x00b"},
        {"name": "a\x1bb"},
        {"deploy_dir": "apps\x00"},
        {"host_key": "ssh-ed25519 AAAA\x00"},
    ],
)
def test_control_characters_are_400_on_every_database(client, alice, master_vm, fields):
    form = {"name": "x", "master_host": master_vm.address, "ssh_user": "u", **fields}

    response = client.post("/api/lambda-instances/", headers=auth(alice), json=form)

    assert response.status_code == 400


def test_a_nul_in_a_description_or_a_filter_is_400(client, alice):
    response = client.post(
        "/api/apps/",
        headers=auth(alice),
        data={"file": (io.BytesIO(SCRIPT), "a.sh"), "description": "x\x00y"},
    )
    assert response.status_code == 400

    listed = client.get("/api/deployments/?application_id=%00", headers=auth(alice))
    assert listed.status_code == 400


def test_a_description_keeps_its_line_breaks(client, alice):
    application = upload(client, alice, SCRIPT, description="line one\nline two")

    assert application["description"] == "line one\nline two"


def test_an_uploaded_name_with_control_characters_is_shown_cleaned(client, alice):
    application = upload(client, alice, SCRIPT, filename="dir/ev\x01il\tname.sh")

    assert application["name"] == "evilname.sh"


@pytest.mark.parametrize(
    "method, path",
    [
        ("put", "/api/lambda-instances"),
        ("get", "/api/apps/x/deploy"),
        ("post", "/api/deployments"),
        ("put", "/api/ssh-key"),
        ("put", "/api/apps/"),
    ],
)
def test_a_wrong_method_is_405_with_and_without_the_slash(client, alice, method, path):
    response = getattr(client, method)(path, headers=auth(alice))

    assert response.status_code == 405
    assert error_of(response)
    assert response.headers["Allow"]


def test_a_double_slash_is_a_json_404_not_a_redirect(client, alice):
    response = client.post("/api//apps/", headers=auth(alice))

    assert response.status_code == 404
    assert error_of(response)


def test_bad_json_and_a_json_list_get_different_answers(client, alice):
    url = "/api/lambda-instances/"
    headers = {**auth(alice), "Content-Type": "application/json"}

    broken = client.post(url, headers=headers, data="{bad json")
    listed = client.post(url, headers=headers, data="[1, 2]")

    assert broken.status_code == 400
    assert "not valid JSON" in error_of(broken)
    assert listed.status_code == 400
    assert "object" in error_of(listed)


def test_a_file_field_sent_as_text_gets_a_hint(client, alice):
    response = client.post("/api/apps/", headers=auth(alice), data={"file": "clock.sh"})

    assert response.status_code == 400
    assert "-F file=@" in error_of(response)


@pytest.mark.parametrize(
    "given, stored",
    [("~/apps", "apps"), ("./apps/", "apps"), ("~", ""), ("/srv//apps/", "/srv/apps")],
)
def test_deploy_folders_are_normalised(client, alice, master_vm, given, stored):
    if stored == "":
        response = client.post(
            "/api/lambda-instances/",
            headers=auth(alice),
            data={
                "name": "x",
                "master_host": master_vm.address,
                "ssh_user": "u",
                "deploy_dir": given,
            },
        )
        assert response.status_code == 400
        return

    instance = register(client, alice, master_vm, deploy_dir=given)

    assert instance["deploy_dir"] == stored


def test_an_empty_host_key_is_none_and_a_numeric_name_is_no_host(
    client, alice, master_vm
):
    instance = register(client, alice, master_vm, host_key="")
    assert instance["host_key"] is None

    response = client.post(
        "/api/lambda-instances/",
        headers=auth(alice),
        data={"name": "x", "master_host": "999.1.1.1", "ssh_user": "u"},
    )
    assert response.status_code == 400


def test_user_names_and_revocations_are_checked(app, alice):
    runner = app.test_cli_runner()

    too_long = runner.invoke(args=["users", "create", "z" * 121])
    assert too_long.exit_code != 0
    assert "1 to 120" in too_long.output

    again = runner.invoke(args=["users", "create", "alice"])
    assert again.exit_code != 0
    assert "tokens create alice" in again.output

    assert "Revoked" in runner.invoke(args=["tokens", "revoke", alice]).output
    assert "already" in runner.invoke(args=["tokens", "revoke", alice]).output


@pytest.mark.parametrize(
    "variable, value, named",
    [
        ("SSH_CONNECT_TIMEOUT", "abc", "SSH_CONNECT_TIMEOUT"),
        ("SSH_PRIVATE_KEY", "garbage", "SSH_PRIVATE_KEY"),
        ("SSH_PRIVATE_KEY_FILE", "/nonexistent/key", "SSH_PRIVATE_KEY_FILE"),
        ("SSH_HOST_KEY_POLICY", "yolo", "SSH_HOST_KEY_POLICY"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
    ],
)
def test_a_bad_setting_stops_the_service_naming_it(migrated, variable, value, named):
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "users", "list"],
        cwd=ROOT,
        env={**migrated, variable: value},
        capture_output=True,
        text=True,
    )

    assert result.returncode == 2
    assert named in result.stderr
    assert "Traceback" not in result.stderr
