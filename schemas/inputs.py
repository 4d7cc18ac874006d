"""Schemas that parse request input (multipart or urlencoded form, or JSON)."""

import ipaddress
import json
import re
import shlex
import urllib.parse
import uuid

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates

from deploy.models import (
    APPLICATION_TYPES,
    DEPLOYMENT_STATUSES,
    INSTANCE_STATUSES,
    RUNTIMES,
)
from deploy.sshkeys import host_key_line, parse_host_key

HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
# The portable user-name set of POSIX, as useradd accepts it.
SSH_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
# What `Text` accepts, told to the OpenAPI description: no control characters,
# or none but tabs and line breaks in a multi-line text. Both Python and the
# ECMA regular expressions of JSON Schema read these escapes alike.
ONE_LINE = r"^[^\u0000-\u001f\u007f]*$"
MULTI_LINE = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$"

DEFAULT_DEPLOY_DIR = "lambda-apps"


def remote_folder(path):
    """A deploy folder as the service uses it: relative paths are under the SSH
    user's home, so ``~/apps``, ``./apps/`` and ``apps`` are the same folder."""
    if path == "~" or path.startswith("~/"):
        path = path[1:].lstrip("/")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    folder = "/".join(parts)
    return "/" + folder if path.startswith("/") else folder


def has_control_characters(text, allowed=""):
    return any(
        (ord(char) < 32 or ord(char) == 127) and char not in allowed for char in text
    )


def is_unicode(text):
    """Whether a text can be stored and sent: JSON's escapes can carry a lone
    surrogate (``"\\ud800"``), which no database or SSH channel can encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Text(fields.String):
    """A string with surrounding blanks removed, as forms often carry them.

    Control characters are refused: they mean nothing in a name or a path,
    and PostgreSQL cannot store a NUL at all. A multi-line text keeps its
    line breaks and tabs.
    """

    default_error_messages = {
        "control": "Remove the control characters.",
        "unicode": "The text holds a lone surrogate; send it as UTF-8.",
    }

    def __init__(self, *args, multiline=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.allowed = "\t\n\r" if multiline else ""
        # A field with a pattern of its own says more already.
        if not any(isinstance(rule, validate.Regexp) for rule in self.validators):
            self.metadata = {
                "pattern": MULTI_LINE if multiline else ONE_LINE,
                **self.metadata,
            }

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not is_unicode(text):
            raise self.make_error("unicode")
        if has_control_characters(text, self.allowed):
            raise self.make_error("control")
        return text


class ObjectId(Text):
    """An object's id as a filter. Every spelling of a UUID that the paths
    accept (upper case, without hyphens, in braces, ``urn:uuid:``) is the
    same id; anything else stays as it is and matches nothing."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return str(uuid.UUID(text))
        except ValueError:
            return text


