"""The API process's one wiring point: clients built from settings at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.broadcast import Broadcaster
from api.commands import CommandSender
from api.images import ImageLinks
from projections.db import make_engine, make_sessionmaker
from schemas.topics import client_settings
from vigil.settings import Settings


@dataclass
class Services:
    engine: Engine
    sessions: sessionmaker[Session]
    kafka_admin: AdminClient
    settings: Settings
    commands: CommandSender
    broadcaster: Broadcaster
    job_broadcaster: Broadcaster
    image_links: ImageLinks
    # How long a write waits for the read model to show its outcome before answering 202.
    read_your_writes_wait_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        engine = make_engine(settings.database_url, pool_size=5, max_overflow=5)
        return cls(
            engine=engine,
            sessions=make_sessionmaker(engine),
            kafka_admin=AdminClient(
                client_settings(settings.kafka_bootstrap_servers, {"socket.timeout.ms": 5000})
            ),
            settings=settings,
            commands=CommandSender.connect(
                settings.kafka_bootstrap_servers, ack_timeout_s=settings.api_command_ack_timeout_s
            ),
            broadcaster=Broadcaster(queue_size=settings.ws_client_queue_size),
            job_broadcaster=Broadcaster(queue_size=settings.ws_client_queue_size),
            image_links=ImageLinks.from_settings(settings),
            read_your_writes_wait_s=settings.read_your_writes_wait_s,
        )

    def close(self) -> None:
        self.broadcaster.close()
        self.job_broadcaster.close()
        self.commands.close()
        self.engine.dispose()
