"""Hostile input on every endpoint.

Each answer must be the JSON error shape ``{"errors": [{"status": N,
"detail": "..."}]}`` with the right status: never HTML, never a traceback,
never a 500. The tables name the inputs; each test walks the endpoints.
"""

import io
import re
import secrets
import shlex
import urllib.parse
import uuid
from pathlib import Path

import pytest

import config
from app import create_app
from deploy.extensions import db
from tests.conftest import auth, make_user, wait_for_status
from tests.helpers import deploy, register, upload

SCRIPT = b"#!/bin/sh\nsleep 60\n"
# Prints each argument on a line of its own, then ends: a batch job.
ECHO_ARGUMENTS = b"#!/bin/sh\nprintf '%s\\n' \"$@\"\n"

# Every endpoint of the API; the ids are filled in from the `objects` fixture.
ENDPOINTS = [
    ("GET", "/api/authenticate/"),
    ("GET", "/api/ssh-key/"),
    ("GET", "/api/apps/"),
    ("POST", "/api/apps/"),
    ("GET", "/api/apps/{application}/"),
    ("DELETE", "/api/apps/{application}/"),
    ("POST", "/api/apps/{application}/deploy/"),
    ("POST", "/api/apps/{application}/stop/"),
    ("POST", "/api/apps/{application}/start/"),
    ("POST", "/api/apps/{application}/withdraw/"),
    ("GET", "/api/lambda-instances/"),
    ("POST", "/api/lambda-instances/"),
    ("GET", "/api/lambda-instances/{instance}/"),
    ("DELETE", "/api/lambda-instances/{instance}/"),
    ("GET", "/api/deployments/"),
    ("GET", "/api/deployments/{deployment}/"),
    ("GET", "/api/deployments/{deployment}/log/"),
]
WITH_AN_ID = [(method, path) for method, path in ENDPOINTS if "{" in path]
ACTIONS = ["deploy", "stop", "start", "withdraw"]

MULTIPART = "multipart/form-data; boundary=hostile-boundary"


def json_error(response, status):
    """Assert the answer is the service's JSON error with this status; return
    its detail."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == "application/json", text
    assert "Traceback" not in text and "<html" not in text.lower()
    body = response.get_json()
    assert set(body) == {"errors"}, body
    [error] = body["errors"]
    assert set(error) == {"status", "detail"}, error
    assert error["status"] == status
    assert isinstance(error["detail"], str) and error["detail"], error
    return error["detail"]


def call(client, method, path, headers=None, **kwargs):
    return client.open(path, method=method, headers=headers or {}, **kwargs)


def valid_body(path, objects):
    """What a POST to this path needs, so that only the thing tested decides."""
    if path == "/api/apps/":
        return {
            "data": {"file": (io.BytesIO(SCRIPT), "app.sh")},
            "content_type": "multipart/form-data",
        }
    if path == "/api/lambda-instances/":
        return {"data": {"name": "n", "master_host": "127.0.0.2", "ssh_user": "u"}}
    if path.endswith(tuple(f"/{action}/" for action in ACTIONS)):
        return {"data": {"lambda_instance_id": objects["instance"]}}
    return {}


class File(tuple):
    """A file to upload, as ``(content, name)``; made into a stream when sent,
    since a stream is used up by one request and the tables are reused."""

    def __new__(cls, content, name):
        return super().__new__(cls, (content, name))


def fresh(arguments):
    """The test client's arguments, with files and bodies as new streams."""

    def stream(value):
        if isinstance(value, File):
            return (io.BytesIO(value[0]), value[1])
        if isinstance(value, list):
            return [stream(item) for item in value]
        return value

    arguments = dict(arguments)
    if isinstance(arguments.get("data"), dict):
        arguments["data"] = {
            key: stream(value) for key, value in arguments["data"].items()
        }
    if "input_stream" in arguments:
        arguments["input_stream"] = io.BytesIO(arguments["input_stream"])
    return arguments


def fill(path, **ids):
    return path.format(**ids)


