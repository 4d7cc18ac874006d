"""The HTTP API: Flask-RESTful resources under ``/api/``."""

import logging
import uuid

from flask import g, request, url_for
from flask_restful import Api, Resource
from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError

from deploy import artifacts, queue
from deploy.errors import BadRequest, Conflict, NotFound
from deploy.extensions import db
from deploy.models import (
    BUSY_STATUSES,
    Application,
    Deployment,
    LambdaInstance,
)
from deploy.sshkeys import fingerprint, public_key_line, service_key
from schemas.inputs import (
    ApplicationForm,
    DeployForm,
    DeploymentQuery,
    LambdaInstanceForm,
    PageQuery,
)
from schemas.outputs import (
    ApplicationSchema,
    DeploymentSchema,
    LambdaInstanceSchema,
    UserSchema,
)

log = logging.getLogger(__name__)


class ServiceApi(Api):
    """Flask-RESTful, with every error left to the app's one JSON handler."""

    def error_router(self, original_handler, e):
        return original_handler(e)


def answer(description, code=200, data=None, headers=None):
    """The success envelope: the spec's ``status``, and ``data`` if any."""
    body = {"status": {"short-description": description, "code": code}}
    if data is not None:
        body["data"] = data
    return body, code, headers or {}


def request_input():
    """Return the request's fields from a form (multipart or urlencoded) or JSON.

    :raise BadRequest: the body is not an object, or a field came twice.
    """
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise BadRequest("The JSON body must be an object of fields.")
        return data

    fields = {}
    for name, values in request.form.lists():
        if len(values) > 1:
            raise BadRequest(f"Give the field {name!r} once, not {len(values)} times.")
        fields[name] = values[0]
    return fields


def parse(schema, data):
    """Load input through a schema, turning its complaints into a 400."""
    try:
        return schema.load(data)
    except ValidationError as error:
        raise BadRequest(_describe(error.messages)) from None


def _describe(messages):
    parts = []
    for field, problems in sorted(messages.items()):
        if isinstance(problems, dict):
            problems = [str(problem) for problem in problems.values()]
        parts.append(f"{field}: {' '.join(problems)}")
    return "; ".join(parts)


def owned(model, object_id, what):
    """Return the current user's object with this id, or answer 404.

    Another user's object is answered exactly like one that does not exist.
    """
    try:
        canonical = str(uuid.UUID(str(object_id)))
    except ValueError:
        canonical = None

    found = None
    if canonical is not None:
        found = db.session.execute(
            db.select(model).filter_by(id=canonical, owner_id=g.user.id)
        ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"No {what} with id {object_id!r}.")
    return found


def page(query, schema, model, **filters):
    """One page of the user's objects, newest first, with the paging figures."""
    statement = db.select(model).filter_by(owner_id=g.user.id, **filters)
    total = db.session.execute(
        db.select(db.func.count()).select_from(statement.subquery())
    ).scalar_one()
    rows = db.session.execute(
        statement.order_by(model.created_at.desc(), model.id)
        .limit(query["limit"])
        .offset(query["offset"])
    ).scalars()
    return {
        "items": schema.dump(rows, many=True),
        "limit": query["limit"],
        "offset": query["offset"],
        "total": total,
    }


class Authenticate(Resource):
    def get(self):
        return answer("You are authenticated.", data=UserSchema().dump(g.user))


class SshKey(Resource):
    def get(self):
        key = service_key()
        return answer(
            "Add this public key to the master VM's authorized_keys.",
            data={"public_key": public_key_line(key), "fingerprint": fingerprint(key)},
        )


class ApplicationList(Resource):
    def get(self):
        query = parse(PageQuery(), request.args)
        return answer(
            "Your applications.", data=page(query, ApplicationSchema(), Application)
        )

    def post(self):
        form = parse(ApplicationForm(), request_input())
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            raise BadRequest("Send the application as the multipart field 'file'.")
        if len(request.files.getlist("file")) > 1:
            raise BadRequest("Send one file per application.")

        digest, size = artifacts.keep(upload)
        if size == 0:
            raise BadRequest("The uploaded file is empty.")

        runtime = form["runtime"]
        if runtime is None:
            runtime = "flink" if upload.filename.lower().endswith(".jar") else "exec"

        application = Application(
            owner_id=g.user.id,
            name=upload.filename[:255],
            description=form["description"],
            type=form["type"],
            runtime=runtime,
            digest=digest,
            size=size,
        )
        db.session.add(application)
        db.session.commit()
        log.info(
            "Application %s uploaded: %d bytes, sha256 %s", application.id, size, digest
        )

        location = url_for("application", application_id=application.id)
        return answer(
            "The application has been uploaded.",
            201,
            data=ApplicationSchema().dump(application) | {"url": location},
            headers={"Location": location},
        )


