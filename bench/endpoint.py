"""Deploy endpoint throughput under wrk, against a bare Flask form-POST.

    python -m bench.endpoint [--seconds 10] [--connections 8]

The service runs from the Procfile on PostgreSQL with no worker, so every
accepted deployment stays queued: each request therefore names an
(application, lambda instance) pair no earlier request used, or it would be
a 409. wrk sends the spec's form field, url-encoded, on kept-alive
connections; the reference is ``bench/bare_flask.py`` under the same
gunicorn settings, with the same wrk command. Requires ``wrk`` on the PATH
(``apt-get install -y wrk``).
"""

import argparse
import logging
import re
import shutil
import subprocess

from bench.common import Client, Workspace, configure
from tests.live import ROOT, Process
from tests.master_vm import free_port

log = logging.getLogger(__name__)

# Each wrk thread walks its own share of the pairs, so none is sent twice.
_LUA = """
local pairs_list = {%(pairs)s}
local token = "%(token)s"
local next_pair = 0
local share = 0

function setup(thread)
    thread:set("offset", %(share)d * share)
    share = share + 1
end

function init(arguments)
    next_pair = offset + 1
end

function request()
    local pair = pairs_list[(next_pair - 1) %% #pairs_list + 1]
    next_pair = next_pair + 1
    return wrk.format("POST", "/api/apps/" .. pair[1] .. "/deploy/", {
        ["Authorization"] = "Token " .. token,
        ["Content-Type"] = "application/x-www-form-urlencoded",
    }, "lambda_instance_id=" .. pair[2])
end
"""


def run_wrk(base, script, options):
    result = subprocess.run(
        [
            "wrk",
            f"-t{options.threads}",
            f"-c{options.connections}",
            f"-d{options.seconds}s",
            "--latency",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
    )
    output = result.stdout
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed: {result.stderr or output}")
    figures = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "p50": re.search(r"50%\s+(\S+)", output).group(1),
        "p99": re.search(r"99%\s+(\S+)", output).group(1),
    }
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    figures["not_2xx"] = int(failed.group(1)) if failed else 0
    log.debug("wrk:\n%s", output)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--applications", type=int, default=150)
    parser.add_argument("--instances", type=int, default=80)
    options = parser.parse_args()
    configure()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    with Workspace("endpoint") as workspace:
        [master] = workspace.start_masters(1)
        service = workspace.start_service(worker=False)
        token = service.new_token("bench")
        client = Client(service, token)
        applications = [
            client.upload(b"#!/bin/sh\nexit 0\n", name=f"app-{number}.sh")["id"]
            for number in range(options.applications)
        ]
        instances = [
            client.register(master, workspace.deploy_dir, name=f"i{number}")["id"]
            for number in range(options.instances)
        ]
        pairs = [(a, i) for i in instances for a in applications]
        share = len(pairs) // options.threads
        script = workspace.folder / "deploy.lua"
        script.write_text(
            _LUA
            % {
                "pairs": ",".join(f'{{"{a}","{i}"}}' for a, i in pairs),
                "token": token,
                "share": share,
            }
        )

        service_figures = run_wrk(service.base, script, options)
        if service_figures["requests"] > share * options.threads:
            log.warning("wrk ran out of fresh pairs; raise --instances")

        port = free_port("127.0.0.1")
        bare = Process(
            [str(ROOT / ".venv/bin/gunicorn"), "bench.bare_flask:app"],
            {**service.env, "PORT": str(port)},
            workspace.folder / "bare.log",
        )
        try:
            base = f"http://127.0.0.1:{port}"
            while subprocess.run(["curl", "-s", "-o", "/dev/null", base]).returncode:
                pass
            bare_figures = run_wrk(base, script, options)
        finally:
            bare.stop()

    print(
        f"wrk -t{options.threads} -c{options.connections} -d{options.seconds}s, "
        "gunicorn.conf.py for both"
    )
    for name, figures in (
        ("deploy endpoint", service_figures),
        ("bare Flask", bare_figures),
    ):
        print(
            f"{name + ':':17} {figures['rps']:8.1f} req/s, p50 {figures['p50']}, "
            f"p99 {figures['p99']}, {figures['requests']} requests, "
            f"{figures['not_2xx']} not 2xx"
        )
    print(
        f"deploy / bare: {service_figures['rps'] / bare_figures['rps']:.2f}x "
        "(target >= 0.35x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
