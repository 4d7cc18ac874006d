"""~okeanos tokens checked with an identity service. The real Astakos cannot
be reached from here, so a small stand-in speaks its Keystone-v2 protocol."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import config
from app import create_app
from tests.conftest import auth

OKEANOS_TOKEN = "tJ3b3f32f23ceuqdoS_TH7m0d6yxmlWL1r2ralKcttY"


class IdentityService:
    """Answers POST /tokens for the tokens it knows, and counts the asks."""

    def __init__(self, users):
        self.users = users
        self.asked = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                token = body["auth"]["token"]["id"]
                service.asked.append((self.path, token))
                user = service.users.get(token)
                if self.path != "/identity/v2.0/tokens" or user is None:
                    self.send_response(401)
                    self.end_headers()
                    return
                answer = json.dumps(
                    {"access": {"token": {"id": token}, "user": user}}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *arguments):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/identity/v2.0"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def identity():
    service = IdentityService(
        {OKEANOS_TOKEN: {"id": "4a8fd2c0-astakos-user", "name": "maria@grnet.gr"}}
    )
    yield service
    service.stop()


def client_with(migrated, **settings):
    app = create_app(config.from_environment(migrated) | {"TESTING": True, **settings})
    return app.test_client()


def test_an_okeanos_token_names_its_user_who_is_made_once(migrated, app, identity):
    client = client_with(migrated, AUTH_URL=identity.url)

    first = client.get("/api/authenticate/", headers=auth(OKEANOS_TOKEN))
    second = client.get("/api/apps/", headers=auth(OKEANOS_TOKEN))

    assert first.status_code == 200, first.get_json()
    assert first.get_json()["data"]["name"] == "maria@grnet.gr"
    assert second.status_code == 200
    # The second request came from the cache, under the token's digest.
    assert identity.asked == [("/identity/v2.0/tokens", OKEANOS_TOKEN)]


def test_the_cache_is_bounded_in_time(migrated, app, identity):
    client = client_with(migrated, AUTH_URL=identity.url, AUTH_CACHE_SECONDS=1)

    client.get("/api/authenticate/", headers=auth(OKEANOS_TOKEN))
    time.sleep(1.2)
    again = client.get("/api/authenticate/", headers=auth(OKEANOS_TOKEN))

    assert again.status_code == 200
    assert len(identity.asked) == 2


def test_users_from_the_identity_service_own_their_objects(
    migrated, app, alice, identity, master_vm
):
    client = client_with(migrated, AUTH_URL=identity.url)
    response = client.post(
        "/api/lambda-instances/",
        headers=auth(OKEANOS_TOKEN),
        data={"name": "c", "master_host": master_vm.address, "ssh_user": "u"},
    )
    assert response.status_code == 201
    instance_id = response.get_json()["data"]["id"]

    alices_view = client.get(
        f"/api/lambda-instances/{instance_id}/", headers=auth(alice)
    )
    assert alices_view.status_code == 404


def test_an_unknown_token_is_401_and_local_tokens_keep_working(
    migrated, app, alice, identity
):
    client = client_with(migrated, AUTH_URL=identity.url)

    unknown = client.get("/api/authenticate/", headers=auth("not-known-anywhere"))
    local = client.get("/api/authenticate/", headers=auth(alice))

    assert unknown.status_code == 401
    assert local.status_code == 200
    assert local.get_json()["data"]["name"] == "alice"
    assert [token for _, token in identity.asked] == ["not-known-anywhere"]


def test_a_revoked_local_token_is_not_asked_of_the_identity_service(
    migrated, app, alice, identity
):
    app.test_cli_runner().invoke(args=["tokens", "revoke", alice])
    client = client_with(migrated, AUTH_URL=identity.url)

    response = client.get("/api/authenticate/", headers=auth(alice))

    assert response.status_code == 401
    assert identity.asked == []


def test_an_identity_service_that_is_down_is_503_not_401(
    migrated, app, alice, identity
):
    url = identity.url
    identity.stop()
    client = client_with(migrated, AUTH_URL=url, AUTH_TIMEOUT=2)

    response = client.get("/api/authenticate/", headers=auth(OKEANOS_TOKEN))

    assert response.status_code == 503
    assert "identity service" in response.get_json()["errors"][0]["detail"]
    assert client.get("/api/authenticate/", headers=auth(alice)).status_code == 200


def test_without_auth_url_only_local_tokens_count(migrated, app, identity):
    client = client_with(migrated, AUTH_URL=None)

    response = client.get("/api/authenticate/", headers=auth(OKEANOS_TOKEN))

    assert response.status_code == 401
    assert identity.asked == []
