"""Faults on purpose, on real processes: a user who got a 202 learns how the
deployment ended, whatever broke on the way."""

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import config
from app import create_app
from tests.conftest import auth, wait_for_status
from tests.helpers import deploy, error_of, register, upload
from tests.live import Service, curl
from tests.master_vm import free_port
from tests.test_deploy_worker import deploy_and_wait, process_group

LONG_RUNNING = b"#!/bin/sh\nexec sleep 300\n"
FINAL_STATUSES = ("running", "finished", "failed")


def children(process_id):
    path = Path(f"/proc/{process_id}/task/{process_id}/children")
    try:
        return [int(child) for child in path.read_text().split()]
    except FileNotFoundError:
        return []


def work_horse(worker):
    """The process RQ forked for the current job: it leads its own group."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for child in children(worker.process.pid):
            try:
                if os.getpgid(child) == child:
                    return child
            except ProcessLookupError:
                continue
        time.sleep(0.01)
    raise AssertionError("the worker forked no work horse")


def wait_for_step(client, token, deployment_id, name, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = client.get(
            f"/api/deployments/{deployment_id}/", headers=auth(token)
        ).get_json()["data"]
        running = [step for step in data["steps"] if step["status"] == "running"]
        if running and running[-1]["name"] == name:
            return data
        assert data["status"] not in FINAL_STATUSES, data
        time.sleep(0.01)
    raise AssertionError(f"step {name} never ran")


def partial_copies(folder):
    return sorted(path.name for path in folder.glob(".*.part-*"))


@pytest.fixture
def big_artifact(tmp_path):
    """An executable of 200 MiB: long enough to copy that a kill lands midway."""
    content = b"#!/bin/sh\nexec sleep 300\n" + b"#" * (200 * 1024 * 1024)
    return content


def test_a_work_horse_killed_midway_fails_the_deployment_and_leaves_no_partial_file(
    client, alice, master_vm, start_worker, big_artifact
):
    worker = start_worker()
    application = upload(client, alice, big_artifact, filename="big.sh")
    instance = register(client, alice, master_vm)
    response = deploy(client, alice, application["id"], instance["id"])
    deployment_id = response.get_json()["data"]["id"]

    wait_for_step(client, alice, deployment_id, "copy")
    horse = work_horse(worker)
    os.kill(horse, signal.SIGKILL)
    killed_at = time.monotonic()

    ended = wait_for_status(client, alice, deployment_id, FINAL_STATUSES, timeout=30)
    assert ended["status"] == "failed", ended
    assert "killed by SIGKILL" in ended["error"]
    assert time.monotonic() - killed_at < 10
    folder = master_vm.home / f"lambda-apps/{application['id']}"
    assert not (folder / "big.sh").exists()

    again = deploy_and_wait(client, alice, application, instance)
    assert again["status"] == "running", again
    remote = folder / "big.sh"
    assert remote.stat().st_size == len(big_artifact)
    assert partial_copies(folder) == []


@pytest.mark.slow
def test_a_whole_worker_killed_midway_is_found_by_another_worker(
    client, alice, master_vm, start_worker, big_artifact
):
    doomed = start_worker()
    application = upload(client, alice, big_artifact, filename="big.sh")
    instance = register(client, alice, master_vm)
    response = deploy(client, alice, application["id"], instance["id"])
    deployment_id = response.get_json()["data"]["id"]
    wait_for_step(client, alice, deployment_id, "copy")

    # The horse leads a process group of its own: find it before its parent
    # dies, or it goes on alone and finishes the copy.
    doomed_processes = [doomed.process.pid, *children(doomed.process.pid)]
    for process_id in doomed_processes:
        try:
            os.kill(process_id, signal.SIGKILL)
        except ProcessLookupError:
            pass
    doomed.process.wait()
    killed_at = time.monotonic()
    start_worker()

    ended = wait_for_status(client, alice, deployment_id, FINAL_STATUSES, timeout=180)
    assert ended["status"] == "failed", ended
    assert "stopped answering" in ended["error"]
    # The job's heartbeat lapses after 70 s; maintenance runs every 30 s.
    assert time.monotonic() - killed_at < 150
    assert not (master_vm.home / f"lambda-apps/{application['id']}/big.sh").exists()

    assert deploy(client, alice, application["id"], instance["id"]).status_code == 202


@pytest.fixture
def own_redis(tmp_path):
    """A Redis server of the test's own, to stop and start again."""
    port = free_port("127.0.0.1")
    command = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]

    class Server:
        url = f"redis://127.0.0.1:{port}/0"
        process = None

        def start(self):
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return self
                except OSError:
                    time.sleep(0.05)
            raise AssertionError("redis-server did not start")

        def stop(self):
            self.process.terminate()
            self.process.wait(timeout=10)

    server = Server().start()
    yield server
    if server.process.poll() is None:
        server.stop()


