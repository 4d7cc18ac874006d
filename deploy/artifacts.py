"""The artifact store: uploaded files kept under their SHA-256 digest.

An upload is written straight from the request body into a temporary file in
the store's ``incoming`` folder and hashed as it streams, so a file of any
size costs one pass over the disk and a fixed amount of memory. Only a file
that arrived whole is linked under its digest; a record is made after that,
so nothing half-written is ever listed or deployed.
"""

import hashlib
import logging
import os
import re
import tempfile
import time
from pathlib import Path

from flask import Request, current_app

log = logging.getLogger(__name__)

INCOMING = "incoming"
# A temporary file this old belongs to an upload whose process died.
ABANDONED_AFTER_SECONDS = 24 * 3600


class HashingFile:
    """A writable temporary file that hashes and counts what goes through it."""

    def __init__(self, folder):
        self._file = tempfile.NamedTemporaryFile(dir=folder, prefix="upload-")
        self._sha256 = hashlib.sha256()
        self.size = 0

    @property
    def name(self):
        return self._file.name

    def write(self, data):
        self._sha256.update(data)
        self.size += len(data)
        return self._file.write(data)

    def hexdigest(self):
        return self._sha256.hexdigest()

    def seek(self, *args):
        return self._file.seek(*args)

    def read(self, *args):
        return self._file.read(*args)

    def readline(self, *args):
        return self._file.readline(*args)

    def flush(self):
        return self._file.flush()

    def close(self):
        self._file.close()


class StreamingRequest(Request):
    """A request whose file parts stream to the artifact store, hashed."""

    def _get_file_stream(
        self, total_content_length, content_type, filename=None, content_length=None
    ):
        return HashingFile(incoming_folder())


def store_root():
    return Path(current_app.config["ARTIFACT_DIR"])


def incoming_folder():
    folder = store_root() / INCOMING
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def path_for(digest):
    return store_root() / digest[:2] / digest


def keep(upload):
    """Move a finished upload under its digest and return ``(digest, size)``.

    :param upload: the ``FileStorage`` whose stream is a :class:`HashingFile`.
    """
    stream = upload.stream
    stream.flush()
    os.fsync(stream._file.fileno())
    digest = stream.hexdigest()

    target = path_for(digest)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not target.exists():
        # Linking is atomic and leaves the temporary name to be removed when
        # the request closes the upload.
        try:
            os.link(stream.name, target)
        except FileExistsError:
            pass
    return digest, stream.size


def discard(digest):
    """Delete a stored artifact that no application refers to any more."""
    try:
        path_for(digest).unlink()
        log.info("Removed artifact %s", digest)
    except FileNotFoundError:
        pass


def remove_abandoned_uploads():
    """Delete temporary upload files left behind by a process that died."""
    folder = incoming_folder()
    cutoff = time.time() - ABANDONED_AFTER_SECONDS
    for path in folder.glob("upload-*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                log.info("Removed abandoned upload %s", path.name)
        except FileNotFoundError:
            continue


# Characters that mean nothing to a shell, a path or a terminal.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(filename):
    """Return a file name safe to use on the master VM for an uploaded name."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).lstrip(".-_")[:100]
    return cleaned or "application"