class ProgramArguments(fields.Field):
    """Program arguments: a JSON list of strings, or one string split the way
    a shell splits words (``--rate 10 --name 'my job'``)."""

    default_error_messages = {
        "invalid": "Give the arguments as a list of strings or as one string.",
        "quotes": "The arguments have an unclosed quote: {error}",
        "too_many": "Give at most 100 arguments of at most 4096 characters each.",
        "control": "An argument holds a NUL byte or a line break.",
        "unicode": "An argument holds a lone surrogate; send it as UTF-8.",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and value.lstrip().startswith("["):
            # A form can carry a JSON list too: '["a b", "c"]'.
            try:
                value = json.loads(value)
            except ValueError:
                raise self.make_error("invalid") from None
        elif isinstance(value, str):
            try:
                value = shlex.split(value)
            except ValueError as error:
                raise self.make_error("quotes", error=error) from None
        if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
            raise self.make_error("invalid")
        if len(value) > 100 or any(len(argument) > 4096 for argument in value):
            raise self.make_error("too_many")
        # A line break would survive quoting, but it cannot pass through
        # Flink's client or a process's argument list unchanged everywhere.
        if any(char in argument for argument in value for char in "\0\n\r"):
            raise self.make_error("control")
        if not all(is_unicode(argument) for argument in value):
            raise self.make_error("unicode")
        return value


class DeployForm(Schema):
    lambda_instance_id = Text(
        required=True,
        validate=validate.Length(min=1, error="Give the lambda instance's id."),
    )


class ApplicationForm(Schema):
    description = Text(
        load_default="", multiline=True, validate=validate.Length(max=4096)
    )
    type = Text(load_default="batch", validate=validate.OneOf(APPLICATION_TYPES))
    runtime = Text(load_default=None, validate=validate.OneOf(RUNTIMES))
    args = ProgramArguments(load_default=list)


class LambdaInstanceForm(Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=255))
    master_host = Text(required=True, validate=validate.Length(min=1, max=255))
    ssh_port = fields.Integer(load_default=22, validate=validate.Range(1, 65535))
    ssh_user = Text(
        required=True,
        validate=validate.Regexp(
            SSH_USER, error="Give a user name of letters, digits, '_.-'."
        ),
    )
    host_key = Text(load_default=None)
    deploy_dir = Text(load_default=DEFAULT_DEPLOY_DIR)

    @post_load
    def _normalise(self, data, **kwargs):
        # A change (partial load) carries only the fields it names.
        if "host_key" in data:
            # Stored as 'type base64' whatever the line held around it.
            key = data["host_key"]
            data["host_key"] = host_key_line(parse_host_key(key)) if key else None
        if "deploy_dir" in data:
            data["deploy_dir"] = remote_folder(data["deploy_dir"])
        return data

    status = Text(load_default="started", validate=validate.OneOf(INSTANCE_STATUSES))
    flink_command = Text(load_default="flink")
    flink_rest_url = Text(load_default="http://127.0.0.1:8081")

    @validates("master_host")
    def _check_host(self, value, **kwargs):
        try:
            ipaddress.ip_address(value)
            return
        except ValueError:
            pass
        # A name of digits and dots only is a mistyped address, not a name.
        if not HOSTNAME.match(value) or re.fullmatch(r"[0-9.]+", value):
            raise ValidationError("Give a host name or an IP address.")

    @validates("host_key")
    def _check_host_key(self, value, **kwargs):
        if value:
            parse_host_key(value)

    @validates("deploy_dir")
    def _check_deploy_dir(self, value, **kwargs):
        if not value or len(value) > 1024:
            raise ValidationError("Give a folder path of 1 to 1024 characters.")
        if ".." in value.split("/"):
            raise ValidationError("The folder path may not climb with '..'.")
        if value.startswith("~") and value != "~" and not value.startswith("~/"):
            raise ValidationError(
                "Another user's home ('~name') cannot be used; give a path "
                "relative to the SSH user's home, or an absolute one."
            )
        if not remote_folder(value):
            raise ValidationError("Give a folder below the home folder or '/'.")

    @validates("flink_command")
    def _check_flink_command(self, value, **kwargs):
        if not value or len(value) > 1024:
            raise ValidationError("Give the Flink client's path, 1 to 1024 characters.")
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise ValidationError("The command holds a control character.")

    @validates("flink_rest_url")
    def _check_flink_rest_url(self, value, **kwargs):
        parts = urllib.parse.urlsplit(value)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme != "http" or not parts.hostname or port is None:
            raise ValidationError(
                "Give Flink's REST address as the master VM sees it, "
                "e.g. http://127.0.0.1:8081."
            )


class DeleteQuery(Schema):
    force = fields.Boolean(load_default=False)


class LogQuery(Schema):
    bytes = fields.Integer(load_default=64 * 1024, validate=validate.Range(1, 1024**2))


class PageQuery(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 10**9))


class DeploymentQuery(PageQuery):
    application_id = ObjectId(load_default=None)
    lambda_instance_id = ObjectId(load_default=None)
    status = Text(load_default=None, validate=validate.OneOf(DEPLOYMENT_STATUSES))
