"""The API process's one wiring point: clients built from settings at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from projections.db import make_engine, make_sessionmaker
from vigil.settings import Settings


@dataclass
class Services:
    engine: Engine
    sessions: sessionmaker[Session]
    kafka_admin: AdminClient
    settings: Settings

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        engine = make_engine(settings.database_url, pool_size=5, max_overflow=5)
        return cls(
            engine=engine,
            sessions=make_sessionmaker(engine),
            kafka_admin=AdminClient(
                {"bootstrap.servers": settings.kafka_bootstrap_servers, "socket.timeout.ms": 5000}
            ),
            settings=settings,
        )

    def close(self) -> None:
        self.engine.dispose()
