"""Fixtures: a real database (SQLite and PostgreSQL), a real Redis queue, a
real RQ worker process and a real sshd as the master VM."""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from flask_migrate import upgrade
from redis import Redis
from rq import Queue
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)

import config
from app import create_app
from deploy.extensions import db
from deploy.models import BUSY_STATUSES, Deployment
from tests.live import Service
from tests.master_vm import MasterVM, free_port

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("deploy-service")


@pytest.fixture(scope="session")
def service_key_file(workdir):
    path = workdir / "service_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True
    )
    return path


@pytest.fixture(scope="session")
def master_vm(service_key_file):
    """The master VM every lambda instance in the tests points at."""
    # sshd reads the authorized keys as the master VM's user, who cannot
    # enter pytest's private temporary folders.
    folder = Path(tempfile.mkdtemp(prefix="master-vm-"))
    folder.chmod(0o755)
    server = MasterVM(folder).start()
    server.authorize(service_key_file.with_suffix(".pub").read_text())
    yield server

    server.kill_user_processes()
    server.stop()
    shutil.rmtree(folder)


@pytest.fixture(scope="session")
def postgres_database():
    """A PostgreSQL database of this run's own, dropped at the end."""
    name = f"deploy_test_{secrets.token_hex(4)}"
    admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, workdir):
    if request.param == "sqlite":
        return f"sqlite:///{workdir / 'deploy.db'}"
    return request.getfixturevalue("postgres_database")


@pytest.fixture(scope="session")
def queue_name():
    return f"test-deployments-{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def redis_queue(queue_name):
    """This run's queue on the machine's Redis, and only its keys removed."""
    connection = Redis.from_url(REDIS_URL)
    queue = Queue(queue_name, connection=connection)
    yield queue

    registries = (
        StartedJobRegistry,
        FinishedJobRegistry,
        FailedJobRegistry,
        DeferredJobRegistry,
        ScheduledJobRegistry,
        CanceledJobRegistry,
    )
    for registry_class in registries:
        registry = registry_class(queue_name, connection=connection)
        for job_id in registry.get_job_ids():
            try:
                registry.remove(job_id, delete_job=True)
            except ValueError:
                # A job whose worker was killed may lack its execution record.
                connection.delete(f"rq:job:{job_id}", f"rq:results:{job_id}")
        connection.delete(registry.key)
    queue.delete(delete_jobs=True)


@pytest.fixture(scope="session")
def service_env(database_url, workdir, service_key_file, queue_name, redis_queue):
    """The environment the service's processes run with in the tests."""
    suffix = database_url.rsplit("/", 1)[-1].replace(".", "-")
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "RQ_QUEUE": queue_name,
        "ARTIFACT_DIR": str(workdir / f"artifacts-{suffix}"),
        "SSH_PRIVATE_KEY_FILE": str(service_key_file),
        "SSH_RETRY_DELAYS": "0.2,0.2",
        "SSH_CONNECT_TIMEOUT": "5",
        "LOG_LEVEL": "INFO",
        # Every read of a running deployment asks the master VM.
        "STATUS_CHECK_SECONDS": "0",
    }


@pytest.fixture(scope="session")
def migrated(service_env):
    """Bring the database to the newest migration, as the release step does."""
    app = create_app(config.from_environment(service_env))
    with app.app_context():
        upgrade()
    return service_env


# Every deployment the suite's workers were given, and how each one ended:
# the promise that nothing accepted is lost, counted.
TALLY = {"accepted": 0, "settled": 0, "unsettled": []}
WORKER_FIXTURES = {"worker", "start_worker", "service"}


@pytest.fixture
def app(request, migrated, master_vm):
    app = create_app(config.from_environment(migrated) | {"TESTING": True})
    yield app

    worked = bool(WORKER_FIXTURES & set(request.fixturenames))
    with app.app_context():
        for deployment in db.session.execute(db.select(Deployment)).scalars():
            if worked:
                TALLY["accepted"] += 1
                if deployment.status in BUSY_STATUSES:
                    TALLY["unsettled"].append(f"{request.node.nodeid}: {deployment.id}")
                else:
                    TALLY["settled"] += 1
            if deployment.process_id:
                master_vm.kill_process_group(deployment.process_id)
        # Only this run's database: every row the test made goes.
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


def make_user(app, name):
    """Create a user through the admin command; return the printed token."""
    result = app.test_cli_runner().invoke(args=["users", "create", name])
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


@pytest.fixture
def alice(app):
    return make_user(app, "alice")


@pytest.fixture
def bob(app):
    return make_user(app, "bob")


def auth(token):
    return {"Authorization": f"Token {token}"}


class Worker:
    """A real worker process, started the way the Procfile starts it."""

    def __init__(self, env, log_path):
        self.env = env
        self.log_path = log_path
        self.process = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workers"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()

    def output(self):
        return Path(self.log_path).read_text(errors="replace")


@pytest.fixture
def worker(migrated, app, workdir):
    running = Worker(migrated, workdir / "worker.log").start()
    yield running
    running.stop()


@pytest.fixture
def start_worker(migrated, app, workdir):
    """Start workers with settings of the test's own; all stop at the end."""
    started = []

    def start(**settings):
        env = {**migrated, **{name: str(value) for name, value in settings.items()}}
        log_path = workdir / f"worker-{len(started)}.log"
        started.append(Worker(env, log_path).start())
        return started[-1]

    yield start
    for running in started:
        running.stop()


def wait_for_status(client, token, deployment_id, statuses, timeout=30):
    """Poll a deployment's details until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/deployments/{deployment_id}/", headers=auth(token))
        assert response.status_code == 200, response.get_json()
        data = response.get_json()["data"]
        if data["status"] in statuses:
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"deployment stayed {data['status']}: {data}")
        time.sleep(0.1)


@pytest.fixture
def service(app, migrated, workdir):
    """gunicorn and a worker started from the Procfile, on a free port."""
    running = Service(migrated, free_port("127.0.0.1"), workdir).start()
    yield running
    running.stop()


def pytest_terminal_summary(terminalreporter):
    if TALLY["accepted"]:
        terminalreporter.write_line(
            f"deployments given to workers: {TALLY['accepted']} accepted, "
            f"{TALLY['settled']} ended settled, "
            f"{len(TALLY['unsettled'])} left busy"
        )
        for entry in TALLY["unsettled"]:
            terminalreporter.write_line(f"  left busy: {entry}")
