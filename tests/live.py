"""The service as its users run it: processes from the Procfile, and curl."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def procfile_command(kind):
    """The Procfile's line for a process type, run through a shell as honcho does."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == kind:
            return ["sh", "-c", command.strip()]
    raise AssertionError(f"The Procfile has no {kind} process")


class Process:
    """A process of the service in its own process group, logging to a file."""

    def __init__(self, command, env, log_path):
        self.log_path = Path(log_path)
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
                self.popen.wait()
        self.log.close()

    def output(self):
        return self.log_path.read_text(errors="replace")


class Service:
    """gunicorn and a worker, each started from its Procfile line."""

    def __init__(self, env, port, folder):
        self.env = {**env, "PORT": str(port)}
        self.env["PATH"] = f"{ROOT / '.venv/bin'}:{os.environ['PATH']}"
        self.base = f"http://127.0.0.1:{port}"
        self.folder = Path(folder)

    def start(self, worker=True):
        release = subprocess.run(
            procfile_command("release"), cwd=ROOT, env=self.env, capture_output=True
        )
        assert release.returncode == 0, release.stderr

        self.web = Process(procfile_command("web"), self.env, self.folder / "web.log")
        self.worker = self.start_worker() if worker else None
        deadline = time.monotonic() + 30
        while subprocess.run(["curl", "-s", "-o", "/dev/null", self.base]).returncode:
            assert time.monotonic() < deadline, self.web.output()
            time.sleep(0.2)
        return self

    def start_worker(self):
        self.worker = Process(
            procfile_command("worker"), self.env, self.folder / "worker.log"
        )
        return self.worker

    def stop(self):
        self.web.stop()
        if self.worker is not None:
            self.worker.stop()

    def flask(self, *arguments):
        """Run an administrator command as a user of the service would."""
        return subprocess.run(
            ["flask", "--app", "app", *arguments],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def new_token(self, name):
        return self.flask("users", "create", name).strip().splitlines()[-1]


def curl(*arguments):
    """Run curl; return the status code and the JSON body."""
    result = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", *arguments],
        capture_output=True,
        text=True,
        check=True,
    )
    body, _, code = result.stdout.rpartition("\n")
    return int(code), json.loads(body)


def spec_curl(token, instance_id, url):
    """The spec's deploy command, word for word but for the ids, token and host."""
    result = subprocess.run(
        [
            "curl",
            "-X",
            "POST",
            "-H",
            f"Authorization: Token {token}",
            "-F",
            f"lambda_instance_id={instance_id}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def wait_until(base, token, deployment_url, statuses, timeout=90):
    """Poll a deployment over HTTP until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        code, body = curl("-H", f"Authorization: Token {token}", base + deployment_url)
        assert code == 200, body
        if body["data"]["status"] in statuses:
            return body["data"]
        assert time.monotonic() < deadline, body["data"]
        time.sleep(0.3)
