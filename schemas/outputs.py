"""Schemas that shape what the API answers."""

from marshmallow import Schema, fields


class UserSchema(Schema):
    id = fields.String()
    name = fields.String()


class ApplicationSchema(Schema):
    id = fields.String()
    name = fields.String()
    description = fields.String()
    type = fields.String()
    runtime = fields.String()
    sha256 = fields.String(attribute="digest")
    size = fields.Integer()
    args = fields.List(fields.String())
    created_at = fields.DateTime()


class LambdaInstanceSchema(Schema):
    id = fields.String()
    name = fields.String()
    master_host = fields.String()
    ssh_port = fields.Integer()
    ssh_user = fields.String()
    host_key = fields.String(allow_none=True)
    deploy_dir = fields.String()
    status = fields.String()
    flink_command = fields.String()
    flink_rest_url = fields.String()
    created_at = fields.DateTime()


class StepSchema(Schema):
    name = fields.String()
    status = fields.String()
    started_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    output = fields.String()


class DeploymentSchema(Schema):
    id = fields.String()
    application_id = fields.String()
    lambda_instance_id = fields.String()
    status = fields.String()
    remote_path = fields.String(allow_none=True)
    process_id = fields.Integer(allow_none=True)
    flink_job_id = fields.String(allow_none=True)
    steps = fields.List(fields.Nested(StepSchema))
    error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    checked_at = fields.DateTime(allow_none=True)
    bytes_sent = fields.Integer(allow_none=True)
    bytes_total = fields.Integer(allow_none=True)
