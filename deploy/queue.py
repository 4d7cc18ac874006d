"""The RQ queue between the web process and the worker."""

import logging

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Callback, Queue

from deploy.errors import ServiceUnavailable

log = logging.getLogger(__name__)


def get_queue():
    queue = current_app.extensions.get("rq_queue")
    if queue is None:
        connection = Redis.from_url(
            current_app.config["REDIS_URL"],
            socket_connect_timeout=2,
            socket_timeout=5,
            health_check_interval=30,
        )
        queue = Queue(current_app.config["RQ_QUEUE"], connection=connection)
        current_app.extensions["rq_queue"] = queue
    return queue


def enqueue(function, deployment_id):
    """Put a deployment's job on the queue and return the job.

    :raise ServiceUnavailable: Redis did not take the job.
    """
    timeout = current_app.config["JOB_TIMEOUT"]
    try:
        return get_queue().enqueue(
            function,
            deployment_id,
            job_timeout=timeout,
            result_ttl=24 * 3600,
            failure_ttl=7 * 24 * 3600,
            on_failure=Callback("workers.jobs.settle_failed_job"),
        )
    except RedisError as error:
        log.error("The queue refused a job for deployment %s: %s", deployment_id, error)
        raise ServiceUnavailable(
            "The job queue is unavailable; nothing was deployed. Try again shortly."
        ) from None
