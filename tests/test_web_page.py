"""The web page at ``/`` as a user drives it: headless Chromium against gunicorn
and a worker started from the Procfile, deploying onto a real sshd."""

import hashlib
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.live import curl

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
# Headless, and quiet: a test machine reaches nothing but loopback, and
# Chromium's own updates and sync would only wait on the network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCRIPT = b"#!/bin/sh\nexec sleep 300\n"


class Browser:
    """A page in a fresh Chromium profile, with what went wrong in it noted."""

    def __init__(self, context, base):
        self.page = context.new_page()
        self.problems = []
        self.elsewhere = []
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))
        self.page.on("console", self._console)
        self.page.on("request", lambda request: self._request(request, base))

    def _console(self, message):
        if message.type == "error":
            self.problems.append(message.text)

    def _request(self, request, base):
        if not request.url.startswith((base + "/", "data:")):
            self.elsewhere.append(request.url)


@pytest.fixture
def browser(service, tmp_path):
    assert CHROMIUM.exists(), "Chromium is missing: scripts/test installs it"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        # Long enough for a deployment over SSH, short enough to fail soon.
        context.set_default_timeout(30_000)
        yield Browser(context, service.base)
        context.close()


def record_progress(page):
    """Keep every value the upload's progress bar takes, in order."""
    page.evaluate(
        """() => {
            const bar = document.getElementById("upload-progress");
            window.uploadProgress = [bar.value];
            new MutationObserver(() => window.uploadProgress.push(bar.value))
                .observe(bar, {attributes: true, attributeFilter: ["value"]});
        }"""
    )


def processes_in_group(group):
    """The command lines of the processes in a process group, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name in parentheses may hold blanks; what follows
            # it is state, parent, then the process group.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            # A zombie has ended and only waits to be reaped: not running.
            if int(fields[2]) == group and fields[0] != "Z":
                found.append((stat.parent / "cmdline").read_bytes())
        except (OSError, IndexError):
            continue
    return found


def test_a_user_deploys_a_script_through_the_web_page(
    service, master_vm, browser, tmp_path
):
    token = service.new_token("webuser")
    page = browser.page
    status_line = page.get_by_role("status")
    page.goto(service.base + "/")

    # A wrong token is refused with the service's own words.
    page.get_by_label("Token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(status_line).to_have_text("The token is not valid.")
    # Chromium logs that refused request as an error; it was meant.
    browser.problems.clear()

    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#user-name")).to_have_text("webuser")
    expect(page.locator("#ssh-key")).to_contain_text("ssh-ed25519 ")

    script = tmp_path / "sleeper.sh"
    script.write_bytes(SCRIPT)
    record_progress(page)
    page.get_by_label("File (a script").set_input_files(script)
    page.get_by_label("Type", exact=True).select_option("streaming")
    page.get_by_role("button", name="Upload").click()
    expect(status_line).to_have_text(f"Uploaded sleeper.sh ({len(SCRIPT)} bytes).")
    expect(page.locator("#upload-percent")).to_have_text("100%")
    seen = page.evaluate("window.uploadProgress")
    assert seen[0] == 0 and seen[-1] == 100 and seen == sorted(seen), seen

    page.get_by_label("Name", exact=True).fill("web-cluster")
    page.get_by_label("Master VM address").fill(master_vm.address)
    page.get_by_label("SSH port").fill(str(master_vm.port))
    page.get_by_label("SSH user").fill(master_vm.user)
    page.get_by_role("button", name="Register").click()
    expect(status_line).to_have_text("Registered the lambda instance web-cluster.")

    expect(page.get_by_label("Application", exact=True)).to_contain_text("sleeper.sh")
    expect(page.get_by_label("Lambda instance", exact=True)).to_contain_text(
        "web-cluster"
    )
    page.get_by_role("button", name="Deploy", exact=True).click()
    status = page.locator("#deployment-status")
    expect(status).to_have_text(re.compile(r"^(running|failed)$"))
    assert status.inner_text() == "running", page.locator(
        "#deployment-error"
    ).inner_text()
    expect(page.locator("#deployment-steps tr")).not_to_have_count(0)
    expect(page.get_by_role("button", name="Stop")).to_be_enabled()

    deployment_id = page.locator("#deployment-id").inner_text()
    code, body = curl(
        "-H",
        f"Authorization: Token {token}",
        f"{service.base}/api/deployments/{deployment_id}/",
    )
    assert code == 200, body
    deployment = body["data"]
    # The copy's progress shows once the service reports it, and is complete.
    if deployment.get("bytes_total") is not None:
        expect(page.locator("#copy-text")).to_contain_text("(100%)")
    else:
        expect(page.locator("#copy")).to_be_hidden()

    expect(status_line).to_have_text("The deployment of sleeper.sh is running.")
    ARTIFACTS.mkdir(exist_ok=True)
    # From the top, where the sticky status line belongs.
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=ARTIFACTS / "web-deploy.png", full_page=True)

    remote = master_vm.remote_file(deployment["remote_path"])
    assert (
        hashlib.sha256(remote.read_bytes()).digest() == hashlib.sha256(SCRIPT).digest()
    )
    assert b"sleep\x00300\x00" in processes_in_group(deployment["process_id"])

    # The page's own buttons act on the deployment it watches.
    page.get_by_role("button", name="Stop").click()
    expect(status).to_have_text("stopped")
    assert processes_in_group(deployment["process_id"]) == []
    expect(page.get_by_role("button", name="Start")).to_be_enabled()

    # The documentation, one link away, renders from the service's own files
    # (checked here to spare starting the service once more).
    page.get_by_role("link", name="API documentation").click()
    expect(page.get_by_text("Lambda application deploy service").first).to_be_visible()
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    # Swagger UI puts zero-width spaces in long paths to let them wrap.
    paths = [
        text.replace("\u200b", "")
        for text in page.locator(".opblock-summary-path").all_inner_texts()
    ]
    assert "/api/apps/{application_id}/deploy/" in paths, paths

    assert browser.problems == []
    assert browser.elsewhere == []
