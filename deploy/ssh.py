"""The one way this service talks to a master VM: SSH and SFTP via paramiko.

Every connection verifies the master VM's host key before authenticating,
every wait has a timeout, every remote command is a fixed script whose
arguments travel quoted, and every exit status is read after the output has
been drained.
"""

import functools
import hashlib
import http.client
import json
import logging
import shlex
import socket
import time
import urllib.parse
from dataclasses import dataclass

import paramiko
from paramiko.sftp import (
    CMD_EXTENDED,
    CMD_EXTENDED_REPLY,
    CMD_INIT,
    CMD_VERSION,
    CMD_WRITE,
    SFTPError,
    int64,
)

from deploy.errors import DeployError, TransientError
from deploy.sshkeys import fingerprint

log = logging.getLogger(__name__)

# What a command may leave in a deployment's record, per stream.
OUTPUT_LIMIT = 64 * 1024
_READ_SIZE = 32 * 1024
# How long a read of stdout waits before stderr gets a turn.
_STDERR_TURN = 0.05

# The write size every SFTP server takes (paramiko's own, and the protocol's
# advice); used when the server does not name a larger one.
_DEFAULT_WRITE_SIZE = 32 * 1024
# A server that names no sane limit still gets writes no larger than this.
_LARGEST_WRITE_SIZE = 1024 * 1024
# Bytes of writes sent ahead of their acknowledgements. OpenSSH's own client
# keeps 2 MiB in flight; more keeps a fast link busy while the server is busy
# with the disk, and the memory it costs is bounded by this.
_WRITES_IN_FLIGHT = 8 * 1024 * 1024


class HostKeyMismatch(DeployError):
    """The master VM presented a key other than the pinned one."""


class RemoteTimeout(TransientError):
    """A remote command did not end within its time."""


@dataclass
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str

    @property
    def output(self):
        """Both streams, as a user would read them in a terminal."""
        return "\n".join(part for part in (self.stdout, self.stderr) if part)

    def summary(self, limit=1000):
        """The end of each stream, for an error message a person reads."""
        parts = [
            f"{name}: {text[-limit:]}"
            for name, text in (("stdout", self.stdout), ("stderr", self.stderr))
            if text
        ]
        return "; ".join(parts) or "no output"


class OutputTail:
    """Keeps the last ``limit`` bytes of a stream and counts what it dropped."""

    def __init__(self, limit=OUTPUT_LIMIT):
        self._limit = limit
        self._data = bytearray()
        self.dropped = 0

    def add(self, chunk):
        self._data += chunk
        excess = len(self._data) - self._limit
        if excess > 0:
            del self._data[:excess]
            self.dropped += excess

    def text(self):
        text = self._data.decode("utf-8", errors="replace").rstrip()
        if self.dropped:
            text = f"[{self.dropped} earlier bytes not kept]\n{text}"
        return text


def remote_command(script, *arguments):
    """Return a command line that runs a fixed ``sh`` script with arguments.

    The script never contains user text: everything variable arrives as a
    positional parameter, each one quoted, so no name or path can change what
    the shell runs.
    """
    words = ["sh", "-c", script, "sh", *(str(argument) for argument in arguments)]
    return " ".join(shlex.quote(word) for word in words)