def multipart(*parts):
    """A multipart body built by hand, for what the test client cannot encode.

    Each part is ``(disposition parameters, content)`` as bytes.
    """
    body = b""
    for parameters, content in parts:
        body += (
            b"--hostile-boundary\r\nContent-Disposition: form-data; "
            + parameters
            + b"\r\n\r\n"
            + content
            + b"\r\n"
        )
    return body + b"--hostile-boundary--\r\n"


def file_part(quoted_name, content=SCRIPT):
    """A file part whose name is sent as the bytes given, between quotes."""
    return (b'name="file"; filename="' + quoted_name + b'"', content)


def artifact_tree(app):
    """Every file under the app's ARTIFACT_DIR, the incoming folder included."""
    root = Path(app.config["ARTIFACT_DIR"])
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.fixture
def objects(client, alice, master_vm):
    """Alice's application, lambda instance and a (queued) deployment."""
    application = upload(client, alice, SCRIPT)
    instance = register(client, alice, master_vm)
    response = deploy(client, alice, application["id"], instance["id"])
    assert response.status_code == 202, response.get_json()
    return {
        "application": application["id"],
        "instance": instance["id"],
        "deployment": response.get_json()["data"]["id"],
    }


@pytest.fixture
def small_app(app, migrated):
    """The service with a 64 KiB request limit, on the same database."""
    small = create_app(
        config.from_environment(migrated) | {"MAX_CONTENT_LENGTH": 64 * 1024}
    )
    yield small

    with small.app_context():
        db.engine.dispose()


# 1. Authorization.

# Headers that name no valid key, as a careless or hostile client sends them;
# `{key}` is a valid key of alice's.
BAD_AUTHORIZATION = [
    None,
    "",
    "Token",
    "Token ",
    "token",
    "Bearer {key}",
    "Basic YWxpY2U6c2VjcmV0",
    "Basic {key}",
    "{key}",
    "Token  {key}",
    "Token\t{key}",
    "Token {key} extra",
    "Token {key} {key}",
    "xToken {key}",
    "Token {key};",
    "Token {key},",
    'Token "{key}"',
    "Token <{key}>",
    "Token key={key}",
    "Token={key}",
    "Token {key}\x00",
    "Token {truncated}",
    "Token {key}A",
    "Token " + "A" * 43,
    "Token " + "A" * 4000,
]


@pytest.mark.parametrize("header", BAD_AUTHORIZATION)
def test_every_endpoint_answers_401_to_a_header_without_a_valid_key(
    client, alice, objects, header
):
    headers = {}
    if header is not None:
        headers["Authorization"] = header.format(key=alice, truncated=alice[:-1])

    for method, path in ENDPOINTS:
        response = call(
            client,
            method,
            fill(path, **objects),
            headers,
            **valid_body(path, objects),
        )

        json_error(response, 401)
        assert response.headers["WWW-Authenticate"] == "Token"


def test_a_malformed_header_is_told_what_the_header_must_read(client, alice):
    spaced = client.get(
        "/api/authenticate/", headers={"Authorization": f"Token  {alice}"}
    )
    bearer = client.get(
        "/api/authenticate/", headers={"Authorization": f"Bearer {alice}"}
    )

    assert "one space" in json_error(spaced, 401)
    detail = json_error(bearer, 401)
    assert "'Bearer'" in detail
    # The key is a secret: no answer repeats it.
    assert alice not in detail


@pytest.mark.parametrize(
    "header", ["token {key}", "TOKEN {key}", "tOkEn {key}", " Token {key}\t"]
)
def test_the_scheme_word_in_any_case_with_a_valid_key_is_accepted(
    client, alice, objects, header
):
    # Blanks around the value are not part of it (RFC 9110); gunicorn drops
    # them before the app sees the header.
    headers = {"Authorization": header.format(key=alice)}

    for method, path in ENDPOINTS:
        if method == "GET":
            response = client.get(fill(path, **objects), headers=headers)
            assert response.status_code in (200, 409), response.get_json()

    who = client.get("/api/authenticate/", headers=headers).get_json()["data"]
    assert who["name"] == "alice"


