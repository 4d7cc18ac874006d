"""The worker process: ``python -m workers``, as the Procfile runs it."""

import logging
import os
import signal

from redis import Redis
from rq import Queue, Worker

from app import create_app
from deploy.logs import configure_logging
from workers.jobs import settle

log = logging.getLogger(__name__)


class DeploymentWorker(Worker):
    """An RQ worker that never leaves a deployment stuck when its job dies."""

    def handle_work_horse_killed(self, job, retpid, ret_val, rusage):
        # The work horse died without a word (out of memory, SIGKILL); nobody
        # else will tell the deployment, so the parent does.
        cause = "was killed"
        if ret_val and os.WIFSIGNALED(ret_val):
            cause = f"was killed by {signal.Signals(os.WTERMSIG(ret_val)).name}"

        if job.args:
            settle(
                job.args[0], f"The worker running this deployment {cause}; try again."
            )


def main():
    configure_logging()
    app = create_app()
    connection = Redis.from_url(app.config["REDIS_URL"])
    queue = Queue(app.config["RQ_QUEUE"], connection=connection)

    with app.app_context():
        # A job whose worker died as a whole is found by another worker's
        # maintenance once the job's heartbeat lapses (10 s of monitoring plus
        # RQ's fixed 60 s margin). An idle worker runs maintenance only between
        # waits for a job, which last its TTL less 15 s; RQ's defaults would
        # take over ten minutes in all.
        worker = DeploymentWorker(
            [queue],
            connection=connection,
            maintenance_interval=30,
            job_monitoring_interval=10,
            worker_ttl=45,
        )
        worker.work(with_scheduler=True)


if __name__ == "__main__":
    main()
