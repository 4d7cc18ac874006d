"""What every benchmark starts and cleans up: master VMs, the service, a
database and a queue of its own, and the HTTP calls a user would make."""

import json
import logging
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

import psycopg
import requests
from redis import Redis

from tests.live import Process, Service, procfile_command
from tests.master_vm import MasterVM, free_port

log = logging.getLogger(__name__)

POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# Loopback addresses of the benchmarks' master VMs; the tests use 127.0.0.2.
MASTER_ADDRESSES = [f"127.0.0.{number}" for number in range(10, 31)]
MiB = 1024 * 1024
# The master VMs' user. Not the tests' deploytest: a test session ends by
# killing every process of its master user, which would cut a benchmark's
# SSH sessions running at the same time.
BENCH_USER = "deploybench"


def configure():
    logging.basicConfig(
        level=os.environ.get("BENCH_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(name)s %(message)s",
    )
    # paramiko's INFO lines would drown the figures.
    logging.getLogger("paramiko").setLevel(logging.WARNING)


def median(values):
    return statistics.median(values)


def percent(part, whole):
    return f"{part / whole:.2f}x"


def write_random_file(path, size, block=MiB):
    """A file of ``size`` bytes that no link or disk can compress.

    One random block repeated: random enough for a cipher and a digest, and
    quick to make even for a gibibyte.
    """
    pattern = os.urandom(block)
    with open(path, "wb") as target:
        written = 0
        while written < size:
            # Each block differs in its first bytes, so no two are equal.
            piece = written.to_bytes(8, "big") + pattern[8 : min(block, size - written)]
            target.write(piece)
            written += len(piece)
    return Path(path)


def executable_artifact(path, size):
    """A shell script of ``size`` bytes that runs until it is stopped.

    The shell reads a script as it goes, so the bytes after ``exec`` are
    never read; they make the file as large as the benchmark needs.
    """
    head = b"#!/bin/sh\nexec sleep 900\n"
    write_random_file(path, size)
    with open(path, "r+b") as target:
        target.write(head)
    return Path(path)


class Workspace:
    """A bench run's folder, key, database, queue and the cleanup of all."""

    def __init__(self, name):
        self.name = name
        self.tag = f"bench-{name}-{secrets.token_hex(3)}"
        # sshd reads the authorized keys as the master VM's user.
        self.folder = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        self.folder.chmod(0o755)
        self.key_file = self.folder / "service_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key_file)],
            check=True,
        )
        self.queue = self.tag
        self.database = self.tag.replace("-", "_")
        self.masters = []
        self._stack = ExitStack()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._stack.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def create_database(self):
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True)
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{self.database}"')
        admin.close()
        self._stack.callback(self._drop_database)
        return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{self.database}"

    def _drop_database(self):
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def start_masters(self, count):
        """Start ``count`` sshd master VMs on the benchmarks' addresses."""
        for address in MASTER_ADDRESSES[:count]:
            server = MasterVM(
                self.folder / f"master-{address}", address=address, user=BENCH_USER
            )
            server.start()
            server.authorize(self.key_file.with_suffix(".pub").read_text())
            self.masters.append(server)
            self._stack.callback(server.stop)
        # Removed before the servers stop: registered last, run first.
        self._stack.callback(self._clear_master_files)
        return self.masters

    @property
    def deploy_dir(self):
        """The folder, under the master user's home, that this run deploys to."""
        return self.tag

    def _clear_master_files(self):
        for server in self.masters:
            shutil.rmtree(server.home / self.deploy_dir, ignore_errors=True)

    def service_env(self, database_url, **settings):
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "RQ_QUEUE": self.queue,
            "ARTIFACT_DIR": str(self.folder / "artifacts"),
            "SSH_PRIVATE_KEY_FILE": str(self.key_file),
            # A GET of a running deployment must not ask the master VM: the
            # benchmarks poll, and the poll must not add SSH work.
            "STATUS_CHECK_SECONDS": "3600",
            "LOG_LEVEL": "WARNING",
        }
        env.update({name: str(value) for name, value in settings.items()})
        return env

    def start_service(self, worker=True, **settings):
        """gunicorn (and a worker) from the Procfile, on PostgreSQL."""
        env = self.service_env(self.create_database(), **settings)
        self._stack.callback(self._clear_queue)
        service = Service(env, free_port("127.0.0.1"), self.folder)
        service.start(worker=worker)
        self._stack.callback(service.stop)
        return service

    def start_workers(self, service, count):
        workers = [
            Process(
                procfile_command("worker"),
                service.env,
                self.folder / f"worker-{len(self.masters)}-{index}.log",
            )
            for index in range(count)
        ]
        for worker in workers:
            self._stack.callback(worker.stop)
        wait_for_workers(self.queue, count)
        return workers

    def kill_applications(self, database_url):
        """End the processes the deployments started on the master VMs."""
        with psycopg.connect(database_url) as connection:
            rows = connection.execute(
                "SELECT process_id FROM deployments WHERE process_id IS NOT NULL"
            ).fetchall()
        for (process_id,) in rows:
            self.masters[0].kill_process_group(process_id)
        return len(rows)

    def _clear_queue(self):
        """Remove this run's queue, its registries and their jobs from Redis."""
        redis = Redis.from_url(REDIS_URL)
        keys = list(redis.scan_iter(match=f"rq:*:{self.queue}"))
        job_ids = set()
        for key in keys:
            kind = redis.type(key)
            if kind == b"list":
                job_ids.update(redis.lrange(key, 0, -1))
            elif kind == b"zset":
                job_ids.update(redis.zrange(key, 0, -1))
        for job_id in job_ids:
            job_id = job_id.decode()
            redis.delete(
                f"rq:job:{job_id}", f"rq:results:{job_id}", f"rq:executions:{job_id}"
            )
        if keys:
            redis.delete(*keys)
        redis.close()


