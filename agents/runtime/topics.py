"""Create bread's topics on a Kafka cluster from the catalogue (topics.yaml)."""
from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from agents.catalog import Catalog, catalog

log = logging.getLogger(__name__)


async def create_topics(bootstrap: str, replication: int, cat: Catalog | None = None) -> list[str]:
    """Create every declared topic and table changelog that does not exist yet, each with `replication`
    replicas; return the names created."""
    cat = cat or catalog()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(name=name, num_partitions=partitions, replication_factor=replication, topic_configs=settings)
                  for name, partitions, settings in cat.kafka_topics() if name not in existing]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # another `bread` created them meanwhile
        return [t.name for t in wanted]
    finally:
        await admin.close()
