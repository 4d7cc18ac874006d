"""Database records: users and their tokens, applications, lambda instances
and the deployments of one onto the other."""

import hashlib
import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, Index, TypeDecorator

from deploy.extensions import db

# A deployment in one of these statuses has a job on the queue or running, so a
# second request for the same application and instance must wait for it.
BUSY_STATUSES = ("queued", "copying", "starting", "stopping", "withdrawing")
DEPLOYMENT_STATUSES = BUSY_STATUSES + (
    "running",
    "finished",
    "failed",
    "stopped",
    "withdrawn",
)
_BUSY_CONDITION = "status IN ({})".format(", ".join(f"'{s}'" for s in BUSY_STATUSES))
INSTANCE_STATUSES = ("started", "stopped")
APPLICATION_TYPES = ("batch", "streaming")
RUNTIMES = ("exec", "flink")


def utcnow():
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator):
    """A moment in UTC, read back with its time zone on every database.

    SQLite keeps no zone and hands back naive values; they were written in
    UTC, so that is what they are given back.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def new_id():
    return str(uuid.uuid4())


def token_digest(token):
    """Return the stored form of a token.

    Tokens are 256 random bits, so a plain SHA-256 is enough to make a stolen
    table useless; a slow password hash would only slow every request.
    """
    return hashlib.sha256(token.encode()).hexdigest()


class User(db.Model):
    __tablename__ = "users"

    id = db.Column(db.String(36), primary_key=True, default=new_id)
    name = db.Column(db.String(120), nullable=False, unique=True)
    # The user's id at the identity service (AUTH_URL), for users it vouched for.
    external_id = db.Column(db.String(255), unique=True)
    created_at = db.Column(UtcDateTime, nullable=False, default=utcnow)

    tokens = db.relationship("Token", back_populates="user", cascade="all")

    def issue_token(self):
        """Make a new token for this user and return it in clear, once."""
        token = secrets.token_urlsafe(32)
        self.tokens.append(Token(digest=token_digest(token)))
        return token


class Token(db.Model):
    __tablename__ = "tokens"

    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.ForeignKey("users.id"), nullable=False, index=True)
    digest = db.Column(db.String(64), nullable=False, unique=True)
    created_at = db.Column(UtcDateTime, nullable=False, default=utcnow)
    revoked_at = db.Column(UtcDateTime)

    user = db.relationship("User", back_populates="tokens")


class Application(db.Model):
    __tablename__ = "applications"

    id = db.Column(db.String(36), primary_key=True, default=new_id)
    owner_id = db.Column(db.ForeignKey("users.id"), nullable=False, index=True)
    name = db.Column(db.String(255), nullable=False)
    description = db.Column(db.Text, nullable=False, default="")
    type = db.Column(db.String(16), nullable=False, default="batch")
    runtime = db.Column(db.String(16), nullable=False)
    digest = db.Column(db.String(64), nullable=False)
    size = db.Column(db.BigInteger, nullable=False)
    # Program arguments, each passed to the application as one word.
    args = db.Column(db.JSON, nullable=False, default=list)
    created_at = db.Column(UtcDateTime, nullable=False, default=utcnow)


class LambdaInstance(db.Model):
    __tablename__ = "lambda_instances"

    id = db.Column(db.String(36), primary_key=True, default=new_id)
    owner_id = db.Column(db.ForeignKey("users.id"), nullable=False, index=True)
    name = db.Column(db.String(255), nullable=False)
    master_host = db.Column(db.String(255), nullable=False)
    ssh_port = db.Column(db.Integer, nullable=False, default=22)
    ssh_user = db.Column(db.String(64), nullable=False)
    host_key = db.Column(db.Text)
    deploy_dir = db.Column(db.String(1024), nullable=False)
    status = db.Column(db.String(16), nullable=False, default="started")
    flink_command = db.Column(db.String(1024), nullable=False, default="flink")
    # Where the master VM itself reaches Flink's REST API; the service gets
    # there through the SSH connection, so it need not be reachable otherwise.
    flink_rest_url = db.Column(
        db.String(255), nullable=False, default="http://127.0.0.1:8081"
    )
    created_at = db.Column(UtcDateTime, nullable=False, default=utcnow)


class Deployment(db.Model):
    __tablename__ = "deployments"

    id = db.Column(db.String(36), primary_key=True, default=new_id)
    owner_id = db.Column(db.ForeignKey("users.id"), nullable=False, index=True)
    application_id = db.Column(
        db.ForeignKey("applications.id"), nullable=False, index=True
    )
    lambda_instance_id = db.Column(
        db.ForeignKey("lambda_instances.id"), nullable=False, index=True
    )
    status = db.Column(db.String(16), nullable=False, default="queued")
    remote_path = db.Column(db.String(2048))
    process_id = db.Column(db.Integer)
    flink_job_id = db.Column(db.String(32))
    job_id = db.Column(db.String(64))
    checked_at = db.Column(UtcDateTime)
    # The status a stop, start or withdraw returns to if it changes nothing.
    resume_status = db.Column(db.String(16))
    # Copy progress, while and after the artifact goes to the master VM.
    bytes_sent = db.Column(db.BigInteger)
    bytes_total = db.Column(db.BigInteger)
    error = db.Column(db.Text)
    created_at = db.Column(UtcDateTime, nullable=False, default=utcnow)
    updated_at = db.Column(UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow)

    application = db.relationship("Application")
    lambda_instance = db.relationship("LambdaInstance")
    steps = db.relationship(
        "DeploymentStep",
        back_populates="deployment",
        order_by="DeploymentStep.id",
        cascade="all, delete-orphan",
    )

    # The database, not a check in Python, keeps one busy deployment per pair:
    # two web processes racing on the same request cannot both insert.
    __table_args__ = (
        Index(
            "uq_deployments_busy_pair",
            "application_id",
            "lambda_instance_id",
            unique=True,
            sqlite_where=db.text(_BUSY_CONDITION),
            postgresql_where=db.text(_BUSY_CONDITION),
        ),
    )


class DeploymentStep(db.Model):
    __tablename__ = "deployment_steps"

    id = db.Column(db.Integer, primary_key=True)
    deployment_id = db.Column(
        db.ForeignKey("deployments.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name = db.Column(db.String(32), nullable=False)
    status = db.Column(db.String(16), nullable=False, default="running")
    output = db.Column(db.Text, nullable=False, default="")
    started_at = db.Column(UtcDateTime, nullable=False, default=utcnow)
    finished_at = db.Column(UtcDateTime)

    deployment = db.relationship("Deployment", back_populates="steps")
