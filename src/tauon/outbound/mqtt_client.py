"""Outbound MQTT for guests, as Spin's crates/factor-outbound-mqtt behaves, on paho-mqtt 2.

Why paho-mqtt: it is the Eclipse Foundation's maintained MQTT client for Python, and it can be driven
without its background thread (`loop()` on the caller's thread), which is exactly how Spin drives
rumqttc: the network is only touched inside `publish`, on the guest's own thread.

Spin's behaviour, reproduced:

* `open` parses the address as rumqttc's `MqttOptions::parse_url` does (`mqtt://` or `tcp://`, port
  1883; `mqtts://` or `ssl://`, port 8883, TLS with the system roots; a `client_id` query parameter is
  required; rumqttc's other options are accepted, unknown ones refused): a bad address is
  `invalid-address`. It does not connect.
* `publish` connects on first use (MQTT 3.1.1, the username and password given to `open`, even empty
  ones, and its keep-alive), sends the message and waits as rumqttc's loop does: QoS 0 until the message
  is written, QoS 1 until its PUBACK, QoS 2 until its PUBCOMP. A refused or lost connection is
  `connection-failed(<text>)`; a topic paho refuses (wildcards) is `other(<text>)`.
* The connection closes when the guest drops it or its request ends (Spin drops rumqttc's event loop;
  tauon also sends DISCONNECT).

Credentials are kept in the paho client only: never logged, never part of an error text.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from tauon.outbound.limits import CONNECT_TIMEOUT, MAX_CONNECTIONS, ConnectionLimit, OutboundError, remaining

QOS = {"at-most-once": 0, "at-least-once": 1, "exactly-once": 2}
_SCHEMES = {"mqtt": (1883, False), "tcp": (1883, False), "mqtts": (8883, True), "ssl": (8883, True)}
_INTEGER_OPTIONS = frozenset({
    "keep_alive_secs", "max_incoming_packet_size_bytes", "max_outgoing_packet_size_bytes",
    "request_channel_capacity_num", "max_request_batch_num", "pending_throttle_usecs", "inflight_num",
    "conn_timeout_secs",
})
_LOOP_STEP = 0.5
"""Longest single wait inside paho's loop (the overall wait is bounded by the request deadline)."""


@dataclass(frozen=True, slots=True)
class MqttTarget:
    host: str
    port: int
    tls: bool
    client_id: str
    clean_session: bool
    connect_timeout: float

    @property
    def where(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(address: str) -> MqttTarget:
    """rumqttc's URL form. Raises OutboundError('invalid-address')."""
    try:
        parts = urlsplit(address)
        port = parts.port
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
    except ValueError:
        raise OutboundError("invalid-address") from None
    scheme = _SCHEMES.get(parts.scheme)
    client_id = query.pop("client_id", None)
    if scheme is None or client_id is None:
        raise OutboundError("invalid-address")
    clean = query.pop("clean_session", "true")
    conn_timeout = query.get("conn_timeout_secs", str(CONNECT_TIMEOUT))
    for key, value in query.items():
        if key not in _INTEGER_OPTIONS or not value.isascii() or not value.isdigit():
            raise OutboundError("invalid-address")
    if clean not in ("true", "false"):
        raise OutboundError("invalid-address")
    default_port, tls = scheme
    return MqttTarget(host=parts.hostname or "", port=port if port is not None else default_port, tls=tls,
                      client_id=client_id, clean_session=clean == "true",
                      connect_timeout=min(CONNECT_TIMEOUT, float(conn_timeout)))


class MqttConnection:
    """One guest connection; used by the guest's thread, except `close` from a retiring generation."""

    def __init__(self, target: MqttTarget, username: str, password: str, keep_alive: int,
                 limit: ConnectionLimit) -> None:
        self.target = target
        self._limit = limit
        self._keep_alive = keep_alive
        self._owner = threading.get_ident()
        self._closed = False
        self._connack: str | None = None
        self._credentials = (username, password)
        self._client = self._new_client()
        self._connected = False

    def _new_client(self) -> paho.Client:
        """A fresh paho client: one per connection attempt (paho cannot reconnect a failed one with
        new timeouts)."""
        target = self.target
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=target.client_id,
                             clean_session=target.clean_session, protocol=MQTTProtocolVersion.MQTTv311)
        client.username_pw_set(*self._credentials)
        if target.tls:
            client.tls_set()
        client.on_connect = self._on_connect
        return client

    def _on_connect(self, client: paho.Client, userdata: object, flags: object, reason: object,
                    properties: object) -> None:
        failure = getattr(reason, "is_failure", False)
        self._connack = f"Connection refused: {reason}" if failure else ""

    def _connect(self, deadline: float) -> None:
        timeout = min(self.target.connect_timeout, remaining(deadline))
        if timeout <= 0:
            raise OutboundError("connection-failed", f"no time left to connect to {self.target.where}")
        self._client = self._new_client()
        self._client.connect_timeout = timeout
        self._connack = None
        try:
            self._client.connect(self.target.host, self.target.port, keepalive=self._keep_alive)
        except (OSError, ValueError) as exc:
            raise OutboundError("connection-failed", f"I/O: {exc}") from None
        try:
            self._wait(lambda: self._connack is not None, deadline, "CONNACK")
        except OutboundError as exc:
            raise OutboundError("connection-failed", self._connack or exc.message) from None
        if self._connack:
            self._drop()
            raise OutboundError("connection-failed", self._connack)
        self._connected = True

    def _wait(self, done: object, deadline: float, what: str) -> None:
        """Run paho's loop on this thread until `done()` (or the request's time runs out)."""
        assert callable(done)
        while not done():
            left = remaining(deadline)
            if left <= 0:
                self._drop()
                raise OutboundError("connection-failed", f"timed out waiting for {what} from "
                                                         f"{self.target.where}")
            rc = self._client.loop(timeout=min(_LOOP_STEP, left))
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._drop()
                raise OutboundError("connection-failed", paho.error_string(rc))

    def publish(self, deadline: float, topic: str, payload: bytes, qos: str) -> None:
        if self._closed:
            raise OutboundError("other", "the connection was closed")
        if not self._connected:
            self._connect(deadline)
        try:
            info = self._client.publish(topic, payload, qos=QOS[qos])
        except ValueError as exc:  # e.g. a wildcard in the topic
            raise OutboundError("other", str(exc)) from None
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
            self._drop()
            raise OutboundError("connection-failed", paho.error_string(info.rc))
        self._wait(info.is_published, deadline, "the broker's acknowledgement")

    def _drop(self) -> None:
        """After a failure: the next publish connects again (as rumqttc's next poll would)."""
        self._connected = False
        sock = self._client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if threading.get_ident() == self._owner:
                if self._connected:
                    self._client.disconnect()
                self._drop()
            else:  # the generation is retiring while the guest runs: make its pending wait fail
                sock = self._client.socket()
                if isinstance(sock, socket.socket):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
        finally:
            self._limit.release(self)


class MqttClients:
    """An app generation's outbound MQTT: opens guest connections under the app's bound."""

    def __init__(self, limit: int = MAX_CONNECTIONS) -> None:
        self.limit = ConnectionLimit(limit)

    def open(self, address: str, username: str, password: str, keep_alive: int,
             deadline: float) -> MqttConnection:
        """Raises OutboundError: too-many-connections, invalid-address."""
        target = parse_address(address)
        conn = MqttConnection(target, username, password, keep_alive, self.limit)
        if not self.limit.acquire(conn, deadline):
            raise OutboundError("too-many-connections")
        return conn

    def close(self) -> None:
        self.limit.close()
