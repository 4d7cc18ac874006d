"""CORS for front-ends on other origins, and the documentation at ``/docs``."""

import re
from html.parser import HTMLParser

import pytest

import config
from app import create_app
from deploy.extensions import db
from tests.conftest import auth

ALLOWED = "https://front.example"
ALSO_ALLOWED = "http://127.0.0.1:3000"
OTHER = "https://elsewhere.example"


@pytest.fixture
def cors_client(app, migrated):
    """A client of an app whose CORS_ORIGINS names two front-ends."""
    settings = config.from_environment(migrated)
    cors_app = create_app(
        settings | {"TESTING": True, "CORS_ORIGINS": [ALLOWED, ALSO_ALLOWED]}
    )
    yield cors_app.test_client()

    with cors_app.app_context():
        db.engine.dispose()


def preflight(client, origin, path="/api/apps/"):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_without_cors_origins_no_origin_is_allowed(client, alice):
    assert preflight(client, ALLOWED).headers.get("Access-Control-Allow-Origin") is None

    response = client.get("/api/apps/", headers={"Origin": ALLOWED, **auth(alice)})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_preflight_from_an_allowed_origin_is_answered(cors_client):
    for origin in (ALLOWED, ALSO_ALLOWED):
        response = preflight(cors_client, origin)

        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == origin
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed


def test_a_preflight_from_another_origin_is_not(cors_client):
    response = preflight(cors_client, OTHER)

    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Headers" not in response.headers


def test_answers_and_errors_carry_the_headers_for_an_allowed_origin(
    cors_client, app, alice
):
    refused = cors_client.get("/api/apps/", headers={"Origin": ALLOWED})
    assert refused.status_code == 401
    assert refused.get_json()["errors"][0]["status"] == 401
    assert refused.headers["Access-Control-Allow-Origin"] == ALLOWED

    missing = cors_client.get(
        "/api/apps/no-such-app/", headers={"Origin": ALLOWED, **auth(alice)}
    )
    assert missing.status_code == 404
    assert missing.headers["Access-Control-Allow-Origin"] == ALLOWED

    # A front-end follows a deployment by the Location the API answers with.
    created = cors_client.post(
        "/api/lambda-instances/",
        data={"name": "c", "master_host": "127.0.0.2", "ssh_user": "lambda"},
        headers={"Origin": ALLOWED, **auth(alice)},
    )
    assert created.status_code == 201
    assert created.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "location" in created.headers["Access-Control-Expose-Headers"].lower()

    other = cors_client.get("/api/apps/", headers={"Origin": OTHER})
    assert other.status_code == 401
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_origins_is_read_from_the_environment():
    origins = config.from_environment({"CORS_ORIGINS": f" {ALLOWED}, ,{OTHER} "})
    assert origins["CORS_ORIGINS"] == [ALLOWED, OTHER]
    assert config.from_environment({})["CORS_ORIGINS"] == []


class Assets(HTMLParser):
    """The scripts, styles and icons an HTML page loads."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])
        if tag == "img" and attrs.get("src"):
            self.urls.append(attrs["src"])


@pytest.mark.parametrize("path", ["/docs", "/"])
def test_pages_load_only_the_services_own_files(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    # The browser itself refuses anything from another site.
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]

    parser = Assets()
    parser.feed(response.get_data(as_text=True))
    assert parser.urls
    for url in parser.urls:
        if url.startswith("data:"):
            continue
        assert re.fullmatch(r"/[A-Za-z0-9/._-]*", url), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.get_data()


def test_the_docs_viewer_is_vendored_with_its_license(client):
    html = client.get("/docs").get_data(as_text=True)
    assert "/web/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert "/web/docs.js" in html

    license_text = client.get("/web/vendor/swagger-ui/LICENSE").get_data(as_text=True)
    assert "Apache License" in license_text

    # The viewer reads the public description, and no token is needed for it.
    description = client.get("/api/openapi.json")
    assert description.status_code == 200
    assert "/api/apps/{application_id}/deploy/" in description.get_json()["paths"]


def test_a_file_outside_the_web_folder_is_not_served(client):
    for path in ("/web/../app.py", "/web/%2e%2e/config.py", "/web/nothing.js"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["errors"][0]["status"] == 404
