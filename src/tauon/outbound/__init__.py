"""Outbound service clients for guests (Redis, MQTT), one set per app generation.

Each protocol's module holds its client side (address parsing, connections, Spin's error mapping);
`limits` the per-app connection bound and the deadlines every wait respects. The host interface modules
(hostif/spin_redis.py, hostif/spin_mqtt.py, executors/legacy_redis.py) check `allowed_outbound_hosts`
first and then call these. The generation's services close them when it retires (swap or stop).
"""

from __future__ import annotations

from tauon.outbound.mqtt_client import MqttClients
from tauon.outbound.redis_client import RedisClients

__all__ = ["OutboundServices"]


class OutboundServices:
    def __init__(self) -> None:
        self.redis = RedisClients()
        self.mqtt = MqttClients()

    def close(self) -> None:
        """Close every connection a guest still holds (requests past their drain time)."""
        self.redis.close()
        self.mqtt.close()
