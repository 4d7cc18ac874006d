"""What a deployment does on the master VM, step by step, on the record.

Each step is written to the database as it starts and as it ends, so the
deployment's details tell the whole story while it is still being told.
"""

import logging
import time
from contextlib import contextmanager
from pathlib import PurePosixPath

from flask import current_app

from deploy import artifacts
from deploy.errors import DeployError, TransientError
from deploy.extensions import db
from deploy.models import Deployment, DeploymentStep, utcnow
from deploy.runtimes import runtime_for
from deploy.ssh import MasterVM, remote_command
from deploy.sshkeys import fingerprint, host_key_line, parse_host_key, service_key

log = logging.getLogger(__name__)

# Prints the SHA-256 of a file, whichever tool the master VM has for it.
_DIGEST = r"""
if command -v sha256sum >/dev/null 2>&1; then
    sha256sum < "$1"
else
    shasum -a 256 < "$1"
fi | cut -d ' ' -f 1
"""

# Makes the application's folder and prints the digest of the file already
# there, if any, so an unchanged artifact is not sent twice.
_PREPARE = r"""
mkdir -p -- "$1" || exit 1
[ -f "$2" ] || exit 0
""" + _DIGEST.replace('"$1"', '"$2"')


def remote_location(deployment):
    """Return the folder and file name of a deployment's artifact."""
    application = deployment.application
    folder = PurePosixPath(deployment.lambda_instance.deploy_dir) / application.id
    return str(folder), artifacts.safe_name(application.name)