def wait_for_workers(queue, count, timeout=60):
    """Wait until ``count`` RQ workers listen on ``queue``."""
    redis = Redis.from_url(REDIS_URL)
    deadline = time.monotonic() + timeout
    while redis.scard(f"rq:workers:{queue}") < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} workers did not start on {queue}")
        time.sleep(0.1)
    redis.close()


class Client:
    """The service's API as a user calls it, on one kept-alive connection."""

    def __init__(self, service, token):
        self.base = service.base + "/api"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def _data(self, response, expected):
        if response.status_code != expected:
            raise RuntimeError(f"{response.status_code}: {response.text[:500]}")
        return response.json()["data"]

    def upload_with_curl(self, path, name=None):
        """Upload a file as users do, with curl streaming it from the disk."""
        name = name or Path(path).name
        result = subprocess.run(
            [
                "curl",
                "-s",
                "-H",
                f"Authorization: {self.session.headers['Authorization']}",
                "-F",
                f"file=@{path};filename={name}",
                f"{self.base}/apps/",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(result.stdout)["data"]

    def upload(self, content, name="app.sh"):
        response = self.session.post(
            f"{self.base}/apps/", files={"file": (name, content)}
        )
        return self._data(response, 201)

    def register(self, master, deploy_dir, name="bench"):
        response = self.session.post(
            f"{self.base}/lambda-instances/",
            data={
                "name": name,
                "master_host": master.address,
                "ssh_port": master.port,
                "ssh_user": master.user,
                "host_key": master.host_key_line(),
                "deploy_dir": deploy_dir,
            },
        )
        return self._data(response, 201)

    def deploy(self, application_id, instance_id):
        response = self.session.post(
            f"{self.base}/apps/{application_id}/deploy/",
            data={"lambda_instance_id": instance_id},
        )
        return self._data(response, 202)

    def deployment(self, deployment_id):
        response = self.session.get(f"{self.base}/deployments/{deployment_id}/")
        return self._data(response, 200)

    def wait(self, deployment_id, statuses=("running",), timeout=300, pause=0.005):
        """Poll until the deployment's status is one of ``statuses``."""
        deadline = time.monotonic() + timeout
        while True:
            data = self.deployment(deployment_id)
            if data["status"] in statuses:
                return data
            if data["status"] == "failed":
                raise RuntimeError(f"deployment failed: {data['error']}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"deployment stayed {data['status']}")
            time.sleep(pause)


def step_seconds(deployment, name):
    """How long a recorded step of a deployment took."""
    for step in deployment["steps"]:
        if step["name"] == name:
            started = datetime.fromisoformat(step["started_at"])
            finished = datetime.fromisoformat(step["finished_at"])
            return (finished - started).total_seconds()
    return None


def ssh_options(workspace, master):
    """OpenSSH client options that log in to a bench master VM as the service."""
    known_hosts = workspace.folder / "known_hosts"
    known_hosts.write_text(
        f"[{master.address}]:{master.port} {master.host_key_line()}\n"
    )
    return [
        "-i",
        str(workspace.key_file),
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
    ]


@contextmanager
def timed():
    """Yields a list that holds the elapsed seconds once the block ends."""
    elapsed = []
    started = time.perf_counter()
    yield elapsed
    elapsed.append(time.perf_counter() - started)
