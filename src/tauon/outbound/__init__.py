"""Outbound service clients for guests (Redis, MQTT), one set per app generation.

Each protocol's module holds its client side (address parsing, connections, Spin's error mapping);
`limits` the per-app connection bound and the deadlines every wait respects. The host interface modules
(hostif/spin_redis.py, hostif/spin_mqtt.py, executors/legacy_redis.py) check `allowed_outbound_hosts`
first and then call these. The generation's services close them when it retires (swap or stop).

The client libraries load on first use: importing redis-py and paho costs every tauon process a
noticeable part of its start-up, and most apps never call them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from tauon.outbound.limits import MAX_CONNECTIONS

if TYPE_CHECKING:
    from tauon.outbound.mqtt_client import MqttClients
    from tauon.outbound.redis_client import RedisClients

__all__ = ["OutboundServices"]


class OutboundServices:
    def __init__(self, max_connections: dict[str, int] | None = None) -> None:
        """`max_connections`: 'redis' / 'mqtt' -> the runtime config's bound (else limits.py's)."""
        self._limits = max_connections or {}
        self._lock = threading.Lock()
        self._redis: RedisClients | None = None
        self._mqtt: MqttClients | None = None
        self._closed = False

    @property
    def redis(self) -> RedisClients:
        with self._lock:
            if self._redis is None:
                from tauon.outbound.redis_client import RedisClients

                self._redis = RedisClients(self._limits.get("redis", MAX_CONNECTIONS))
                if self._closed:
                    self._redis.close()
            return self._redis

    @property
    def mqtt(self) -> MqttClients:
        with self._lock:
            if self._mqtt is None:
                from tauon.outbound.mqtt_client import MqttClients

                self._mqtt = MqttClients(self._limits.get("mqtt", MAX_CONNECTIONS))
                if self._closed:
                    self._mqtt.close()
            return self._mqtt

    def close(self) -> None:
        """Close every connection a guest still holds (requests past their drain time)."""
        with self._lock:
            self._closed = True
            clients = [c for c in (self._redis, self._mqtt) if c is not None]
        for client in clients:
            client.close()
