"""A real OpenSSH server on a loopback address, playing a lambda instance's
master VM. The tests start it with a configuration, host key and authorized
keys of their own; the system's sshd is never used."""

import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

SSHD = "/usr/sbin/sshd"
# A plain user: root's shell start-up files would slow every command, and a
# deployment must work without privileges.
MASTER_USER = "deploytest"


def ensure_master_user(name=MASTER_USER):
    """Create the unprivileged user the service logs in as, if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass

    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
    # useradd leaves the account locked, and sshd without PAM refuses a
    # locked account even for key logins.
    subprocess.run(["usermod", "-p", "*", name], check=True)
    return pwd.getpwnam(name)


def free_port(address):
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


class MasterVM:
    """One sshd process with its own folder, host key and authorized keys."""

    def __init__(self, folder, address="127.0.0.2", port=None, user=MASTER_USER):
        self.folder = Path(folder)
        self.address = address
        self.port = port
        self.user = user
        self.process = None

    @property
    def home(self):
        return Path(pwd.getpwnam(self.user).pw_dir)

    @property
    def host_key_path(self):
        return self.folder / "ssh_host_ed25519_key"

    def host_key_line(self):
        """The host key as a ``type base64`` line, as an instance pins it."""
        kind, data = (self.host_key_path.with_suffix(".pub")).read_text().split()[:2]
        return f"{kind} {data}"

    def authorize(self, public_key_line):
        account = ensure_master_user(self.user)
        keys = self.folder / f"authorized_keys_{self.user}"
        keys.write_text(public_key_line.strip() + "\n")
        os.chown(keys, account.pw_uid, account.pw_gid)
        keys.chmod(0o600)

    def start(self):
        ensure_master_user(self.user)
        self.folder.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(exist_ok=True)
        if not self.host_key_path.exists():
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-f",
                    str(self.host_key_path),
                ],
                check=True,
            )

        if self.port is None:
            self.port = free_port(self.address)
        else:
            # Another server on the port would answer the readiness check.
            with socket.socket() as probe:
                try:
                    probe.bind((self.address, self.port))
                except OSError as error:
                    raise RuntimeError(
                        f"{self.address}:{self.port} is taken ({error.strerror}); "
                        "choose another port"
                    ) from None
        config = self.folder / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.address}:{self.port}",
                    f"HostKey {self.host_key_path}",
                    f"PidFile {self.folder / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.folder}/authorized_keys_%u",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "Subsystem sftp internal-sftp",
                    "MaxStartups 100:30:200",
                    "LogLevel VERBOSE",
                ]
            )
            + "\n"
        )
        subprocess.run([SSHD, "-t", "-f", str(config)], check=True)

        self.log_file = open(self.folder / "sshd.log", "ab")
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_until_listening()
        return self

    def _wait_until_listening(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.address, self.port), timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None:
                    log_path = self.folder / "sshd.log"
                    raise RuntimeError(f"sshd exited; see {log_path}") from None
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on {self.address}:{self.port}")

    def stop(self):
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self.process = None
        self.log_file.close()

    def remote_file(self, path):
        """The local path of a file the service put on this master VM."""
        path = Path(path)
        return path if path.is_absolute() else self.home / path

    def kill_user_processes(self):
        """End whatever is left running as the master VM's user."""
        subprocess.run(["pkill", "-KILL", "-u", self.user], check=False)

    def kill_process_group(self, process_id):
        """End a process group a deployment started, if it is still this user's."""
        try:
            owner = Path(f"/proc/{process_id}").stat().st_uid
            if owner == pwd.getpwnam(self.user).pw_uid:
                os.killpg(process_id, signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass

    def clear_folder(self, relative):
        target = self.home / relative
        if target.exists():
            shutil.rmtree(target)