def test_a_revoked_key_is_401_on_every_endpoint(app, client, alice, objects):
    revoked = app.test_cli_runner().invoke(args=["tokens", "revoke", alice])
    assert revoked.exit_code == 0, revoked.output

    for method, path in ENDPOINTS:
        response = call(
            client,
            method,
            fill(path, **objects),
            auth(alice),
            **valid_body(path, objects),
        )

        assert json_error(response, 401) == "The token is not valid."


def test_another_users_key_is_404_for_every_object_of_the_first(
    client, alice, bob, objects, master_vm
):
    bobs_application = upload(client, bob, SCRIPT)
    bobs_instance = register(client, bob, master_vm)

    for method, path in WITH_AN_ID:
        response = call(
            client,
            method,
            fill(path, **objects),
            auth(bob),
            data={"lambda_instance_id": bobs_instance["id"]},
        )
        json_error(response, 404)

    # Each half of the pair is checked: bob's application on alice's
    # instance, and alice's application on bob's instance.
    for action in ACTIONS:
        for application_id, instance_id in (
            (bobs_application["id"], objects["instance"]),
            (objects["application"], bobs_instance["id"]),
        ):
            response = client.post(
                f"/api/apps/{application_id}/{action}/",
                headers=auth(bob),
                data={"lambda_instance_id": instance_id},
            )
            json_error(response, 404)

    # Nothing of alice's was touched: deleted, deployed or stopped.
    deployment = client.get(
        f"/api/deployments/{objects['deployment']}/", headers=auth(alice)
    ).get_json()["data"]
    assert deployment["status"] == "queued"
    for path in ("/api/apps/{application}/", "/api/lambda-instances/{instance}/"):
        response = client.get(fill(path, **objects), headers=auth(alice))
        assert response.status_code == 200
    listed = client.get("/api/deployments/", headers=auth(alice)).get_json()["data"]
    assert [item["id"] for item in listed["items"]] == [objects["deployment"]]


def test_another_users_lists_and_filters_show_none_of_the_first_users_objects(
    client, alice, bob, objects
):
    queries = [
        "/api/apps/",
        "/api/lambda-instances/",
        "/api/deployments/",
        f"/api/deployments/?application_id={objects['application']}",
        f"/api/deployments/?lambda_instance_id={objects['instance']}",
        "/api/deployments/?status=queued",
    ]

    for query in queries:
        response = client.get(query, headers=auth(bob))

        assert response.status_code == 200, response.get_json()
        page = response.get_json()["data"]
        assert page["items"] == [] and page["total"] == 0, (query, page)


# 2. Ids.

NOT_UUIDS = [
    "x",
    "1; rm -rf /",
    "../..",
    "..",
    "a" * 5000,
    "ünïcødé-名前",
    "\x00",
    "%00",
    "' OR '1'='1",
    "-1",
    "0",
    "00000000-0000-0000-0000-000000000000",
    str(uuid.uuid4()),
    str(uuid.uuid4())[:-1],
    str(uuid.uuid4()) + "0",
]


@pytest.mark.parametrize("bad_id", NOT_UUIDS)
def test_an_id_that_names_nothing_is_404_on_every_endpoint(
    client, alice, objects, bad_id
):
    quoted = urllib.parse.quote(bad_id, safe="")

    for slot in ("application", "instance", "deployment"):
        ids = objects | {slot: quoted}
        for method, path in WITH_AN_ID:
            if "{" + slot + "}" not in path:
                continue
            response = call(
                client, method, fill(path, **ids), auth(alice), **valid_body(path, ids)
            )
            json_error(response, 404)

    # The instance's id in the form is an id like the others.
    for action in ACTIONS:
        response = client.post(
            f"/api/apps/{objects['application']}/{action}/",
            headers=auth(alice),
            data={"lambda_instance_id": bad_id},
        )
        # A NUL byte is not text at all: the form itself is refused.
        json_error(response, 400 if bad_id == "\x00" else 404)