class MasterVM:
    """An open, authenticated SSH connection to a lambda instance's master VM."""

    def __init__(self, transport, address, timeout, command_timeout):
        self._transport = transport
        self.address = address
        self.timeout = timeout
        self.command_timeout = command_timeout
        self._sftp = None

    @classmethod
    def connect(
        cls,
        host,
        port,
        user,
        private_key,
        pinned_key,
        policy,
        timeout,
        command_timeout=120,
    ):
        """Open a connection, verify the host key, then authenticate.

        :param pinned_key: the paramiko key the master VM must present, or None.
        :param policy: ``accept-new`` trusts an unpinned key (the caller pins
            it), ``strict`` refuses to talk to a master VM with no pinned key.
        :param timeout: seconds for the connection, the handshake and each
            network wait; ``command_timeout`` bounds a whole remote command.
        :return: the connection and the host key the master VM presented.
        :raise TransientError: the master VM could not be reached in time.
        :raise DeployError: the host key or the service key was refused.
        """
        if pinned_key is None and policy == "strict":
            raise DeployError(
                f"No host key is pinned for {host}:{port} and SSH_HOST_KEY_POLICY "
                "is strict; register the instance with its host_key."
            )

        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as error:
            raise TransientError(
                f"Cannot reach {host}:{port}: {_describe(error)}"
            ) from None
        # Without NODELAY every small request waits for a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        transport = paramiko.Transport(sock)
        try:
            master, presented = cls._handshake(
                transport, host, port, user, private_key, pinned_key, timeout
            )
        except BaseException:
            transport.close()
            raise
        master.command_timeout = command_timeout
        return master, presented

    @classmethod
    def _handshake(cls, transport, host, port, user, private_key, pinned_key, timeout):
        address = f"{user}@{host}:{port}"
        # A handshake that fails midway (a port that speaks another protocol)
        # leaves paramiko without a session: no step may be taken after it.
        transport.banner_timeout = timeout
        transport.handshake_timeout = timeout
        transport.auth_timeout = timeout
        options = transport.get_security_options()
        # AES-GCM is the fastest cipher both ends have; ask for it first.
        options.ciphers = _preferred(options.ciphers, "aes128-gcm@openssh.com")
        if pinned_key is not None:
            options.key_types = _preferred_host_key(options.key_types, pinned_key)

        try:
            transport.start_client(timeout=timeout)
            presented = transport.get_remote_server_key()
        except (paramiko.SSHException, OSError, EOFError) as error:
            raise TransientError(
                f"No SSH handshake with {host}:{port} (is it an SSH server?): "
                f"{_describe(error)}"
            ) from None

        if pinned_key is not None and presented != pinned_key:
            raise HostKeyMismatch(
                f"The host key of {host}:{port} has changed: pinned "
                f"{fingerprint(pinned_key)}, presented {fingerprint(presented)}. "
                "Nothing was sent. If the master VM was rebuilt, register the "
                "instance again with its new host_key."
            )

        try:
            transport.auth_publickey(user, private_key)
        except paramiko.AuthenticationException:
            raise DeployError(
                f"{address} refused the service's SSH key; add the key from "
                "GET /api/ssh-key/ to that user's authorized_keys."
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as error:
            raise TransientError(
                f"Logging in to {address} failed: {_describe(error)}"
            ) from None

        log.debug("Connected to %s, host key %s", address, fingerprint(presented))
        return cls(transport, address, timeout, command_timeout=None), presented

    def close(self):
        if self._sftp is not None:
            self._sftp.close()
        self._transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def run(self, command, timeout=None, limit=OUTPUT_LIMIT):
        """Run a command and return its exit status and the tails of its output.

        :param limit: the bytes of each stream's end to keep.
        :raise RemoteTimeout: the command did not end within ``timeout``.
        """
        timeout = timeout or self.command_timeout
        deadline = time.monotonic() + timeout
        stdout, stderr = OutputTail(limit), OutputTail(limit)

        try:
            channel = self._transport.open_session(timeout=self.timeout)
            channel.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as error:
            raise TransientError(
                f"{self.address} dropped the session: {_describe(error)}"
            ) from None

        with channel:
            while True:
                while channel.recv_stderr_ready():
                    stderr.add(channel.recv_stderr(_READ_SIZE))

                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RemoteTimeout(
                        f"A command on {self.address} did not end within "
                        f"{timeout} s; its last output: {stdout.text()[-500:]}"
                    )

                channel.settimeout(min(_STDERR_TURN, remaining))
                try:
                    chunk = channel.recv(_READ_SIZE)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                stdout.add(chunk)

            # End of file is for the whole channel: what stderr still holds is
            # already buffered here.
            while channel.recv_stderr_ready():
                stderr.add(channel.recv_stderr(_READ_SIZE))

            if not channel.status_event.wait(max(deadline - time.monotonic(), 1)):
                raise RemoteTimeout(f"{self.address} sent no exit status in time")
            exit_status = channel.exit_status

        # No exit status at all: the connection went, or a signal ended the
        # command before its shell could report.
        if exit_status == -1:
            if not self._transport.is_active():
                raise TransientError(f"The connection to {self.address} was lost")
            raise DeployError(
                f"A command on {self.address} was ended by a signal; its output: "
                f"{(stdout.text() + stderr.text())[-500:] or 'none'}"
            )

        return CommandResult(exit_status, stdout.text(), stderr.text())

    def check(self, command, what, timeout=None):
        """Run a command that must succeed; return its result.

        :param what: says in a few words what the command does, for the error.
        :raise DeployError: the command exited with another status than 0.
        """
        result = self.run(command, timeout)
        if result.exit_status != 0:
            raise DeployError(
                f"{what} failed on {self.address} "
                f"(exit status {result.exit_status}): {result.summary()}"
            )
        return result

    @property
    def sftp(self):
        if self._sftp is None:
            try:
                self._sftp = _SFTPClient.from_transport(self._transport)
            except (paramiko.SSHException, OSError, EOFError) as error:
                raise TransientError(
                    f"SFTP on {self.address} failed: {_describe(error)}"
                ) from None
            self._sftp.get_channel().settimeout(self.timeout)
        return self._sftp

    def open_tunnel(self, target):
        """Open a channel to ``(host, port)`` as seen from the master VM."""
        channel = self._transport.open_channel(
            "direct-tcpip", target, ("127.0.0.1", 0), timeout=self.timeout
        )
        channel.settimeout(self.timeout)
        return channel

    def upload(self, local_path, remote_path, progress=None):
        """Copy a local file to ``remote_path`` over SFTP; return its SHA-256.

        The digest is computed from the bytes as they are sent, so the caller
        can compare it with the digest the master VM computes afterwards.

        :param progress: called with the bytes sent so far after each write.
        :raise TransientError: the connection was lost during the copy.
        :raise DeployError: the master VM refused a write (a full disk).
        """
        sha256 = hashlib.sha256()
        try:
            sftp = self.sftp
            with open(local_path, "rb") as source:
                with sftp.open(remote_path, "wb") as target:
                    sftp.write_pipelined(target, source, sha256, progress)
        except (OSError, paramiko.SSHException, EOFError) as error:
            if not self._transport.is_active():
                raise TransientError(
                    f"The connection to {self.address} was lost while copying"
                ) from None
            raise DeployError(
                f"Copying to {remote_path} on {self.address} failed: {_describe(error)}"
            ) from None
        return sha256.hexdigest()


class _SFTPClient(paramiko.SFTPClient):
    """paramiko's SFTP client, with the server's write limit and large writes.

    paramiko writes 32 KiB at a time and, pipelined, stops to collect every
    acknowledgement after a hundred writes, which empties the pipe. OpenSSH
    takes writes of up to 255 KiB and says so through its
    ``limits@openssh.com`` extension; a larger write ends the session. Writes
    of the size the server allows, with a steady number in flight, are what
    brings the copy near OpenSSH's own (see docs/benchmarks.md).

    This reaches into paramiko's request plumbing (``_async_request``,
    ``_read_response``), which requirements.txt pins.
    """

    def _send_version(self):
        # paramiko reads the server's VERSION packet but drops the extension
        # names that follow the version number; they are kept here.
        message = paramiko.Message()
        message.add_int(3)
        self._send_packet(CMD_INIT, message)
        kind, data = self._read_packet()
        if kind != CMD_VERSION:
            raise SFTPError("Incompatible sftp protocol")

        reply = paramiko.Message(data)
        version = reply.get_int()
        self.extensions = {}
        while reply.packet.tell() < len(data):
            name = reply.get_text()
            self.extensions[name] = reply.get_binary()
        return version

    def _write_all(self, out):
        # paramiko slices off the unsent rest of a packet after each channel
        # send, copying a 255 KiB write eight times over; a view does not.
        view = memoryview(out)
        while view:
            sent = self.sock.send(view)
            if sent <= 0:
                raise EOFError()
            view = view[sent:]

    @functools.cached_property
    def write_size(self):
        """The largest write request the server takes, or the safe default."""
        if "limits@openssh.com" not in self.extensions:
            return _DEFAULT_WRITE_SIZE
        try:
            kind, reply = self._request(CMD_EXTENDED, "limits@openssh.com")
        except OSError:
            return _DEFAULT_WRITE_SIZE
        if kind != CMD_EXTENDED_REPLY:
            return _DEFAULT_WRITE_SIZE

        # max-packet-length and max-read-length come first; 0 means unknown.
        reply.get_int64()
        reply.get_int64()
        limit = reply.get_int64()
        if limit <= 0:
            return _DEFAULT_WRITE_SIZE
        return min(limit, _LARGEST_WRITE_SIZE)

    def write_pipelined(self, target, source, sha256, progress):
        """Send ``source`` into the open ``target`` with writes in flight.

        Each write's acknowledgement is collected once enough others are on
        their way behind it, so a refused write raises within a few MiB.
        """
        write_size = self.write_size
        most_in_flight = max(1, _WRITES_IN_FLIGHT // write_size)
        in_flight = 0
        offset = 0
        while chunk := source.read(write_size):
            if in_flight == most_in_flight:
                self._collect_one(target)
                in_flight -= 1
            self._async_request(target, CMD_WRITE, target.handle, int64(offset), chunk)
            in_flight += 1
            sha256.update(chunk)
            offset += len(chunk)
            if progress is not None:
                progress(offset)

        while in_flight:
            self._collect_one(target)
            in_flight -= 1

    def _collect_one(self, target):
        # A reply reaches target._async_response, which keeps a refusal
        # (a full disk, a quota) for _check_exception to raise.
        self._read_response()
        target._check_exception()


def _describe(error):
    """An exception's message, or its kind when it has none (timeouts)."""
    return str(error).strip() or type(error).__name__


def _preferred_host_key(available, pinned_key):
    """Ask first for the pinned key's type, so a server with several host keys
    presents the one that was pinned. An RSA key is offered under the names
    of its signature algorithms, not under its type's name."""
    name = pinned_key.get_name()
    wanted = (
        ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa") if name == "ssh-rsa" else (name,)
    )
    for algorithm in reversed(wanted):
        available = _preferred(available, algorithm)
    return available


def _preferred(available, first):
    if first not in available:
        return available
    return (first, *(item for item in available if item != first))


class _TunnelledConnection(http.client.HTTPConnection):
    """An HTTP connection carried by an SSH channel instead of a socket."""

    def __init__(self, channel, host, timeout):
        super().__init__(host, timeout=timeout)
        self._channel = channel

    def connect(self):
        self.sock = self._channel


def http_get_json(master, url, timeout=None):
    """GET a URL as the master VM would, through the SSH connection.

    Flink's REST API usually listens on the master VM's loopback address
    only; SSH port forwarding reaches it without opening anything else.

    :raise DeployError: the address cannot be reached or did not answer JSON.
    """
    timeout = timeout or master.timeout
    parts = urllib.parse.urlsplit(url)
    target = (parts.hostname, parts.port or 80)
    try:
        channel = master.open_tunnel(target)
    except (paramiko.SSHException, OSError, EOFError) as error:
        raise DeployError(
            f"{master.address} could not reach {parts.netloc}: {_describe(error)}"
        ) from None

    connection = _TunnelledConnection(channel, parts.netloc, timeout)
    try:
        path = parts.path or "/"
        connection.request("GET", path + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        body = response.read(OUTPUT_LIMIT * 16)
    except (OSError, http.client.HTTPException) as error:
        raise DeployError(
            f"{url} on {master.address} did not answer: {_describe(error)}"
        ) from None
    finally:
        connection.close()

    try:
        return response.status, json.loads(body)
    except ValueError:
        raise DeployError(
            f"{url} on {master.address} answered {response.status} without JSON"
        ) from None
