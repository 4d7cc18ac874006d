"""The worker process: ``python -m workers``, as the Procfile runs it."""

import logging
import os
import signal

from redis import Redis
from rq import Queue, Worker

from app import create_app
from deploy.extensions import db
from deploy.logs import configure_logging
from deploy.models import BUSY_STATUSES, Deployment

log = logging.getLogger(__name__)


class DeploymentWorker(Worker):
    """An RQ worker that never leaves a deployment stuck when its job dies."""

    def handle_work_horse_killed(self, job, retpid, ret_val, rusage):
        # The work horse died without a word (out of memory, SIGKILL); nobody
        # else will tell the deployment, so the parent does.
        cause = "was killed"
        if ret_val and os.WIFSIGNALED(ret_val):
            cause = f"was killed by {signal.Signals(os.WTERMSIG(ret_val)).name}"

        deployment = db.session.get(Deployment, job.args[0]) if job.args else None
        if deployment is not None and deployment.status in BUSY_STATUSES:
            deployment.status = "failed"
            deployment.error = f"The worker running this deployment {cause}; try again."
            db.session.commit()
            log.error("Deployment %s: worker %s", deployment.id, cause)
        db.session.remove()


def main():
    configure_logging()
    app = create_app()
    connection = Redis.from_url(app.config["REDIS_URL"])
    queue = Queue(app.config["RQ_QUEUE"], connection=connection)

    with app.app_context():
        DeploymentWorker([queue], connection=connection).work(with_scheduler=True)


if __name__ == "__main__":
    main()