def uuid_spellings(canonical):
    value = uuid.UUID(canonical)
    return [
        canonical.upper(),
        value.hex,
        value.hex.upper(),
        "{" + canonical + "}",
        value.urn,
    ]


def test_every_spelling_of_a_uuid_names_the_same_object_everywhere(
    client, alice, objects
):
    """Upper case, without hyphens, in braces or as a URN: the same object,
    answered exactly as its canonical id is (none of these requests changes
    anything: the deployment is queued, so each action is refused)."""

    def answers(ids, lambda_instance_id):
        result = []
        for method, path in WITH_AN_ID:
            response = call(
                client,
                method,
                fill(path, **ids),
                auth(alice),
                data={"lambda_instance_id": lambda_instance_id},
            )
            result.append((method, path, response.status_code, response.get_json()))
        return result

    expected = answers(objects, objects["instance"])
    assert {code for _, _, code, _ in expected} == {200, 409}, expected

    spelled = zip(
        uuid_spellings(objects["application"]),
        uuid_spellings(objects["instance"]),
        uuid_spellings(objects["deployment"]),
        strict=True,
    )
    for application_id, instance_id, deployment_id in spelled:
        ids = {
            "application": urllib.parse.quote(application_id, safe=""),
            "instance": urllib.parse.quote(instance_id, safe=""),
            "deployment": urllib.parse.quote(deployment_id, safe=""),
        }
        assert answers(ids, instance_id) == expected

        for name, value in (
            ("application_id", application_id),
            ("lambda_instance_id", instance_id),
        ):
            listed = client.get(
                "/api/deployments/", headers=auth(alice), query_string={name: value}
            ).get_json()["data"]
            assert [item["id"] for item in listed["items"]] == [objects["deployment"]]


def test_the_ids_of_deleted_objects_are_404_everywhere(
    client, alice, master_vm, worker
):
    application = upload(client, alice, SCRIPT)
    # Nothing listens on port 1: the deployment fails before anything is
    # copied, so its application and instance may be deleted.
    instance = register(client, alice, master_vm, ssh_port="1")
    accepted = deploy(client, alice, application["id"], instance["id"])
    assert accepted.status_code == 202, accepted.get_json()
    deployment_id = accepted.get_json()["data"]["id"]
    wait_for_status(client, alice, deployment_id, ("failed",))

    for path in (application["url"], instance["url"]):
        deleted = client.delete(path, headers=auth(alice))
        assert deleted.status_code == 200, deleted.get_json()

    ids = {
        "application": application["id"],
        "instance": instance["id"],
        "deployment": deployment_id,
    }
    for method, path in WITH_AN_ID:
        response = call(
            client, method, fill(path, **ids), auth(alice), **valid_body(path, ids)
        )
        json_error(response, 404)


# 3. The lambda instance's id in the actions' form.

# (what is sent, how): each leaves the form without one usable id.
UNUSABLE_INSTANCE_IDS = [
    ("missing", {}),
    ("empty", {"data": {"lambda_instance_id": ""}}),
    ("blank", {"data": {"lambda_instance_id": "  \t "}}),
    (
        "twice in a multipart form",
        {
            "data": multipart(
                (b'name="lambda_instance_id"', b"{instance}"),
                (b'name="lambda_instance_id"', b"{instance}"),
            ),
            "content_type": MULTIPART,
        },
    ),
    (
        "twice in an urlencoded form",
        {
            "data": "lambda_instance_id={instance}&lambda_instance_id={instance}",
            "content_type": "application/x-www-form-urlencoded",
        },
    ),
    ("only in the query string", {"query_string": "lambda_instance_id={instance}"}),
    ("JSON null", {"json": {"lambda_instance_id": None}}),
    ("JSON number", {"json": {"lambda_instance_id": 7}}),
    ("JSON list", {"json": {"lambda_instance_id": ["{instance}"]}}),
    ("JSON empty", {"json": {"lambda_instance_id": ""}}),
    ("JSON lone surrogate", {"json": {"lambda_instance_id": "\ud800"}}),
    ("a NUL byte", {"data": {"lambda_instance_id": "{instance}\x00"}}),
]


