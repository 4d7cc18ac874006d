"""The spec's curl, as written, against gunicorn and a worker started the way
the Procfile starts them, deploying onto a real sshd."""

import hashlib
from pathlib import Path

from tests.live import curl, spec_curl, wait_until

SCRIPT = b"#!/bin/sh\nwhile true; do date; sleep 1; done\n"
SPEC_BODY = {
    "short-description": (
        "Your request to deploy the specified application has been accepted."
    ),
    "code": 202,
}


def test_the_spec_curl_deploys_a_script_that_runs_on_the_master_vm(
    service, master_vm, tmp_path
):
    token = service.new_token("newcomer")
    header = f"Authorization: Token {token}"
    script = tmp_path / "clock.sh"
    script.write_bytes(SCRIPT)

    code, uploaded = curl(
        "-H", header, "-F", f"file=@{script}", f"{service.base}/api/apps/"
    )
    assert code == 201, uploaded
    code, registered = curl(
        "-H",
        header,
        "-F",
        "name=e2e",
        "-F",
        f"master_host={master_vm.address}",
        "-F",
        f"ssh_port={master_vm.port}",
        "-F",
        f"ssh_user={master_vm.user}",
        f"{service.base}/api/lambda-instances/",
    )
    assert code == 201, registered

    body = spec_curl(
        token,
        registered["data"]["id"],
        f"{service.base}/api/apps/{uploaded['data']['id']}/deploy/",
    )
    assert body["status"] == SPEC_BODY
    deployment = wait_until(
        service.base, token, body["data"]["url"], ("running", "failed")
    )
    assert deployment["status"] == "running", deployment

    remote = master_vm.remote_file(deployment["remote_path"])
    assert (
        hashlib.sha256(remote.read_bytes()).hexdigest()
        == hashlib.sha256(SCRIPT).hexdigest()
    )
    process = Path(f"/proc/{deployment['process_id']}")
    assert process.exists()
    assert process.stat().st_uid == master_vm.home.stat().st_uid
