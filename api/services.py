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
from schemas.reading import GroupOffsets
from schemas.topics import client_settings
from vigil.settings import Settings


@dataclass
class Services:
    engine: Engine
    sessions: sessionmaker[Session]
    kafka_admin: AdminClient
    group_offsets: GroupOffsets
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
            group_offsets=GroupOffsets(settings.kafka_bootstrap_servers),
            settings=settings,
            commands=CommandSender.connect(
                settings.kafka_bootstrap_servers, ack_timeout_s=settings.api_command_ack_timeout_s
            ),
            broadcaster=Broadcaster(queue_size=settings.ws_client_queue_size),
            job_broadcaster=Broadcaster(queue_size=settings.ws_client_queue_size),
            image_links=ImageLinks.from_settings(settings),
            read_your_writes_wait_s=settings.read_your_writes_wait_s,
        )

    def close(self, *, admin_in_use: bool = False) -> None:
        """Close every client, the health checks' Kafka clients in this thread rather than
        wherever the garbage collector happens to run. `admin_in_use`: a health check's thread
        may still be inside them; destroying them under it would crash the process, so they
        are kept for its life."""
        self.broadcaster.close()
        self.job_broadcaster.close()
        self.commands.close()
        if admin_in_use:
            _KEPT.append((self.kafka_admin, self.group_offsets))
        else:
            self.kafka_admin.__exit__(None, None, None)  # the AdminClient's only destroy call
            self.group_offsets.close()
        self.engine.dispose()


# The health checks' clients a check was still inside at shutdown (see Services.close).
_KEPT: list[tuple[AdminClient, GroupOffsets]] = []
