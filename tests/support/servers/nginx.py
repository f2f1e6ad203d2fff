"""A real nginx (Debian's nginx-light) on a free loopback port answering every GET with `pong`, its
config, logs and temp files in a temp dir: a native keep-alive upstream, fast enough that a client's
own cost per request (a new connection, a TLS handshake) shows rather than the server's.

`cert` and `key` make it serve HTTPS. It runs in the foreground (`daemon off`) as the unprivileged
user, one worker process, and is stopped by the master's PID.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from support.servers import ServerProcess, find_binary, free_port, give_to_unprivileged, port_open

CONFIG = """\
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    default_type text/plain;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port}{ssl};
        {tls}
        location / {{ return 200 "pong"; }}
    }}
}}
"""


class NginxServer:
    def __init__(self, root: Path, *, cert: Path | None = None, key: Path | None = None) -> None:
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        self.scheme = "https" if cert is not None else "http"
        tls = ""
        if cert is not None and key is not None:
            # copies the unprivileged server may read, whoever owns the originals
            (root / "cert.pem").write_bytes(cert.read_bytes())
            (root / "key.pem").write_bytes(key.read_bytes())
            tls = f"ssl_certificate {root}/cert.pem; ssl_certificate_key {root}/key.pem;"
        config = root / "nginx.conf"
        config.write_text(CONFIG.format(root=root, port=self.port, ssl=" ssl" if tls else "", tls=tls))
        user = give_to_unprivileged(root)
        # -e: the error log before the config is read (else /var/log/nginx, which it may not write)
        argv = [find_binary("nginx", "/usr/sbin/nginx"), "-p", str(root), "-c", str(config),
                "-e", str(root / "error.log")]
        self.process = ServerProcess("nginx", argv, root / "nginx.log", lambda: port_open(self.port),
                                     user=user)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.stop()


@contextlib.contextmanager
def run_nginx(root: Path, *, cert: Path | None = None, key: Path | None = None) -> Iterator[NginxServer]:
    server = NginxServer(root, cert=cert, key=key)
    server.start()
    try:
        yield server
    finally:
        server.stop()
