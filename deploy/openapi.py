"""The OpenAPI 3 description of the API, generated from its marshmallow
schemas by apispec and served at ``/api/openapi.json``."""

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app, jsonify

from schemas import openapi as answers
from schemas.inputs import (
    DeleteQuery,
    DeployForm,
    DeploymentQuery,
    LambdaInstanceForm,
    LogQuery,
    PageQuery,
)

FORM_TYPES = (
    "multipart/form-data",
    "application/x-www-form-urlencoded",
    "application/json",
)
ERRORS = "#/components/schemas/Errors"

_DESCRIPTIONS = {
    200: "Success.",
    201: "Created.",
    202: "Accepted; the job is on the queue.",
    400: "The input is missing or wrong.",
    401: "No valid token.",
    404: "No such object among yours.",
    409: "Not possible in the object's current state.",
    413: "The upload is larger than the service accepts.",
    503: "The queue or the master VM cannot be reached now.",
}


def _operation(summary, answer, success=200, errors=(), body=None, query=None):
    responses = {
        str(success): {
            "description": _DESCRIPTIONS[success],
            "content": {"application/json": {"schema": answer}},
        }
    }
    for code in (401, *errors):
        responses[str(code)] = {
            "description": _DESCRIPTIONS[code],
            "content": {"application/json": {"schema": {"$ref": ERRORS}}},
        }

    operation = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = body
    if query is not None:
        operation["parameters"] = [{"in": "query", "schema": query}]
    return operation


def _form(schema, types=FORM_TYPES):
    return {
        "required": True,
        "content": {content_type: {"schema": schema} for content_type in types},
    }


def _path_id(name):
    return [
        {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
    ]


def build_spec():
    spec = APISpec(
        title="Lambda application deploy service",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={
            "description": (
                "Upload applications, register lambda instances and deploy the "
                "one onto the other's master VM over SSH."
            )
        },
    )
    spec.components.security_scheme(
        "token",
        {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "'Token <key>'",
        },
    )
    spec.components.schema("Errors", schema=answers.ErrorsSchema)
    spec.options["security"] = [{"token": []}]

    spec.path(
        "/api/authenticate/",
        operations={"get": _operation("Who the token belongs to", answers.USER)},
    )
    spec.path(
        "/api/ssh-key/",
        operations={"get": _operation("The service's public SSH key", answers.SSH_KEY)},
    )
    spec.path(
        "/api/apps/",
        operations={
            "get": _operation(
                "List your applications",
                answers.APPLICATIONS,
                errors=(400,),
                query=PageQuery,
            ),
            "post": _operation(
                "Upload an application",
                answers.CREATED_APPLICATION,
                success=201,
                errors=(400, 413),
                body=_form(answers.ApplicationUploadSchema, ("multipart/form-data",)),
            ),
        },
    )
    spec.path(
        "/api/apps/{application_id}/",
        parameters=_path_id("application_id"),
        operations={
            "get": _operation("One application", answers.APPLICATION, errors=(404,)),
            "delete": _operation(
                "Delete an application that is deployed nowhere (or, with "
                "force, whose master VMs are gone)",
                answers.STATUS_ONLY,
                errors=(400, 404, 409),
                query=DeleteQuery,
            ),
        },
    )
    for action, summary in (
        ("deploy", "Deploy the application on a lambda instance"),
        ("stop", "Stop the application on a lambda instance"),
        ("start", "Start the stopped application again, without copying"),
        ("withdraw", "Stop the application and remove its files"),
    ):
        spec.path(
            f"/api/apps/{{application_id}}/{action}/",
            parameters=_path_id("application_id"),
            operations={
                "post": _operation(
                    summary,
                    answers.ACCEPTED,
                    success=202,
                    errors=(400, 404, 409, 503),
                    body=_form(DeployForm),
                )
            },
        )
    spec.path(
        "/api/lambda-instances/",
        operations={
            "get": _operation(
                "List your lambda instances",
                answers.LAMBDA_INSTANCES,
                errors=(400,),
                query=PageQuery,
            ),
            "post": _operation(
                "Register a lambda instance",
                answers.CREATED_LAMBDA_INSTANCE,
                success=201,
                errors=(400,),
                body=_form(LambdaInstanceForm),
            ),
        },
    )
    spec.path(
        "/api/lambda-instances/{instance_id}/",
        parameters=_path_id("instance_id"),
        operations={
            "get": _operation(
                "One lambda instance", answers.LAMBDA_INSTANCE, errors=(404,)
            ),
            "patch": _operation(
                "Change a lambda instance's registration",
                answers.LAMBDA_INSTANCE,
                errors=(400, 404, 409),
                body=_form(LambdaInstanceForm(partial=True)),
            ),
            "delete": _operation(
                "Delete a lambda instance that holds no deployment (or, with "
                "force, whose master VM is gone)",
                answers.STATUS_ONLY,
                errors=(400, 404, 409),
                query=DeleteQuery,
            ),
        },
    )
    spec.path(
        "/api/deployments/",
        operations={
            "get": _operation(
                "List your deployments",
                answers.DEPLOYMENTS,
                errors=(400,),
                query=DeploymentQuery,
            )
        },
    )
    spec.path(
        "/api/deployments/{deployment_id}/",
        parameters=_path_id("deployment_id"),
        operations={
            "get": _operation(
                "One deployment, checked on the master VM if it should be running",
                answers.DEPLOYMENT,
                errors=(404,),
            )
        },
    )
    spec.path(
        "/api/deployments/{deployment_id}/log/",
        parameters=_path_id("deployment_id"),
        operations={
            "get": _operation(
                "The end of the application's output",
                answers.LOG,
                errors=(400, 404, 409, 503),
                query=LogQuery,
            )
        },
    )
    return spec


def openapi_json():
    """The description, built once per process."""
    document = current_app.extensions.get("openapi")
    if document is None:
        document = build_spec().to_dict()
        current_app.extensions["openapi"] = document
    return jsonify(document)
