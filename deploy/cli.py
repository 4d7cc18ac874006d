"""Administrator commands: ``flask --app app users ...`` and ``tokens ...``."""

import click
from flask.cli import AppGroup

from deploy.extensions import db
from deploy.models import Token, User, token_digest, utcnow

users = AppGroup("users", help="Manage the service's users.")
tokens = AppGroup("tokens", help="Issue and revoke API tokens.")


def _user_named(name):
    user = db.session.execute(db.select(User).filter_by(name=name)).scalar_one_or_none()
    if user is None:
        raise click.ClickException(f"No user is named {name!r}.")
    return user


@users.command("create")
@click.argument("name")
def create_user(name):
    """Create a user and print their first token on the last line."""
    name = name.strip()
    if not 1 <= len(name) <= 120 or any(ord(char) < 32 for char in name):
        raise click.ClickException(
            "Give the user a name of 1 to 120 printable characters."
        )
    if db.session.execute(db.select(User).filter_by(name=name)).first():
        raise click.ClickException(
            f"A user named {name!r} exists already; "
            f"'flask --app app tokens create {name}' gives them another token."
        )

    user = User(name=name)
    token = user.issue_token()
    db.session.add(user)
    db.session.commit()
    click.echo(f"Created user {name} ({user.id}). Their token, shown only now:")
    click.echo(token)


@users.command("list")
def list_users():
    """List users and how many live tokens each has."""
    for user in db.session.execute(db.select(User).order_by(User.name)).scalars():
        live = sum(1 for token in user.tokens if token.revoked_at is None)
        click.echo(f"{user.id}  {user.name}  {live} token(s)")


@tokens.command("create")
@click.argument("name")
def create_token(name):
    """Issue another token to a user and print it on the last line."""
    user = _user_named(name)
    token = user.issue_token()
    db.session.commit()
    click.echo(f"New token for {user.name}, shown only now:")
    click.echo(token)


@tokens.command("revoke")
@click.argument("token")
def revoke_token(token):
    """Revoke a token; requests that carry it get 401 from now on."""
    record = db.session.execute(
        db.select(Token).filter_by(digest=token_digest(token.strip()))
    ).scalar_one_or_none()
    if record is None:
        raise click.ClickException("No such token.")
    if record.revoked_at is not None:
        click.echo(f"That token of {record.user.name} was revoked already.")
        return
    record.revoked_at = utcnow()
    db.session.commit()
    click.echo(f"Revoked a token of {record.user.name}.")
