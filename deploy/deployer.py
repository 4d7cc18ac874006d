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
from deploy.errors import DeployError, ServiceUnavailable, TransientError
from deploy.extensions import db
from deploy.models import Deployment, DeploymentStep, utcnow
from deploy.runtimes import runtime_for
from deploy.ssh import MasterVM, remote_command
from deploy.sshkeys import fingerprint, host_key_line, parse_host_key, service_key

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.5
# Seconds a status check, made while a user waits, may spend connecting.
CHECK_TIMEOUT = 5

# Prints the SHA-256 of a file, whichever tool the master VM has for it.
# OpenSSL's comes first: it uses the CPU's SHA instructions where coreutils'
# does not, which made it about 2.5x faster on 256 MiB (docs/benchmarks.md).
_DIGEST = r"""
if command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha256 -r < "$1"
elif command -v sha256sum >/dev/null 2>&1; then
    sha256sum < "$1"
else
    shasum -a 256 < "$1"
fi | cut -d ' ' -f 1
"""

# Makes the application's folder, removes copies that a dead worker left
# half-written (one deployment of a pair runs at a time, so any there are
# stale), and prints the digest of the file already in place, if any, so an
# unchanged artifact is not sent twice.
_PREPARE = r"""
mkdir -p -- "$1" || exit 1
rm -f -- "$1"/.*.part-*
[ -f "$2" ] || exit 0
""" + _DIGEST.replace('"$1"', '"$2"')

