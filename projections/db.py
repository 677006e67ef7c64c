"""Engine, sessions and schema migrations for the read models."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str, **kwargs) -> Engine:
    return create_engine(url, pool_pre_ping=True, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Bring the read-model schema to the latest migration."""
    command.upgrade(alembic_config(url), "head")


def reset_read_models(engine: Engine, consumer: str) -> list[str]:
    """Empty every read model and forget `consumer`'s offsets, so it replays from the start.

    Other consumers' offsets are kept. Stop the projector first: a running one still
    holds its positions in memory.
    """
    from sqlalchemy import delete, text

    from projections.tables import Base, ProjectionOffset

    models = [t.name for t in Base.metadata.sorted_tables if t.name != "projection_offsets"]
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(models)} RESTART IDENTITY"))
        connection.execute(delete(ProjectionOffset).where(ProjectionOffset.consumer == consumer))
    return models