def _with_instance(value, instance_id):
    if isinstance(value, str):
        return value.replace("{instance}", instance_id)
    if isinstance(value, bytes):
        return value.replace(b"{instance}", instance_id.encode())
    if isinstance(value, dict):
        return {key: _with_instance(item, instance_id) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_instance(item, instance_id) for item in value]
    return value


@pytest.mark.parametrize(
    "request_arguments",
    [arguments for _, arguments in UNUSABLE_INSTANCE_IDS],
    ids=[name for name, _ in UNUSABLE_INSTANCE_IDS],
)
def test_an_action_without_one_usable_instance_id_is_400(
    client, alice, objects, request_arguments
):
    arguments = _with_instance(request_arguments, objects["instance"])

    for action in ACTIONS:
        response = client.post(
            f"/api/apps/{objects['application']}/{action}/",
            headers=auth(alice),
            **arguments,
        )

        json_error(response, 400)


# 4. Uploads.


@pytest.mark.parametrize(
    "request_arguments, hint",
    [
        ({}, "multipart file field 'file'"),
        ({"data": {"description": "no file"}}, "multipart file field 'file'"),
        ({"data": {"file": "clock.sh"}}, "curl -F file=@path"),
        ({"data": {"file": File(b"", "empty.sh")}}, "empty"),
        ({"data": {"file": File(SCRIPT, "")}}, "multipart file field"),
        (
            {"data": {"file": [File(SCRIPT, "a.sh"), File(b"2", "b")]}},
            "one file",
        ),
        ({"json": {"file": "clock.sh"}}, "multipart file field"),
    ],
    ids=["nothing", "no file", "file as text", "empty", "no name", "two", "json"],
)
def test_an_upload_without_one_usable_file_is_400_and_stores_nothing(
    app, client, alice, request_arguments, hint
):
    before = artifact_tree(app)

    response = client.post(
        "/api/apps/", headers=auth(alice), **fresh(request_arguments)
    )

    assert hint in json_error(response, 400)
    assert artifact_tree(app) == before
    assert (
        client.get("/api/apps/", headers=auth(alice)).get_json()["data"]["total"] == 0
    )


OVER_THE_LIMIT = 200 * 1024


@pytest.mark.parametrize(
    "path, request_arguments",
    [
        (
            "/api/apps/",
            {"data": {"file": File(b"x" * OVER_THE_LIMIT, "big.sh")}},
        ),
        (
            "/api/apps/",
            # No Content-Length: the body streams until it ends, as a chunked
            # request reaches the app through gunicorn.
            {
                "input_stream": multipart(file_part(b"big.sh", b"x" * OVER_THE_LIMIT)),
                "content_type": MULTIPART,
                "environ_overrides": {"wsgi.input_terminated": True},
            },
        ),
        (
            "/api/apps/",
            {
                "data": {
                    "file": File(SCRIPT, "a.sh"),
                    "description": "d" * OVER_THE_LIMIT,
                }
            },
        ),
        ("/api/lambda-instances/", {"json": {"name": "n" * OVER_THE_LIMIT}}),
        ("/api/apps/{application}/deploy/", {"data": {"x": "y" * OVER_THE_LIMIT}}),
    ],
    ids=["file", "streamed file", "description", "json", "deploy form"],
)
def test_a_request_over_the_size_limit_is_413_and_stores_nothing(
    small_app, path, request_arguments
):
    token = make_user(small_app, "carol")
    client = small_app.test_client()
    application = upload(client, token, SCRIPT)
    before = artifact_tree(small_app)

    response = client.post(
        path.format(application=application["id"]),
        headers=auth(token),
        **fresh(request_arguments),
    )

    json_error(response, 413)
    assert artifact_tree(small_app) == before
    listed = client.get("/api/apps/", headers=auth(token)).get_json()["data"]
    assert listed["total"] == 1