def test_redis_down_is_503_and_leaves_nothing_queued_then_recovers(
    migrated, alice, client, master_vm, own_redis
):
    app = create_app(
        config.from_environment(migrated)
        | {"TESTING": True, "REDIS_URL": own_redis.url}
    )
    client = app.test_client()
    application = upload(client, alice, LONG_RUNNING)
    instance = register(client, alice, master_vm)

    own_redis.stop()
    refused = deploy(client, alice, application["id"], instance["id"])

    assert refused.status_code == 503
    assert "queue" in error_of(refused)
    listed = client.get("/api/deployments/", headers=auth(alice)).get_json()["data"]
    assert listed["total"] == 0

    own_redis.start()
    accepted = deploy(client, alice, application["id"], instance["id"])
    assert accepted.status_code == 202, accepted.get_json()


class StallingServer:
    """Accepts TCP connections and never says a word: no SSH banner."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.connections = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self):
        self.socket.close()
        for connection in self.connections:
            connection.close()


def test_a_master_that_stalls_before_the_banner_is_retried_then_failed(
    client, alice, master_vm, start_worker
):
    stalling = StallingServer()
    start_worker(SSH_CONNECT_TIMEOUT=2, SSH_RETRY_DELAYS="0.5,1")
    application = upload(client, alice, LONG_RUNNING)
    instance = register(
        client, alice, master_vm, master_host="127.0.0.1", ssh_port=str(stalling.port)
    )

    started = time.monotonic()
    deployment = deploy_and_wait(client, alice, application, instance)
    took = time.monotonic() - started
    stalling.close()

    assert deployment["status"] == "failed"
    assert f"127.0.0.1:{stalling.port}" in deployment["error"]
    assert "gave up after 3 attempts" in deployment["error"]
    assert len(stalling.connections) == 3
    # Three handshakes of two seconds and the backoff between them.
    assert 7 <= took < 20
    [connect] = deployment["steps"]
    assert "attempt 1" in connect["output"] and "attempt 2" in connect["output"]


def test_no_key_material_reaches_messages_or_logs(
    client, alice, master_vm, worker, service_key_file
):
    application = upload(client, alice, LONG_RUNNING)
    refused = register(client, alice, master_vm, ssh_user="root")
    accepted = register(client, alice, master_vm)

    failed = deploy_and_wait(client, alice, application, refused)
    running = deploy_and_wait(client, alice, application, accepted)

    assert failed["status"] == "failed" and running["status"] == "running"
    private = service_key_file.read_text()
    secret_lines = [line for line in private.splitlines() if "PRIVATE KEY" not in line]
    seen = worker.output() + str(failed) + str(running)
    assert "PRIVATE KEY" not in seen
    assert not any(line in seen for line in secret_lines if len(line) > 20)
    assert alice not in seen


@pytest.fixture
def small_filesystem(master_vm):
    """A 1 MiB filesystem in the master VM user's home, as a full disk."""
    mount_point = master_vm.home / f"full-{uuid.uuid4().hex[:8]}"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        check=True,
    )
    owner = master_vm.home.stat()
    os.chown(mount_point, owner.st_uid, owner.st_gid)
    yield mount_point

    subprocess.run(["umount", "-l", str(mount_point)], check=False)
    shutil.rmtree(mount_point, ignore_errors=True)


