"""The Flink runtime on a real Flink 2.3.0 cluster on the master VM: the
spec's curl deploys a jar, and Flink's own REST API says what runs."""

import shlex
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.flink_cluster import FlinkCluster, build_jobs
from tests.live import curl, spec_curl, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def flink():
    """A Flink cluster the master VM's user can submit to, and the test jars."""
    # The master VM's user must reach the jars and the client wrapper, which
    # pytest's private temporary folders would hide.
    folder = Path(tempfile.mkdtemp(prefix="flink-cluster-"))
    folder.chmod(0o755)
    jars = build_jobs(folder)
    cluster = FlinkCluster(folder).start()
    yield cluster, jars

    cluster.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def flink_service(service, flink, master_vm):
    """A user with a lambda instance whose master VM runs Flink."""
    cluster, jars = flink
    token = service.new_token("flink-user")
    header = f"Authorization: Token {token}"
    code, registered = curl(
        "-H",
        header,
        "-F",
        "name=flink cluster",
        "-F",
        f"master_host={master_vm.address}",
        "-F",
        f"ssh_port={master_vm.port}",
        "-F",
        f"ssh_user={master_vm.user}",
        "-F",
        f"flink_command={cluster.flink_command}",
        "-F",
        f"flink_rest_url={cluster.rest_url}",
        f"{service.base}/api/lambda-instances/",
    )
    assert code == 201, registered
    yield token, header, registered["data"]["id"]

    for job in cluster.jobs():
        if job["state"] in ("RUNNING", "CREATED", "INITIALIZING"):
            cluster.cancel_job(job["jid"])


def upload_jar(service, header, jar, *fields):
    arguments = ["-H", header, "-F", f"file=@{jar}"]
    for field in fields:
        # --form-string: curl would read ';' and '@' in a -F value itself.
        arguments += ["--form-string", field]
    code, uploaded = curl(*arguments, f"{service.base}/api/apps/")
    assert code == 201, uploaded
    assert uploaded["data"]["runtime"] == "flink"
    return uploaded["data"]["id"]


def act(service, header, action, application_id, instance_id):
    return curl(
        "-X",
        "POST",
        "-H",
        header,
        "-F",
        f"lambda_instance_id={instance_id}",
        f"{service.base}/api/apps/{application_id}/{action}/",
    )


def test_a_streaming_job_runs_stops_starts_and_is_withdrawn(
    service, flink, flink_service, master_vm
):
    cluster, jars = flink
    token, header, instance_id = flink_service
    application_id = upload_jar(
        service, header, jars["streaming"], "type=streaming", "args=clicks counter"
    )

    accepted = spec_curl(
        token, instance_id, f"{service.base}/api/apps/{application_id}/deploy/"
    )
    assert accepted["status"]["code"] == 202
    url = accepted["data"]["url"]
    deployment = wait_until(service.base, token, url, ("running", "failed"))
    assert deployment["status"] == "running", deployment
    first_job = deployment["flink_job_id"]
    assert cluster.job_state(first_job) == "RUNNING"
    assert "JobID" in deployment["steps"][-1]["output"]
    jar_on_master = master_vm.remote_file(deployment["remote_path"])
    assert jar_on_master.read_bytes() == jars["streaming"].read_bytes()

    code, body = act(service, header, "stop", application_id, instance_id)
    assert code == 202, body
    wait_until(service.base, token, url, ("stopped",))
    cluster.wait_for_state(first_job, "CANCELED", timeout=30)

    code, body = act(service, header, "start", application_id, instance_id)
    assert code == 202, body
    restarted = wait_until(service.base, token, url, ("running", "failed"))
    assert restarted["status"] == "running", restarted
    second_job = restarted["flink_job_id"]
    assert second_job != first_job
    assert cluster.job_state(second_job) == "RUNNING"

    code, log = curl("-H", header, f"{service.base}{url}log/")
    assert code == 200, log
    assert second_job in log["data"]["log"]

    code, body = act(service, header, "withdraw", application_id, instance_id)
    assert code == 202, body
    withdrawn = wait_until(service.base, token, url, ("withdrawn", "failed"))
    assert withdrawn["status"] == "withdrawn", withdrawn
    cluster.wait_for_state(second_job, "CANCELED", timeout=30)
    assert not jar_on_master.exists()


def test_a_batch_job_ends_finished_and_gets_its_arguments_quoted(
    service, flink, flink_service, master_vm
):
    cluster, jars = flink
    token, header, instance_id = flink_service
    # The cluster writes the result as its own user: give it a folder whose
    # name a shell would split and expand.
    results = Path(tempfile.mkdtemp(prefix="batch results $(x) "))
    results.chmod(0o777)
    output = results / "sum; echo hi.txt"
    application_id = upload_jar(
        service, header, jars["batch"], "type=batch", f"args={shlex.quote(str(output))}"
    )

    accepted = spec_curl(
        token, instance_id, f"{service.base}/api/apps/{application_id}/deploy/"
    )
    deployment = wait_until(
        service.base, token, accepted["data"]["url"], ("finished", "failed")
    )

    assert deployment["status"] == "finished", deployment
    assert cluster.job_state(deployment["flink_job_id"]) == "FINISHED"
    assert output.read_text().strip() == "sum=500500"
    shutil.rmtree(results)


def test_a_failing_batch_job_ends_failed_with_flinks_reason(
    service, flink, flink_service
):
    cluster, jars = flink
    token, header, instance_id = flink_service
    application_id = upload_jar(service, header, jars["batch"], "args=fail")

    accepted = spec_curl(
        token, instance_id, f"{service.base}/api/apps/{application_id}/deploy/"
    )
    deployment = wait_until(
        service.base, token, accepted["data"]["url"], ("finished", "failed")
    )

    assert deployment["status"] == "failed", deployment
    assert cluster.job_state(deployment["flink_job_id"]) == "FAILED"
    assert "FAILED" in deployment["error"]
    assert "asked to fail" in deployment["error"]


def test_a_wrong_rest_address_still_lets_the_job_be_withdrawn_and_fixed(
    service, flink, flink_service, master_vm
):
    cluster, jars = flink
    token, header, instance_id = flink_service
    code, _ = curl(
        "-X",
        "PATCH",
        "-H",
        header,
        "-F",
        "flink_rest_url=http://127.0.0.1:1",
        f"{service.base}/api/lambda-instances/{instance_id}/",
    )
    assert code == 200
    application_id = upload_jar(service, header, jars["streaming"])

    accepted = spec_curl(
        token, instance_id, f"{service.base}/api/apps/{application_id}/deploy/"
    )
    url = accepted["data"]["url"]
    failed = wait_until(service.base, token, url, ("running", "failed"))
    assert failed["status"] == "failed", failed
    assert "127.0.0.1:1" in failed["error"]
    # The job was submitted all the same, and the record kept its id.
    assert cluster.job_state(failed["flink_job_id"]) == "RUNNING"

    code, body = act(service, header, "withdraw", application_id, instance_id)
    assert code == 202, body
    withdrawn = wait_until(service.base, token, url, ("withdrawn", "failed"))
    assert withdrawn["status"] == "withdrawn", withdrawn
    cluster.wait_for_state(failed["flink_job_id"], "CANCELED", timeout=30)
