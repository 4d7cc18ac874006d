"""The OpenAPI description is a valid document, names every endpoint, and the
live service (gunicorn and a worker from the Procfile) keeps to it for the
requests schemathesis generates from it."""

import collections
import io

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

SCRIPT = b"#!/bin/sh\nsleep 60\n"
# Per operation and kind of data; with the seed fixed, every run sends the same.
MAX_EXAMPLES = 25


@schemathesis.check
def no_internal_error(ctx, response, case):
    """A 500 is a fault of the service. A 503 is not: the description says
    when the queue or a master VM cannot be reached (fuzzed changes of an
    instance's address make that happen), and status_code_conformance
    already refuses any 5xx it does not list."""
    if response.status_code == 500:
        raise AssertionError(f"500 from {case.method} {case.formatted_path}")


CHECKS = [
    no_internal_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]


def documented_operations(schema):
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    return operations


def test_the_description_is_a_valid_openapi_3_document_naming_every_endpoint(
    app, client
):
    response = client.get("/api/openapi.json")

    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.")
    schema = schemathesis.openapi.from_dict(document)
    # Against the OpenAPI 3.0 meta-schema that schemathesis ships.
    schema.validate()

    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") and rule.rule.endswith("/"):
            path = rule.rule.replace("<", "{").replace(">", "}")
            routes |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    described = {
        (operation.method.upper(), operation.path)
        for operation in documented_operations(schema)
    }
    assert described == routes


class Run:
    """Sends generated cases to the live service, and counts what comes back."""

    def __init__(self, base, token):
        self.base = base
        self.headers = {"Authorization": f"Token {token}"}
        self.session = requests.Session()
        self.codes = collections.Counter()
        self.failures = []

    def send(self, case):
        response = case.call(
            base_url=self.base, session=self.session, headers=self.headers, timeout=30
        )
        self.codes[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=self.headers)
        except FailureGroup as failures:
            # Keep going: one run should show every mismatch, not the first.
            self.failures.append(str(failures))

    def explore(self, strategy):
        @given(case=strategy)
        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def explore(case):
            self.send(case)

        explore()


def _seed(base, token, master_vm):
    """An application deployed onto a lambda instance on the test master VM,
    so generated requests meet real objects, not only unknown ids."""
    headers = {"Authorization": f"Token {token}"}
    application = requests.post(
        f"{base}/api/apps/",
        headers=headers,
        files={"file": ("app.sh", io.BytesIO(SCRIPT))},
    ).json()["data"]
    instance = requests.post(
        f"{base}/api/lambda-instances/",
        headers=headers,
        data={
            "name": "contract",
            "master_host": master_vm.address,
            "ssh_port": master_vm.port,
            "ssh_user": master_vm.user,
        },
    ).json()["data"]
    deployment = requests.post(
        f"{base}/api/apps/{application['id']}/deploy/",
        headers=headers,
        data={"lambda_instance_id": instance["id"]},
    ).json()["data"]
    return {
        "application_id": application["id"],
        "instance_id": instance["id"],
        "deployment_id": deployment["id"],
    }


def test_the_live_service_keeps_to_its_description(service, master_vm):
    token = service.new_token("schemathesis")
    schema = schemathesis.openapi.from_url(f"{service.base}/api/openapi.json")
    ids = _seed(service.base, token, master_vm)
    run = Run(service.base, token)
    # Deleting comes last, so the real objects live through the other runs.
    operations = sorted(
        documented_operations(schema),
        key=lambda operation: operation.method == "delete",
    )

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run.explore(operation.as_strategy(generation_mode=mode))

        # The same operation on the seeded objects, the rest generated; the
        # actions name the seeded instance, so they reach its deployment.
        names = {parameter.name for parameter in operation.path_parameters}
        if names:
            fixed = {"path_parameters": {name: ids[name] for name in names}}
            if operation.path.endswith(("deploy/", "stop/", "start/", "withdraw/")):
                fixed |= {
                    "body": {"lambda_instance_id": ids["instance_id"]},
                    "media_type": "application/x-www-form-urlencoded",
                }
            run.explore(operation.as_strategy(**fixed))

    total = sum(run.codes.values())
    print(f"\nschemathesis sent {total} requests: {dict(sorted(run.codes.items()))}")
    assert run.failures == []
    assert total > len(operations) * MAX_EXAMPLES