def test_a_full_deploy_folder_fails_cleanly_and_what_ran_keeps_running(
    client, alice, master_vm, worker, small_filesystem
):
    instance = register(client, alice, master_vm, deploy_dir=str(small_filesystem))
    small = upload(client, alice, LONG_RUNNING, filename="small.sh")
    running = deploy_and_wait(client, alice, small, instance)
    assert running["status"] == "running", running

    big = upload(client, alice, b"#!/bin/sh\n" + b"#" * (2 * 1024 * 1024), "big.sh")
    failed = deploy_and_wait(client, alice, big, instance)

    assert failed["status"] == "failed", failed
    assert "bytes free" in failed["error"]
    big_folder = small_filesystem / big["id"]
    assert list(big_folder.iterdir()) == []
    assert process_group(running["process_id"])
    still = client.get(f"/api/deployments/{running['id']}/", headers=auth(alice))
    assert still.get_json()["data"]["status"] == "running"


def test_a_deploy_folder_that_is_not_writable_fails_with_the_remote_error(
    client, alice, master_vm, worker
):
    instance = register(client, alice, master_vm, deploy_dir="/proc/apps")
    application = upload(client, alice, LONG_RUNNING)

    deployment = deploy_and_wait(client, alice, application, instance)

    assert deployment["status"] == "failed"
    assert "Preparing the deploy folder failed" in deployment["error"]
    assert "/proc/apps" in deployment["error"]


@pytest.fixture
def noisy_flink(master_vm, tmp_path):
    """A Flink client that floods its output or never returns: the service
    must neither hang nor keep megabytes."""
    folder = Path(f"/tmp/noisy-flink-{uuid.uuid4().hex[:8]}")
    folder.mkdir()
    folder.chmod(0o755)
    flood = folder / "flood"
    flood.write_text(
        "#!/bin/sh\n"
        "head -c 3000000 /dev/zero | tr '\\0' 'o'\n"
        "head -c 3000000 /dev/zero | tr '\\0' 'e' >&2\n"
        "echo last words\n"
        "exit 1\n"
    )
    hang = folder / "hang"
    hang.write_text("#!/bin/sh\necho submitting\nexec sleep 600\n")
    for script in (flood, hang):
        script.chmod(0o755)
    yield {"flood": str(flood), "hang": str(hang)}
    shutil.rmtree(folder)


@pytest.mark.parametrize("client_kind", ["flood", "hang"])
def test_a_start_command_that_floods_or_hangs_ends_bounded(
    client, alice, master_vm, start_worker, noisy_flink, client_kind
):
    start_worker(SSH_COMMAND_TIMEOUT=4)
    instance = register(
        client, alice, master_vm, flink_command=noisy_flink[client_kind]
    )
    application = upload(client, alice, b"PK\x03\x04 not really a jar", "job.jar")

    started = time.monotonic()
    deployment = deploy_and_wait(client, alice, application, instance)

    assert deployment["status"] == "failed", deployment
    assert time.monotonic() - started < 30
    stored = sum(len(step["output"]) for step in deployment["steps"])
    assert stored + len(deployment["error"]) < 200_000
    if client_kind == "flood":
        assert "last words" in deployment["error"]
        assert "exit status 1" in deployment["error"]
    else:
        assert "did not end within 4 s" in deployment["error"]
        assert "submitting" in deployment["error"]