class ApplicationDetail(Resource):
    def get(self, application_id):
        application = owned(Application, application_id, "application")
        return answer("The application.", data=ApplicationSchema().dump(application))


class LambdaInstanceList(Resource):
    def get(self):
        query = parse(PageQuery(), request.args)
        return answer(
            "Your lambda instances.",
            data=page(query, LambdaInstanceSchema(), LambdaInstance),
        )

    def post(self):
        form = parse(LambdaInstanceForm(), request_input())
        instance = LambdaInstance(owner_id=g.user.id, **form)
        db.session.add(instance)
        db.session.commit()

        location = url_for("lambda_instance", instance_id=instance.id)
        return answer(
            "The lambda instance has been registered.",
            201,
            data=LambdaInstanceSchema().dump(instance) | {"url": location},
            headers={"Location": location},
        )


class LambdaInstanceDetail(Resource):
    def get(self, instance_id):
        instance = owned(LambdaInstance, instance_id, "lambda instance")
        return answer(
            "The lambda instance.", data=LambdaInstanceSchema().dump(instance)
        )


class ApplicationDeploy(Resource):
    def post(self, application_id):
        form = parse(DeployForm(), request_input())
        application = owned(Application, application_id, "application")
        instance = owned(LambdaInstance, form["lambda_instance_id"], "lambda instance")

        if instance.status != "started":
            raise Conflict(
                f"The lambda instance is {instance.status}; it accepts deployments "
                "only when started."
            )

        _refuse_if_busy(application, instance)
        deployment = Deployment(
            owner_id=g.user.id,
            application_id=application.id,
            lambda_instance_id=instance.id,
        )
        db.session.add(deployment)
        try:
            db.session.commit()
        except IntegrityError:
            # Another request for the same pair won the race for the index.
            db.session.rollback()
            _refuse_if_busy(application, instance)
            raise

        try:
            job = queue.enqueue("workers.jobs.deploy_application", deployment.id)
        except Exception:
            # Nothing was accepted: leave no deployment that no job will move.
            db.session.delete(deployment)
            db.session.commit()
            raise
        deployment.job_id = job.id
        db.session.commit()

        location = url_for("deployment", deployment_id=deployment.id)
        return answer(
            "Your request to deploy the specified application has been accepted.",
            202,
            data={"id": deployment.id, "status": deployment.status, "url": location},
            headers={"Location": location},
        )


def _refuse_if_busy(application, instance):
    busy = db.session.execute(
        db.select(Deployment).filter(
            Deployment.application_id == application.id,
            Deployment.lambda_instance_id == instance.id,
            Deployment.status.in_(BUSY_STATUSES),
        )
    ).scalar_one_or_none()
    if busy is not None:
        raise Conflict(
            f"Deployment {busy.id} of this application on this lambda instance "
            f"is {busy.status}; wait for it to end.",
        )


class DeploymentList(Resource):
    def get(self):
        query = parse(DeploymentQuery(), request.args)
        filters = {
            name: query[name]
            for name in ("application_id", "lambda_instance_id", "status")
            if query[name] is not None
        }
        return answer(
            "Your deployments.",
            data=page(query, DeploymentSchema(), Deployment, **filters),
        )


class DeploymentDetail(Resource):
    def get(self, deployment_id):
        deployment = owned(Deployment, deployment_id, "deployment")
        return answer("The deployment.", data=DeploymentSchema().dump(deployment))


def register_resources(app):
    api = ServiceApi(app, prefix="/api")
    api.add_resource(Authenticate, "/authenticate/")
    api.add_resource(SshKey, "/ssh-key/")
    api.add_resource(ApplicationList, "/apps/")
    api.add_resource(
        ApplicationDetail, "/apps/<application_id>/", endpoint="application"
    )
    api.add_resource(ApplicationDeploy, "/apps/<application_id>/deploy/")
    api.add_resource(LambdaInstanceList, "/lambda-instances/")
    api.add_resource(
        LambdaInstanceDetail,
        "/lambda-instances/<instance_id>/",
        endpoint="lambda_instance",
    )
    api.add_resource(DeploymentList, "/deployments/")
    api.add_resource(
        DeploymentDetail, "/deployments/<deployment_id>/", endpoint="deployment"
    )
    return api
