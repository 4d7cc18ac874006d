"""The HTTP API: Flask-RESTful resources under ``/api/``."""

import logging
import uuid

from flask import current_app, g, request, url_for
from flask_restful import Api, Resource
from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import BadRequest as WerkzeugBadRequest

from deploy import artifacts, queue
from deploy.deployer import Deployer
from deploy.errors import BadRequest, Conflict, NotFound
from deploy.extensions import db
from deploy.models import (
    BUSY_STATUSES,
    Application,
    Deployment,
    LambdaInstance,
    utcnow,
)
from deploy.openapi import openapi_json
from deploy.sshkeys import fingerprint, public_key_line, service_key
from schemas.inputs import (
    ApplicationForm,
    DeleteQuery,
    DeployForm,
    DeploymentQuery,
    LambdaInstanceForm,
    LogQuery,
    PageQuery,
    has_control_characters,
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
        try:
            data = request.get_json()
        except WerkzeugBadRequest:
            raise BadRequest("The body is not valid JSON (UTF-8).") from None
        except RecursionError:
            # Python's parser gives up on arrays or objects nested thousands deep.
            raise BadRequest("The JSON body is nested too deeply.") from None
        if not isinstance(data, dict):
            raise BadRequest("The JSON body must be an object of fields.")
        return data

    fields = {}
    for name, values in request.form.lists():
        if len(values) > 1:
            raise BadRequest(f"Give the field {name!r} once, not {len(values)} times.")
        fields[name] = values[0]
    return fields


def display_name(filename):
    """The uploaded file's name as shown back: without control characters or
    folders, cut to fit. The name used on the master VM is stricter still."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if has_control_characters(name):
        name = "".join(char for char in name if not has_control_characters(char))
    if name.strip(" .") == "":
        # '.', '..' and blanks name a folder or nothing, not a file.
        return "application"
    return name[:255]


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
        shown = str(object_id)
        shown = shown if len(shown) <= 80 else shown[:80] + "..."
        raise NotFound(f"No {what} with id {shown!r}.")
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
        fields = request_input()
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            hint = (
                " (curl -F file=@path sends the file itself)"
                if "file" in fields
                else ""
            )
            raise BadRequest(
                f"Send the application as the multipart file field 'file'{hint}."
            )
        form = parse(ApplicationForm(), fields)
        if len(request.files.getlist("file")) > 1:
            raise BadRequest("Send one file per application.")

        # Refused before it is kept, so an empty upload leaves nothing stored.
        if upload.stream.size == 0:
            raise BadRequest("The uploaded file is empty.")
        digest, size = artifacts.keep(upload)

        runtime = form["runtime"]
        if runtime is None:
            runtime = "flink" if upload.filename.lower().endswith(".jar") else "exec"

        application = Application(
            owner_id=g.user.id,
            name=display_name(upload.filename),
            description=form["description"],
            type=form["type"],
            runtime=runtime,
            digest=digest,
            size=size,
            args=form["args"],
        )
        db.session.add(application)
        db.session.commit()
        # A delete of another application with the same content may have
        # removed the stored file between keeping it and the commit above;
        # the upload is still at hand to put it back.
        artifacts.keep(upload)
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

    def delete(self, application_id):
        application = owned(Application, application_id, "application")
        force = parse(DeleteQuery(), request.args)["force"]
        _refuse_while_busy(
            "of the application", Deployment.application_id == application.id
        )
        if not force:
            _refuse_if_deployed(
                Deployment.application_id == application.id, "application"
            )

        digest = application.digest
        _delete_with_deployments(application, Deployment.application_id)
        still_used = db.session.execute(
            db.select(Application.id).filter_by(digest=digest).limit(1)
        ).first()
        if still_used is None:
            artifacts.discard(digest)
        log.info("Application %s deleted", application_id)
        return answer("The application has been deleted.")


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

    def patch(self, instance_id):
        """Change a registration: a rebuilt master VM, a moved Flink."""
        instance = owned(LambdaInstance, instance_id, "lambda instance")
        changes = parse(LambdaInstanceForm(partial=True), request_input())
        if not changes:
            raise BadRequest("Give at least one field to change.")
        _refuse_if_busy_on(instance)

        moved = any(
            name in changes and changes[name] != getattr(instance, name)
            for name in ("master_host", "ssh_port")
        )
        if moved and "host_key" not in changes:
            # Another address is another host: its key is pinned anew.
            changes["host_key"] = None
        for name, value in changes.items():
            setattr(instance, name, value)
        db.session.commit()
        log.info("Lambda instance %s changed: %s", instance.id, ", ".join(changes))
        return answer(
            "The lambda instance has been changed.",
            data=LambdaInstanceSchema().dump(instance),
        )

    def delete(self, instance_id):
        instance = owned(LambdaInstance, instance_id, "lambda instance")
        force = parse(DeleteQuery(), request.args)["force"]
        _refuse_if_busy_on(instance)
        if not force:
            _refuse_if_deployed(
                Deployment.lambda_instance_id == instance.id, "lambda instance"
            )
        _delete_with_deployments(instance, Deployment.lambda_instance_id)
        log.info("Lambda instance %s deleted (force: %s)", instance_id, force)
        return answer("The lambda instance has been deleted.")


def _refuse_if_busy_on(instance):
    _refuse_while_busy(
        "on this lambda instance", Deployment.lambda_instance_id == instance.id
    )


def _refuse_while_busy(where, *conditions):
    """Answer 409, naming it, while a deployment that matches has a job under way."""
    busy = db.session.execute(
        db.select(Deployment)
        .filter(*conditions, Deployment.status.in_(BUSY_STATUSES))
        .limit(1)
    ).scalar_one_or_none()
    if busy is not None:
        raise Conflict(
            f"Deployment {busy.id} {where} is {busy.status}; wait for it to end."
        )


def _refuse_if_deployed(condition, what):
    """Answer 409 while something of this object may still be on a master VM.

    A deployment that failed before its copy was in place left nothing
    behind, so it does not count.
    """
    holding = db.session.execute(
        db.select(Deployment)
        .filter(condition, Deployment.status != "withdrawn")
        .filter(
            db.or_(Deployment.status != "failed", Deployment.remote_path.is_not(None))
        )
        .order_by(Deployment.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if holding is not None:
        raise Conflict(
            f"The {what} still has files on a master VM (deployment {holding.id} "
            f"is {holding.status}); withdraw it first, or delete with ?force=true "
            "if that master VM is gone."
        )


def _delete_with_deployments(target, column):
    for deployment in db.session.execute(
        db.select(Deployment).filter(column == target.id)
    ).scalars():
        db.session.delete(deployment)
    db.session.delete(target)
    db.session.commit()


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
            raise Conflict(
                "Another deployment of this application on this lambda instance "
                "was accepted a moment ago; try again."
            ) from None

        def undo():
            db.session.delete(deployment)

        _enqueue(deployment, "workers.jobs.deploy_application", undo)
        return _accepted(
            "Your request to deploy the specified application has been accepted.",
            deployment,
        )


def _enqueue(deployment, function, undo):
    """Queue a deployment's job before answering; undo the request if Redis fails.

    Nothing is accepted without its job on the queue, so no deployment waits
    for a job that does not exist.
    """
    try:
        job = queue.enqueue(function, deployment.id)
    except Exception:
        undo()
        db.session.commit()
        raise
    deployment.job_id = job.id
    db.session.commit()


def _accepted(description, deployment):
    location = url_for("deployment", deployment_id=deployment.id)
    return answer(
        description,
        202,
        data={"id": deployment.id, "status": deployment.status, "url": location},
        headers={"Location": location},
    )


class LifecycleAction(Resource):
    """Stop, start or withdraw the application deployed on an instance.

    Each acts on the newest deployment of the application on the instance,
    and only from the statuses in which it makes sense.
    """

    action = ""
    allowed = ()
    busy_status = ""
    job = ""

    def post(self, application_id):
        form = parse(DeployForm(), request_input())
        application = owned(Application, application_id, "application")
        instance = owned(LambdaInstance, form["lambda_instance_id"], "lambda instance")

        deployment = db.session.execute(
            db.select(Deployment)
            .filter_by(application_id=application.id, lambda_instance_id=instance.id)
            .order_by(Deployment.created_at.desc())
            .limit(1)
        ).scalar_one_or_none()
        if deployment is None:
            raise Conflict("The application is not deployed on this lambda instance.")
        self.check(deployment)

        previous = deployment.status
        # Compare and set: of two requests racing, one moves the status.
        moved = db.session.execute(
            db.update(Deployment)
            .where(Deployment.id == deployment.id, Deployment.status == previous)
            .values(
                status=self.busy_status,
                resume_status=previous,
                error=None,
                updated_at=utcnow(),
            )
        ).rowcount
        if moved != 1:
            db.session.rollback()
            raise Conflict(f"Deployment {deployment.id} changed meanwhile; try again.")
        db.session.commit()
        db.session.refresh(deployment)

        def undo():
            deployment.status = previous

        _enqueue(deployment, self.job, undo)
        return _accepted(
            f"Your request to {self.action} the application has been accepted.",
            deployment,
        )

    def check(self, deployment):
        if deployment.status not in self.allowed:
            raise Conflict(
                f"Deployment {deployment.id} is {deployment.status}; "
                f"{self.action} needs it {' or '.join(self.allowed)}."
            )


class ApplicationStop(LifecycleAction):
    action = "stop"
    allowed = ("running",)
    busy_status = "stopping"
    job = "workers.jobs.stop_application"


class ApplicationStart(LifecycleAction):
    action = "start"
    allowed = ("stopped", "finished", "failed")
    busy_status = "starting"
    job = "workers.jobs.start_application"

    def check(self, deployment):
        super().check(deployment)
        if deployment.remote_path is None:
            raise Conflict(
                f"Deployment {deployment.id} failed before its copy was in place; "
                "deploy the application instead."
            )


class ApplicationWithdraw(LifecycleAction):
    action = "withdraw"
    allowed = ("running", "stopped", "finished", "failed")
    busy_status = "withdrawing"
    job = "workers.jobs.withdraw_application"


def _refuse_if_busy(application, instance):
    _refuse_while_busy(
        "of this application on this lambda instance",
        Deployment.application_id == application.id,
        Deployment.lambda_instance_id == instance.id,
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
        data = DeploymentSchema().dump(deployment)

        if _check_is_due(deployment):
            problem = Deployer(deployment).refresh()
            data = DeploymentSchema().dump(deployment)
            if problem:
                data["check_error"] = problem
        return answer("The deployment.", data=data)


def _check_is_due(deployment):
    """Whether a deployment that should be running was last seen too long ago."""
    if deployment.status != "running":
        return False
    if deployment.checked_at is None:
        return True
    age = (utcnow() - deployment.checked_at).total_seconds()
    return age >= current_app.config["STATUS_CHECK_SECONDS"]


class DeploymentLog(Resource):
    def get(self, deployment_id):
        deployment = owned(Deployment, deployment_id, "deployment")
        limit = parse(LogQuery(), request.args)["bytes"]
        if deployment.remote_path is None:
            raise Conflict(
                f"Deployment {deployment.id} is {deployment.status}; nothing of it "
                "is on the master VM to read."
            )

        text = Deployer(deployment).read_log(limit)
        return answer(
            "The end of the application's output.",
            data={"id": deployment.id, "status": deployment.status, "log": text},
        )


def _both_spellings(path):
    # A second rule without the slash makes a wrong method there a 405 too.
    return path, path.rstrip("/")


def register_resources(app):
    api = ServiceApi(app, prefix="/api")
    routes = [
        (Authenticate, "/authenticate/", None),
        (SshKey, "/ssh-key/", None),
        (ApplicationList, "/apps/", None),
        (ApplicationDetail, "/apps/<application_id>/", "application"),
        (ApplicationDeploy, "/apps/<application_id>/deploy/", None),
        (ApplicationStop, "/apps/<application_id>/stop/", None),
        (ApplicationStart, "/apps/<application_id>/start/", None),
        (ApplicationWithdraw, "/apps/<application_id>/withdraw/", None),
        (LambdaInstanceList, "/lambda-instances/", None),
        (LambdaInstanceDetail, "/lambda-instances/<instance_id>/", "lambda_instance"),
        (DeploymentList, "/deployments/", None),
        (DeploymentDetail, "/deployments/<deployment_id>/", "deployment"),
        (DeploymentLog, "/deployments/<deployment_id>/log/", None),
    ]
    for resource, path, endpoint in routes:
        api.add_resource(resource, *_both_spellings(path), endpoint=endpoint)
    app.add_url_rule("/api/openapi.json", "openapi", openapi_json)
    return api