def test_two_deploys_at_the_same_moment_through_two_web_processes(
    app, migrated, workdir, master_vm, tmp_path
):
    service = Service(migrated, free_port("127.0.0.1"), workdir)
    service.env["WEB_CONCURRENCY"] = "2"
    service.start(worker=False)
    try:
        token = service.new_token("racer")
        header = f"Authorization: Token {token}"
        script = tmp_path / "race.sh"
        script.write_bytes(LONG_RUNNING)
        _, instance = curl(
            "-H",
            header,
            "-F",
            "name=race",
            "-F",
            f"master_host={master_vm.address}",
            "-F",
            f"ssh_port={master_vm.port}",
            "-F",
            f"ssh_user={master_vm.user}",
            f"{service.base}/api/lambda-instances/",
        )
        instance_id = instance["data"]["id"]
        applications = []
        for _ in range(10):
            _, uploaded = curl(
                "-H", header, "-F", f"file=@{script}", f"{service.base}/api/apps/"
            )
            applications.append(uploaded["data"]["id"])

        def race(application_id):
            url = f"{service.base}/api/apps/{application_id}/deploy/"
            arguments = (
                "-X",
                "POST",
                "-H",
                header,
                "-F",
                f"lambda_instance_id={instance_id}",
                url,
            )
            with ThreadPoolExecutor(2) as pool:
                return [
                    code for code, _ in pool.map(lambda _: curl(*arguments), range(2))
                ]

        outcomes = [sorted(race(application_id)) for application_id in applications]
        assert outcomes == [[202, 409]] * len(applications)

        service.start_worker()
        for application_id in applications:
            _, listed = curl(
                "-H",
                header,
                f"{service.base}/api/deployments/?application_id={application_id}",
            )
            [deployment] = listed["data"]["items"]
            ended = wait_over_http(service, header, deployment["id"])
            assert ended["status"] == "running", ended
            folder = master_vm.home / f"lambda-apps/{application_id}"
            assert sorted(path.name for path in folder.iterdir()) == [
                "race.sh",
                "race.sh.log",
            ]
            copies = [step for step in ended["steps"] if step["name"] == "copy"]
            assert len(copies) == 1
    finally:
        service.stop()


def wait_over_http(service, header, deployment_id, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        _, body = curl("-H", header, f"{service.base}/api/deployments/{deployment_id}/")
        if body["data"]["status"] in FINAL_STATUSES or time.monotonic() > deadline:
            return body["data"]
        time.sleep(0.2)


def test_a_web_process_killed_during_an_upload_leaves_nothing_listed(
    app, migrated, workdir, tmp_path
):
    service = Service(migrated, free_port("127.0.0.1"), workdir)
    service.start(worker=False)
    try:
        token = service.new_token("uploader")
        header = f"Authorization: Token {token}"
        artifact = tmp_path / "slow.bin"
        artifact.write_bytes(os.urandom(32 * 1024 * 1024))
        artifacts = Path(migrated["ARTIFACT_DIR"])
        stored_before = stored_artifacts(artifacts)

        upload_process = subprocess.Popen(
            [
                "curl",
                "-s",
                "--limit-rate",
                "4M",
                "-H",
                header,
                "-F",
                f"file=@{artifact}",
                f"{service.base}/api/apps/",
            ],
            stdout=subprocess.PIPE,
        )
        incoming = artifacts / "incoming"
        deadline = time.monotonic() + 10
        while not any(
            path.stat().st_size > 1024 * 1024 for path in incoming.glob("upload-*")
        ):
            assert time.monotonic() < deadline, "the upload never reached the disk"
            time.sleep(0.05)
        for process_id in gunicorn_workers(service):
            os.kill(process_id, signal.SIGKILL)
        upload_process.wait(timeout=30)

        _, listed = curl_after_restart(service, header)
        assert listed["data"]["total"] == 0
        assert stored_artifacts(artifacts) == stored_before
        digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
        assert not (artifacts / digest[:2] / digest).exists()
    finally:
        service.stop()


def gunicorn_workers(service):
    """The processes gunicorn's arbiter forked to answer requests: the leaves
    of the web process's tree, whether or not the shell exec'd gunicorn."""
    leaves, pending = [], [service.web.popen.pid]
    while pending:
        process_id = pending.pop()
        below = children(process_id)
        pending += below
        if not below and process_id != service.web.popen.pid:
            leaves.append(process_id)
    return leaves


def curl_after_restart(service, header, timeout=30):
    """gunicorn replaces killed workers; ask until one answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return curl("-H", header, f"{service.base}/api/apps/")
        except (subprocess.CalledProcessError, ValueError):
            assert time.monotonic() < deadline
            time.sleep(0.2)


def stored_artifacts(root):
    return sorted(
        path.name for path in root.glob("??/*") if path.parent.name != "incoming"
    )
