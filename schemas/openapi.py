"""Schemas that exist for the OpenAPI description: the answer envelopes and
the upload form, built from the same schemas the API parses and dumps with."""

from marshmallow import Schema, fields, validate

from deploy.models import RUNTIMES
from schemas.inputs import ApplicationForm, Text
from schemas.outputs import (
    ApplicationSchema,
    DeploymentSchema,
    LambdaInstanceSchema,
    UserSchema,
)


class StatusSchema(Schema):
    short_description = fields.String(required=True, data_key="short-description")
    code = fields.Integer(required=True)


class ErrorSchema(Schema):
    status = fields.Integer(required=True)
    detail = fields.String(required=True)


class ErrorsSchema(Schema):
    errors = fields.List(fields.Nested(ErrorSchema), required=True)


class SshKeySchema(Schema):
    public_key = fields.String(required=True)
    fingerprint = fields.String(required=True)


class AcceptedSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True)
    url = fields.String(required=True)


class LogSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True)
    log = fields.String(required=True)


class CreatedApplicationSchema(ApplicationSchema):
    url = fields.String(required=True)


class CreatedLambdaInstanceSchema(LambdaInstanceSchema):
    url = fields.String(required=True)


class CheckedDeploymentSchema(DeploymentSchema):
    check_error = fields.String()


class ApplicationUploadSchema(ApplicationForm):
    """The upload form as multipart sends it: every field is text, so there
    is no null and no list (a field given twice is refused)."""

    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})
    runtime = Text(
        validate=validate.OneOf(RUNTIMES),
        metadata={"description": "Without it: flink for a .jar, exec otherwise."},
    )
    args = Text(
        metadata={
            "description": (
                "The program's arguments, split as a shell splits words "
                "(quotes group, nothing is expanded)."
            )
        }
    )


def _page_of(item_schema, name):
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "limit": fields.Integer(required=True),
            "offset": fields.Integer(required=True),
            "total": fields.Integer(required=True),
        },
        name=name,
    )


def _answer(data, name):
    """The success envelope around ``data`` (a field), or without data."""
    members = {"status": fields.Nested(StatusSchema, required=True)}
    if data is not None:
        members["data"] = data
    return Schema.from_dict(members, name=name)


STATUS_ONLY = _answer(None, "StatusAnswer")
USER = _answer(fields.Nested(UserSchema, required=True), "UserAnswer")
SSH_KEY = _answer(fields.Nested(SshKeySchema, required=True), "SshKeyAnswer")
ACCEPTED = _answer(fields.Nested(AcceptedSchema, required=True), "AcceptedAnswer")
LOG = _answer(fields.Nested(LogSchema, required=True), "LogAnswer")
APPLICATION = _answer(
    fields.Nested(ApplicationSchema, required=True), "ApplicationAnswer"
)
CREATED_APPLICATION = _answer(
    fields.Nested(CreatedApplicationSchema, required=True), "CreatedApplicationAnswer"
)
APPLICATIONS = _answer(
    fields.Nested(_page_of(ApplicationSchema, "ApplicationPage"), required=True),
    "ApplicationPageAnswer",
)
LAMBDA_INSTANCE = _answer(
    fields.Nested(LambdaInstanceSchema, required=True), "LambdaInstanceAnswer"
)
CREATED_LAMBDA_INSTANCE = _answer(
    fields.Nested(CreatedLambdaInstanceSchema, required=True),
    "CreatedLambdaInstanceAnswer",
)
LAMBDA_INSTANCES = _answer(
    fields.Nested(_page_of(LambdaInstanceSchema, "LambdaInstancePage"), required=True),
    "LambdaInstancePageAnswer",
)
DEPLOYMENT = _answer(
    fields.Nested(CheckedDeploymentSchema, required=True), "DeploymentAnswer"
)
DEPLOYMENTS = _answer(
    fields.Nested(_page_of(DeploymentSchema, "DeploymentPage"), required=True),
    "DeploymentPageAnswer",
)