# Prints the kilobytes free on the filesystem that holds folder "$1".
_FREE_KB = r"""
df -Pk -- "$1" | awk 'NR == 2 { print $4 }'
"""


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
        # Whether this job changed anything on the master VM yet.
        self.touched = False

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
            # What the step wrote before failing survives the rollback, which
            # a failed database statement would need.
            output = record.output
            db.session.rollback()
            record.status = "failed"
            record.output = _joined(output, str(error))
            record.finished_at = utcnow()
            db.session.commit()
            raise

        if record.status == "running":
            record.status = "succeeded"
        record.finished_at = utcnow()
        db.session.commit()

    def _open(self, delays=(), notes=None, timeout=None):
        """Connect to the master VM, retrying transient failures after ``delays``.

        :param notes: a list that receives a line for each failed attempt and
            for the host key.
        """
        notes = [] if notes is None else notes
        pinned = None
        if self.instance.host_key:
            pinned = parse_host_key(self.instance.host_key)

        for attempt, pause in enumerate((0, *delays), start=1):
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
                    timeout or self.config["SSH_CONNECT_TIMEOUT"],
                    self.config["SSH_COMMAND_TIMEOUT"],
                )
                break
            except TransientError as error:
                notes.append(f"attempt {attempt}: {error}")
                if attempt > len(delays):
                    if attempt == 1:
                        raise
                    raise TransientError(
                        f"{error} (gave up after {attempt} attempts)"
                    ) from None
                log.warning(
                    "Deployment %s: attempt %d failed, retrying in %s s: %s",
                    self.deployment.id,
                    attempt,
                    delays[attempt - 1],
                    error,
                )

        if pinned is None:
            self.instance.host_key = host_key_line(presented)
            notes.append(f"pinned host key {fingerprint(presented)}")
        else:
            notes.append(f"host key {fingerprint(presented)} verified")
        return master

    def connect(self):
        """Open a connection as a recorded step, pinning the key on first use."""
        notes = []
        with self.step("connect") as record:
            try:
                master = self._open(self.config["SSH_RETRY_DELAYS"], notes)
            except DeployError:
                # The step records the final error itself.
                record.output = "\n".join(notes[:-1])
                raise
            record.output = "\n".join(notes)
        return master

    def copy(self, master):
        """Put the artifact on the master VM unless the same one is there."""
        folder, file_name = remote_location(self.deployment)
        remote_path = f"{folder}/{file_name}"
        self.set_status("copying")

        with self.step("prepare") as record:
            present = master.check(
                remote_command(_PREPARE, folder, remote_path),
                "Preparing the deploy folder",
            ).stdout.strip()
            if present == self.application.digest:
                record.output = "the same artifact is already in place"

        if present != self.application.digest:
            with self.step("copy") as record:
                self._send(master, remote_path)
                record.output = (
                    f"{self.application.size} bytes, sha256 {self.application.digest}"
                )
        self.deployment.remote_path = remote_path
        db.session.commit()

    def _send(self, master, remote_path):
        # A reader of the final path must never see a half-written file: the
        # copy goes to a temporary name and is renamed only once verified.
        final = PurePosixPath(remote_path)
        temporary = str(final.with_name(f".{final.name}.part-{self.deployment.id[:8]}"))
        try:
            self._copy_and_verify(master, temporary)
            master.sftp.chmod(temporary, 0o755)
            master.sftp.posix_rename(temporary, remote_path)
        except TransientError:
            _remove_quietly(master, temporary)
            raise
        except DeployError as error:
            # Measured once the partial copy is gone: what is free for a retry.
            _remove_quietly(master, temporary)
            note = self._space_note(master, final.parent)
            raise DeployError(_joined(str(error), note)) from None
        except BaseException:
            _remove_quietly(master, temporary)
            raise

    def _copy_and_verify(self, master, temporary):
        if not artifacts.path_for(self.application.digest).exists():
            raise DeployError(
                "The service no longer has this application's file; upload it "
                "again and deploy the new application."
            )
        self.deployment.bytes_total = self.application.size
        self.deployment.bytes_sent = 0
        db.session.commit()
        sent_digest = master.upload(
            artifacts.path_for(self.application.digest),
            temporary,
            progress=self._progress_recorder(),
        )
        self.deployment.bytes_sent = self.application.size
        db.session.commit()
        if sent_digest != self.application.digest:
            raise DeployError(
                "The stored artifact no longer matches its digest; upload "
                "the application again."
            )

        # SFTP may lose a write error (a full disk) among pipelined writes:
        # the size and the digest on the master VM are what count.
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

    def _progress_recorder(self):
        """A callback that writes the bytes sent to the record, twice a second
        at most: often enough to watch, rarely enough to cost nothing."""
        last_written = 0.0

        def record(sent):
            nonlocal last_written
            now = time.monotonic()
            if now - last_written >= PROGRESS_INTERVAL:
                last_written = now
                self.deployment.bytes_sent = sent
                db.session.commit()

        return record

    def _space_note(self, master, folder):
        """Say so when the deploy folder lacks room: SFTP only says 'Failure'."""
        free = master.run(remote_command(_FREE_KB, str(folder))).stdout.strip()
        if free.isdigit() and int(free) * 1024 < self.application.size:
            return (
                f"The deploy folder's filesystem has {int(free) * 1024} bytes free; "
                f"the application needs {self.application.size}."
            )
        return ""

    def start(self, master):
        """Start the deployed copy and settle on running, finished or failed."""
        runtime = runtime_for(self.application)
        self.set_status("starting")
        self._replace_previous(master, runtime)

        # What a previous run left says nothing of this one.
        self.deployment.process_id = None
        self.deployment.flink_job_id = None
        self.touched = True
        with self.step("start") as record:
            record.output = runtime.start(master, self.deployment)
        self.deployment.checked_at = utcnow()

        state = runtime.state(master, self.deployment)
        if state.status == "failed":
            raise DeployError(state.detail)
        self.set_status("stopped" if state.status == "stopped" else state.status)

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
                runtime.stop(master, earlier)
                earlier.status = "stopped"
                earlier.error = f"replaced by deployment {self.deployment.id}"
                record.output = f"stopped deployment {earlier.id}"

    def _carry_out(self, action, work, restore=None):
        """Run one action's work and settle the record however it ends.

        :param restore: the status to go back to when the action fails before
            it changed anything on the master VM; a stop that cannot connect
            leaves the application running, and the record must say so.
            Without it, any failure ends the record as failed.
        """
        log.info(
            "Deployment %s: %s application %s on %s",
            self.deployment.id,
            action,
            self.application.id,
            self.instance.master_host,
        )
        try:
            with self.connect() as master:
                work(master)
        except Exception as error:
            if restore is not None and not self.touched:
                self.fail(error, status=restore, prefix=f"{action.capitalize()} failed")
            else:
                self.fail(error)
            raise
        log.info(
            "Deployment %s: %s on %s",
            self.deployment.id,
            self.deployment.status,
            self.instance.master_host,
        )

    def deploy(self):
        """Connect, copy and start."""

        def work(master):
            self.copy(master)
            self.start(master)

        self._carry_out("deploying", work)

    def start_again(self):
        """Start the copy already on the master VM, without copying again."""

        def work(master):
            if self._still_running(master):
                return
            with self.step("prepare") as record:
                present = master.run(
                    remote_command('[ -f "$1" ]', self.deployment.remote_path)
                )
                if present.exit_status != 0:
                    raise DeployError(
                        f"{self.deployment.remote_path} is no longer on "
                        f"{master.address}; deploy the application again."
                    )
                record.output = f"{self.deployment.remote_path} is in place"
            self.start(master)

        self._carry_out("starting", work, restore=self.deployment.resume_status)

    def _still_running(self, master):
        """Whether the last run is alive after all: starting it again would
        make two. A stop that failed leaves exactly that behind."""
        if not (self.deployment.process_id or self.deployment.flink_job_id):
            return False
        state = runtime_for(self.application).state(master, self.deployment)
        if state.status != "running":
            return False
        with self.step("start") as record:
            record.output = f"already running: {state.detail}; nothing started"
        self.set_status("running")
        return True

    def stop(self):
        """Stop the application; its files stay for a later start."""

        def work(master):
            with self.step("stop") as record:
                runtime_for(self.application).stop(master, self.deployment)
                record.output = "the application was stopped"
            self.touched = True
            # Nothing runs any more: no id to show, or to stop again later.
            self.deployment.process_id = None
            self.deployment.flink_job_id = None
            self.set_status("stopped")

        self._carry_out("stopping", work, restore="running")

    def withdraw(self):
        """Stop the application if it runs and remove its files."""

        def work(master):
            # Stopping what already ended does nothing, so a withdraw needs
            # not know whether the application still runs.
            if self.deployment.process_id or self.deployment.flink_job_id:
                with self.step("stop") as record:
                    runtime_for(self.application).stop(master, self.deployment)
                    record.output = "the application was stopped"

            folder, _ = remote_location(self.deployment)
            self.touched = True
            with self.step("remove") as record:
                master.check(
                    remote_command('rm -rf -- "$1"', folder), "Removing the files"
                )
                record.output = f"removed {folder}"
            self._withdraw_records()

        # Until the files go, the application is as it was: say so if the
        # withdraw fails before that (a stop that failed leaves it running).
        self._carry_out("withdrawing", work, restore=self.deployment.resume_status)

    def _withdraw_records(self):
        """Mark this deployment and the pair's earlier ones withdrawn."""
        earlier = db.session.execute(
            db.select(Deployment).filter(
                Deployment.application_id == self.application.id,
                Deployment.lambda_instance_id == self.instance.id,
                Deployment.id != self.deployment.id,
                Deployment.status.in_(("stopped", "finished", "failed")),
            )
        ).scalars()
        for record in earlier:
            record.status = "withdrawn"
        self.deployment.remote_path = None
        self.deployment.process_id = None
        self.deployment.flink_job_id = None
        self.set_status("withdrawn")

    def refresh(self):
        """Ask the master VM how the application is doing; update the status.

        One attempt, no recorded steps: this runs while a user waits for an
        answer. When the master VM cannot be asked, the status stays as it
        was and the reason is returned.
        """
        runtime = runtime_for(self.application)
        try:
            with self._open(timeout=CHECK_TIMEOUT) as master:
                state = runtime.state(master, self.deployment)
        except DeployError as error:
            db.session.rollback()
            log.warning(
                "Deployment %s: status check failed: %s", self.deployment.id, error
            )
            # Counted as a check, so a master VM that hangs holds up one read
            # per STATUS_CHECK_SECONDS, not every read of every user.
            self.deployment.checked_at = utcnow()
            db.session.commit()
            return str(error)

        self.deployment.checked_at = utcnow()
        if state.status != "running":
            self.deployment.status = state.status
            self.deployment.error = state.detail if state.status == "failed" else None
            log.info(
                "Deployment %s: now %s (%s)",
                self.deployment.id,
                state.status,
                state.detail,
            )
        db.session.commit()
        return None

    def read_log(self, limit):
        """Return the last ``limit`` bytes of the application's output.

        :raise ServiceUnavailable: the master VM could not be asked.
        """
        runtime = runtime_for(self.application)
        try:
            with self._open() as master:
                text = runtime.log(master, self.deployment, limit)
        except DeployError as error:
            db.session.rollback()
            raise ServiceUnavailable(
                f"The output cannot be read now: {error}"
            ) from None
        db.session.commit()
        return text

    def fail(self, error, status="failed", prefix=None):
        """Settle the record after ``error``: failed, or ``status`` if given."""
        db.session.rollback()
        reason = (
            str(error)
            if isinstance(error, DeployError)
            else (f"Internal error ({type(error).__name__}): {error}")
        )
        if prefix:
            reason = f"{prefix}; nothing was changed: {reason}"
        # A deployment that failed for a reason the user can act on is an
        # outcome, not a fault of the service: no traceback for it.
        log.error(
            "Deployment %s failed: %s",
            self.deployment.id,
            reason,
            exc_info=None if isinstance(error, DeployError) else error,
        )
        self.set_status(status, error=reason)


def _remove_quietly(master, path):
    try:
        master.sftp.remove(path)
    except Exception:  # noqa: BLE001 - the copy's own error is the one to report
        log.debug("Could not remove %s on %s", path, master.address)


def _joined(*parts):
    return "\n".join(part for part in parts if part)