class Deployer:
    """Carries out one deployment's job and keeps its record current."""

    def __init__(self, deployment):
        self.deployment = deployment
        self.instance = deployment.lambda_instance
        self.application = deployment.application
        self.config = current_app.config

    def set_status(self, status, error=None):
        self.deployment.status = status
        self.deployment.error = error
        db.session.commit()

    @contextmanager
    def step(self, name):
        """Record a step: its times, what it printed, and how it ended."""
        record = DeploymentStep(name=name)
        self.deployment.steps.append(record)
        db.session.commit()
        log.info(
            "Deployment %s: %s on %s",
            self.deployment.id,
            name,
            self.instance.master_host,
        )

        try:
            yield record
        except BaseException as error:
            db.session.rollback()
            record.status = "failed"
            record.output = _joined(record.output, str(error))
            record.finished_at = utcnow()
            db.session.commit()
            raise

        if record.status == "running":
            record.status = "succeeded"
        record.finished_at = utcnow()
        db.session.commit()

    def connect(self):
        """Open a connection to the master VM, pinning its key on first use."""
        pinned = (
            parse_host_key(self.instance.host_key) if self.instance.host_key else None
        )

        with self.step("connect") as record:
            # A transient failure is retried once per delay, after that delay.
            delays = self.config["SSH_RETRY_DELAYS"]
            for attempt, pause in enumerate((0, *delays)):
                if pause:
                    time.sleep(pause)
                try:
                    master, presented = MasterVM.connect(
                        self.instance.master_host,
                        self.instance.ssh_port,
                        self.instance.ssh_user,
                        service_key(),
                        pinned,
                        self.config["SSH_HOST_KEY_POLICY"],
                        self.config["SSH_CONNECT_TIMEOUT"],
                        self.config["SSH_COMMAND_TIMEOUT"],
                    )
                    break
                except TransientError as error:
                    if attempt == len(delays):
                        raise
                    log.warning(
                        "Deployment %s: attempt %d failed: %s",
                        self.deployment.id,
                        attempt + 1,
                        error,
                    )
                    record.output = _joined(
                        record.output, f"attempt {attempt + 1}: {error}"
                    )
                    db.session.commit()

            if pinned is None:
                self.instance.host_key = host_key_line(presented)
                record.output = _joined(
                    record.output, f"pinned host key {fingerprint(presented)}"
                )
            else:
                record.output = _joined(
                    record.output, f"host key {fingerprint(presented)} verified"
                )
        return master

    def copy(self, master):
        """Put the artifact on the master VM unless the same one is there."""
        folder, file_name = remote_location(self.deployment)
        remote_path = f"{folder}/{file_name}"
        self.deployment.remote_path = remote_path
        self.set_status("copying")

        with self.step("prepare") as record:
            present = master.check(
                remote_command(_PREPARE, folder, remote_path),
                "Preparing the deploy folder",
            ).stdout.strip()
            if present == self.application.digest:
                record.output = "the same artifact is already in place"
                return folder, file_name

        with self.step("copy") as record:
            self._send(master, remote_path)
            record.output = (
                f"{self.application.size} bytes, sha256 {self.application.digest}"
            )
        return folder, file_name

    def _send(self, master, remote_path):
        # A reader of the final path must never see a half-written file: the
        # copy goes to a temporary name and is renamed only once verified.
        temporary = str(
            PurePosixPath(remote_path).with_name(
                f".{PurePosixPath(remote_path).name}.part-{self.deployment.id[:8]}"
            )
        )
        try:
            sent_digest = master.upload(
                artifacts.path_for(self.application.digest), temporary
            )
            if sent_digest != self.application.digest:
                raise DeployError(
                    "The stored artifact no longer matches its digest; upload "
                    "the application again."
                )

            size = master.sftp.stat(temporary).st_size
            if size != self.application.size:
                raise DeployError(
                    f"The copy on {master.address} has {size} bytes, "
                    f"not {self.application.size}."
                )

            remote_digest = master.check(
                remote_command(_DIGEST, temporary), "Checking the copy's digest"
            ).stdout.strip()
            if remote_digest != self.application.digest:
                raise DeployError(
                    f"The copy on {master.address} has digest {remote_digest}, "
                    f"not {self.application.digest}."
                )

            master.sftp.chmod(temporary, 0o755)
            master.sftp.posix_rename(temporary, remote_path)
        except BaseException:
            _remove_quietly(master, temporary)
            raise

    def start(self, master, folder, file_name):
        runtime = runtime_for(self.application)
        self.set_status("starting")
        self._replace_previous(master, runtime)

        with self.step("start") as record:
            process_id, printed = runtime.start(master, folder, file_name)
            self.deployment.process_id = process_id
            record.output = _joined(printed, f"started process {process_id}")

        state = runtime.state(master, folder, file_name, process_id)
        if state.state == "failed":
            raise DeployError(f"{state.detail}; its output: {state.log_tail[-2000:]}")
        self.set_status("running" if state.state == "running" else "finished")

    def _replace_previous(self, master, runtime):
        """Stop the earlier deployment of this application on this instance."""
        previous = db.session.execute(
            db.select(Deployment).filter(
                Deployment.application_id == self.application.id,
                Deployment.lambda_instance_id == self.instance.id,
                Deployment.id != self.deployment.id,
                Deployment.status == "running",
            )
        ).scalars()
        for earlier in previous:
            with self.step("replace") as record:
                if earlier.process_id:
                    runtime.stop(master, earlier.process_id)
                earlier.status = "stopped"
                earlier.error = f"replaced by deployment {self.deployment.id}"
                record.output = f"stopped deployment {earlier.id}"

    def run(self):
        """Deploy: connect, copy, start. Failures end the record as failed."""
        log.info(
            "Deployment %s: deploying application %s to %s",
            self.deployment.id,
            self.application.id,
            self.instance.master_host,
        )
        try:
            with self.connect() as master:
                folder, file_name = self.copy(master)
                self.start(master, folder, file_name)
        except Exception as error:
            self.fail(error)
            raise
        log.info(
            "Deployment %s: %s on %s",
            self.deployment.id,
            self.deployment.status,
            self.instance.master_host,
        )

    def fail(self, error):
        db.session.rollback()
        reason = (
            str(error)
            if isinstance(error, DeployError)
            else (f"Internal error ({type(error).__name__}): {error}")
        )
        log.error(
            "Deployment %s failed: %s", self.deployment.id, reason, exc_info=error
        )
        self.set_status("failed", error=reason)


def _remove_quietly(master, path):
    try:
        master.sftp.remove(path)
    except Exception:  # noqa: BLE001 - the copy's own error is the one to report
        log.debug("Could not remove %s on %s", path, master.address)


def _joined(*parts):
    return "\n".join(part for part in parts if part)
