"""The spec's curl, as written, against gunicorn and a worker started the way
the Procfile starts them, deploying onto a real sshd."""

import hashlib
import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.master_vm import free_port

SCRIPT = b"#!/bin/sh\nwhile true; do date; sleep 1; done\n"


def procfile_command(kind, env):
    """The Procfile's line for a process type, run as honcho would run it."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == kind:
            return ["sh", "-c", command.strip()]
    raise AssertionError(f"The Procfile has no {kind} process")


class Process:
    def __init__(self, command, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self):
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture
def service(app, migrated, workdir):
    """gunicorn and the worker, each from its Procfile line, on a free port."""
    port = free_port("127.0.0.1")
    env = {
        **migrated,
        "PORT": str(port),
        "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}",
    }
    release = subprocess.run(
        procfile_command("release", env), cwd=ROOT, env=env, capture_output=True
    )
    assert release.returncode == 0, release.stderr

    web = Process(procfile_command("web", env), env, workdir / "web.log")
    worker = Process(procfile_command("worker", env), env, workdir / "e2e-worker.log")
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while subprocess.run(["curl", "-s", "-o", "/dev/null", base]).returncode != 0:
        assert time.monotonic() < deadline, Path(web.log_path).read_text()
        time.sleep(0.2)

    yield base, env
    web.stop()
    worker.stop()


def curl(*arguments):
    """Run curl, returning the status code and the JSON body."""
    result = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", *arguments],
        capture_output=True,
        text=True,
        check=True,
    )
    body, _, code = result.stdout.rpartition("\n")
    return int(code), json.loads(body)


def test_the_spec_curl_deploys_a_script_that_runs_on_the_master_vm(
    service, master_vm, tmp_path
):
    base, env = service
    created = subprocess.run(
        ["flask", "--app", "app", "users", "create", "newcomer"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = created.stdout.strip().splitlines()[-1]
    header = f"Authorization: Token {token}"

    script = tmp_path / "clock.sh"
    script.write_bytes(SCRIPT)
    code, uploaded = curl("-H", header, "-F", f"file=@{script}", f"{base}/api/apps/")
    assert code == 201, uploaded
    application_id = uploaded["data"]["id"]

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
        f"{base}/api/lambda-instances/",
    )
    assert code == 201, registered
    instance_id = registered["data"]["id"]

    # The spec's command, word for word but for the ids, token and host.
    spec_curl = (
        f'curl -X POST -H "Authorization: Token {token}" '
        f'-F "lambda_instance_id={instance_id}" '
        f"'{base}/api/apps/{application_id}/deploy/'"
    )
    accepted = subprocess.run(
        shlex.split(spec_curl), capture_output=True, text=True, check=True
    )
    body = json.loads(accepted.stdout)
    assert body["status"] == {
        "short-description": (
            "Your request to deploy the specified application has been accepted."
        ),
        "code": 202,
    }
    deployment_url = base + body["data"]["url"]

    deadline = time.monotonic() + 60
    while True:
        code, details = curl("-H", header, deployment_url)
        assert code == 200
        status = details["data"]["status"]
        if status in ("running", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    deployment = details["data"]
    assert status == "running", deployment

    remote = master_vm.remote_file(deployment["remote_path"])
    assert (
        hashlib.sha256(remote.read_bytes()).hexdigest()
        == hashlib.sha256(SCRIPT).hexdigest()
    )
    process_id = deployment["process_id"]
    assert Path(f"/proc/{process_id}").exists()
    owner = Path(f"/proc/{process_id}").stat().st_uid
    assert owner == master_vm.home.stat().st_uid
