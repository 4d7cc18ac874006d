"""The service's own SSH key, and the host keys of master VMs."""

import base64
import hashlib
import io
import logging
import os

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import current_app
from marshmallow import ValidationError

from config import ConfigError

log = logging.getLogger(__name__)

KEY_COMMENT = "lambda-deploy-service"
HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)


def fingerprint(key):
    """Return a key's fingerprint as OpenSSH prints it (``SHA256:...``)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_key_line(key):
    """Return a key as a known_hosts-style ``type base64`` line."""
    return f"{key.get_name()} {key.get_base64()}"


def parse_host_key(line):
    """Parse a ``type base64`` line into a paramiko key.

    :raise ValidationError: when the line is not a public key paramiko knows.
    """
    parts = line.split()
    # A known_hosts line starts with the host's names: skip them.
    if (
        len(parts) >= 3
        and parts[0] not in HOST_KEY_TYPES
        and parts[1] in HOST_KEY_TYPES
    ):
        parts = parts[1:]
    if len(parts) < 2:
        raise ValidationError("Give the host key as '<type> <base64>'.")

    key_type, data = parts[0], parts[1]
    if key_type not in HOST_KEY_TYPES:
        raise ValidationError(
            f"The host key type {key_type[:40]!r} is not one the service can "
            f"verify; give one of: {', '.join(HOST_KEY_TYPES)}."
        )
    try:
        blob = base64.b64decode(data, validate=True)
        key = paramiko.PKey.from_type_string(key_type, blob)
    # Bad base64, and paramiko's several complaints about the bytes inside.
    except Exception:  # noqa: BLE001
        raise ValidationError(
            f"The host key is not a valid {key_type} key; copy the whole "
            "'type base64' pair from the master VM's /etc/ssh/ssh_host_*_key.pub."
        ) from None
    return key


def _load(text, source):
    """Load an unencrypted private key of any type paramiko supports.

    :raise ConfigError: naming ``source`` when the text is not such a key.
    """
    for key_class in (
        paramiko.Ed25519Key,
        paramiko.ECDSAKey,
        paramiko.RSAKey,
    ):
        try:
            return key_class.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise ConfigError(
        f"{source} does not hold an unencrypted Ed25519, ECDSA or RSA private key "
        "in OpenSSH or PEM form."
    )


def _generate(path):
    """Write a new Ed25519 key to ``path`` with mode 0600, unless one appears.

    The web process and the worker may start together; the key is written to a
    private temporary name and linked into place, so the loser of the race
    keeps the winner's key instead of overwriting it.
    """
    private = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private)

    try:
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        temporary.unlink()
    return True


def load_service_key(config):
    """Return the service's private key, generating one on first start.

    ``SSH_PRIVATE_KEY`` (the key itself) wins over ``SSH_PRIVATE_KEY_FILE``.
    """
    if config["SSH_PRIVATE_KEY"]:
        text = config["SSH_PRIVATE_KEY"]
        # Some dashboards only take one line: accept the newlines escaped.
        if "\n" not in text and "\\n" in text:
            text = text.replace("\\n", "\n")
        return _load(text, "SSH_PRIVATE_KEY")

    path = config["SSH_PRIVATE_KEY_FILE"]
    source = f"SSH_PRIVATE_KEY_FILE ({path})"
    if not path.exists():
        # Only the default place gets a generated key: a path someone typed
        # and mistyped must not quietly become a new identity.
        if path != config["SSH_DEFAULT_KEY_FILE"]:
            raise ConfigError(f"{source} does not exist.")
        if _generate(path):
            key = _load(path.read_text(), source)
            log.warning(
                "Generated a new service SSH key at %s; add its public half to "
                "the master VMs' authorized_keys: %s",
                path,
                public_key_line(key),
            )
            return key

    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{source} cannot be read: {error.strerror}") from None
    return _load(text, source)


def public_key_line(key):
    """Return the public half in authorized_keys form."""
    return f"{key.get_name()} {key.get_base64()} {KEY_COMMENT}"


def service_key():
    """Return the service's private key, loaded once per process."""
    key = current_app.extensions.get("service_key")
    if key is None:
        key = load_service_key(current_app.config)
        current_app.extensions["service_key"] = key
    return key