def test_an_upload_just_under_the_size_limit_is_kept(small_app):
    token = make_user(small_app, "carol")
    client = small_app.test_client()

    application = upload(client, token, b"x" * (60 * 1024), filename="fits.sh")

    assert application["size"] == 60 * 1024


# (the file name as sent between quotes, the name the service shows, or None
# when the upload is refused)
HOSTILE_FILE_NAMES = [
    (b"my app.sh", "my app.sh"),
    (b'say \\"hi\\".sh', 'say "hi".sh'),
    (b"it's.sh", "it's.sh"),
    (b"a;b&&c|d.sh", "a;b&&c|d.sh"),
    (b"$(id).sh", "$(id).sh"),
    (b"`id`.sh", "`id`.sh"),
    # A bare line break or carriage return ends the part's header line: no
    # file name is left, and the part is not a file.
    (b"line\nbreak.sh", None),
    (b"carriage\rreturn.sh", None),
    (b"\x1b[31mred\x07.sh", "[31mred.sh"),
    (b"tab\there.sh", "tabhere.sh"),
    ("ünïcødé-名前.sh".encode(), "ünïcødé-名前.sh"),
    (b"../../etc/passwd", "passwd"),
    (b"/etc/cron.d/job", "job"),
    (b"..\\\\..\\\\boot.ini", "boot.ini"),
    (b"a/..", "application"),
    (b"..", "application"),
    (b".", "application"),
    (b" . ", "application"),
    (b"dir/", "application"),
    (b"n" * 5000 + b".sh", "n" * 255),
]


@pytest.mark.parametrize(
    "sent, shown",
    HOSTILE_FILE_NAMES,
    ids=[sent[:20].decode(errors="replace") for sent, _ in HOSTILE_FILE_NAMES],
)
def test_a_hostile_file_name_is_kept_as_a_plain_name(client, alice, sent, shown):
    response = client.post(
        "/api/apps/",
        headers=auth(alice),
        data=multipart(file_part(sent)),
        content_type=MULTIPART,
    )

    if shown is None:
        json_error(response, 400)
        return
    assert response.status_code == 201, response.get_json()
    name = response.get_json()["data"]["name"]
    assert name == shown
    assert not re.search(r"[\x00-\x1f\x7f/\\]", name)


def test_a_file_name_given_as_rfc_5987_is_cleaned_too(client, alice):
    response = client.post(
        "/api/apps/",
        headers=auth(alice),
        data=multipart(
            (b"name=\"file\"; filename*=UTF-8''..%2Fa%0Ab%00%C3%BC.sh", SCRIPT)
        ),
        content_type=MULTIPART,
    )

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["data"]["name"] == "abü.sh"


def _deploy_and_wait(client, token, application, instance):
    response = deploy(client, token, application["id"], instance["id"])
    assert response.status_code == 202, response.get_json()
    return wait_for_status(
        client,
        token,
        response.get_json()["data"]["id"],
        ("running", "finished", "failed"),
    )


def _markers_left(master_vm, marker):
    """Files named like a marker anywhere under the master VM user's home."""
    return sorted(str(path) for path in master_vm.home.rglob(f"{marker}-?"))


# Names that run `touch` if pasted unquoted into a shell. They hold no '/',
# which would make the service keep only the last part; `cd;` moves to the
# home folder first, where the test looks.
SHELL_FILE_NAMES = [
    b"x$(cd;touch {m}-1)y;cd;touch {m}-2;#.sh",
    b"`cd;touch {m}-3`z;cd;touch {m}-4&&$(touch {m}-5)'\\\"|.sh",
]


@pytest.mark.parametrize("pattern", SHELL_FILE_NAMES, ids=["dollar", "backticks"])
def test_a_file_name_built_to_run_commands_deploys_under_a_safe_name_and_runs_none(
    client, alice, master_vm, worker, pattern
):
    marker = f"hostile-{secrets.token_hex(4)}"
    sent = pattern.replace(b"{m}", marker.encode())
    response = client.post(
        "/api/apps/",
        headers=auth(alice),
        data=multipart(file_part(sent, ECHO_ARGUMENTS)),
        content_type=MULTIPART,
    )
    assert response.status_code == 201, response.get_json()
    application = response.get_json()["data"]
    instance = register(client, alice, master_vm)

    deployment = _deploy_and_wait(client, alice, application, instance)

    assert deployment["status"] == "finished", deployment
    folder, _, remote_name = deployment["remote_path"].rpartition("/")
    assert folder == f"lambda-apps/{application['id']}"
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", remote_name), remote_name
    assert master_vm.remote_file(deployment["remote_path"]).read_bytes() == (
        ECHO_ARGUMENTS
    )
    assert _markers_left(master_vm, marker) == []


def test_program_arguments_reach_the_program_verbatim_and_run_nothing(
    client, alice, master_vm, worker
):
    marker = f"hostile-{secrets.token_hex(4)}"
    arguments = [
        f"$(cd;touch {marker}-1)",
        f"`cd;touch {marker}-2`",
        f";cd;touch {marker}-3",
        f"&& touch {marker}-4 #",
        f"| tee {marker}-5",
        f"> {marker}-6",
        "'single' \"double\" \\back",
        "",
        "ünïcødé",
    ]
    application = upload(
        client, alice, ECHO_ARGUMENTS, filename="args.sh", args=shlex.join(arguments)
    )
    assert application["args"] == arguments
    instance = register(client, alice, master_vm)

    deployment = _deploy_and_wait(client, alice, application, instance)

    assert deployment["status"] == "finished", deployment
    output = client.get(
        f"/api/deployments/{deployment['id']}/log/", headers=auth(alice)
    ).get_json()["data"]["log"]
    assert output.rstrip("\n").split("\n") == arguments
    remote = master_vm.remote_file(deployment["remote_path"])
    log = remote.with_name(remote.name + ".log")
    assert log.read_text() == "".join(f"{argument}\n" for argument in arguments)
    assert _markers_left(master_vm, marker) == []


# 5. Bodies of the wrong kind, broken or too big.

CUT_MID_PART = (
    b"--hostile-boundary\r\nContent-Disposition: form-data; "
    b'name="file"; filename="a.sh"\r\n\r\n#!/bin/sh\necho half'
)
CUT_IN_HEADERS = b'--hostile-boundary\r\nContent-Disposition: form-data; name="fi'

# (name, content type, body): none of them carries usable fields.
BROKEN_BODIES = [
    ("text", "text/plain", b"lambda_instance_id=x"),
    ("xml", "application/xml", b"<lambda_instance_id>x</lambda_instance_id>"),
    ("multipart without boundary", "multipart/form-data", CUT_MID_PART),
    ("multipart with empty boundary", "multipart/form-data; boundary=", b"--\r\n"),
    ("multipart cut mid-part", MULTIPART, CUT_MID_PART),
    ("multipart cut in headers", MULTIPART, CUT_IN_HEADERS),
    ("multipart of another boundary", MULTIPART, b"--other\r\n\r\nx\r\n--other--"),
    ("multipart/mixed", "multipart/mixed; boundary=hostile-boundary", CUT_MID_PART),
    ("json cut", "application/json", b'{"lambda_instance_id": "'),
    ("json list", "application/json", b"[1, 2]"),
    ("json string", "application/json", b'"x"'),
    ("json latin-1", "application/json", b'{"name": "\xe9"}'),
    ("json nested deep", "application/json", b"[" * 100_000 + b"]" * 100_000),
    ("json object deep", "application/json", b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
    ("json huge number", "application/json", b'{"ssh_port": ' + b"9" * 5000 + b"}"),
    ("form of bad escapes", "application/x-www-form-urlencoded", b"%zz=%%&=&&"),
]
POST_PATHS = [
    "/api/apps/",
    "/api/lambda-instances/",
    "/api/apps/{application}/deploy/",
    "/api/apps/{application}/withdraw/",
]


@pytest.mark.parametrize(
    "content_type, body",
    [(kind, body) for _, kind, body in BROKEN_BODIES],
    ids=[name for name, _, _ in BROKEN_BODIES],
)
def test_a_body_of_the_wrong_kind_or_broken_is_400_and_stores_nothing(
    app, client, alice, objects, content_type, body
):
    before = artifact_tree(app)

    for path in POST_PATHS:
        response = client.post(
            fill(path, **objects),
            headers={**auth(alice), "Content-Type": content_type},
            data=body,
        )
        json_error(response, 400)

    assert artifact_tree(app) == before


@pytest.mark.parametrize(
    "path, request_arguments, status",
    [
        (
            "/api/apps/",
            {
                "data": {
                    "file": File(SCRIPT, "a.sh"),
                    "description": "d" * 10 * 1024**2,
                },
            },
            # Werkzeug keeps at most 500 KB of a multipart form's text fields.
            413,
        ),
        ("/api/apps/", {"json": {"description": "d" * 10 * 1024**2}}, 400),
        (
            "/api/apps/",
            {"data": {"file": File(SCRIPT, "a.sh"), "type": "t" * 100_000}},
            400,
        ),
        (
            "/api/apps/",
            {"data": {"file": File(SCRIPT, "a.sh"), "args": "a " * 50_000}},
            400,
        ),
        (
            "/api/lambda-instances/",
            {"data": {"name": "n" * 100_000, "master_host": "h", "ssh_user": "u"}},
            400,
        ),
        (
            "/api/lambda-instances/",
            {"json": {"name": "n" * 100_000, "master_host": "h", "ssh_user": "u"}},
            400,
        ),
        (
            "/api/lambda-instances/",
            {
                "data": {"name": "n", "master_host": "h" * 100_000, "ssh_user": "u"},
                "content_type": "multipart/form-data",
            },
            400,
        ),
        (
            "/api/lambda-instances/",
            {"json": {"name": "n", "master_host": "h", "ssh_user": "u" * 100_000}},
            400,
        ),
        (
            "/api/lambda-instances/",
            {"json": {"name": "\ud800", "master_host": "h", "ssh_user": "u"}},
            400,
        ),
        (
            "/api/apps/{application}/deploy/",
            {"data": {"lambda_instance_id": "i" * 100_000}},
            404,
        ),
    ],
    ids=[
        "10 MB description",
        "10 MB description as json",
        "100 KB type",
        "50000 arguments",
        "100 KB name",
        "100 KB name as json",
        "100 KB host",
        "100 KB user",
        "lone surrogate",
        "100 KB instance id",
    ],
)
def test_an_oversized_or_unencodable_field_is_a_json_4xx(
    app, client, alice, objects, path, request_arguments, status
):
    before = artifact_tree(app)

    response = client.post(
        fill(path, **objects), headers=auth(alice), **fresh(request_arguments)
    )

    json_error(response, status)
    assert artifact_tree(app) == before


@pytest.mark.parametrize(
    "path, query, status",
    [
        ("/api/apps/", "limit=%FF", 400),
        ("/api/apps/", "limit=1e3", 400),
        ("/api/apps/", "limit=%00", 400),
        ("/api/apps/", "status=queued", 400),
        ("/api/lambda-instances/", "offset=" + "9" * 5000, 400),
        ("/api/lambda-instances/", "name=x", 400),
        ("/api/deployments/", "status=%00", 400),
        ("/api/deployments/", "status=" + "x" * 10_000, 400),
        ("/api/deployments/", "lambda_instance_id=%00", 400),
        # Ids that name nothing filter everything out.
        ("/api/deployments/", "application_id=%ED%A0%80", 200),
        ("/api/deployments/", "application_id=" + "a" * 10_000, 200),
        ("/api/deployments/", "lambda_instance_id=1%3B%20rm%20-rf%20%2F", 200),
    ],
)
def test_a_hostile_query_string_is_a_json_400_or_matches_nothing(
    client, alice, objects, path, query, status
):
    response = client.get(f"{path}?{query}", headers=auth(alice))

    if status == 200:
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["data"]["items"] == []
    else:
        json_error(response, status)
