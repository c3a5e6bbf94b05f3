"""Kubeflow Trainer's TrainJob status endpoint, for a TrainJob trial's process: trainers report
their metrics with Kubeflow's SDK helper (``kubeflow.trainer...utils.update_trainjob_status``),
which POSTs ``{"trainerStatus": {"metrics": [{"name", "value"}], ...}}`` over HTTPS to
``$KUBEFLOW_TRAINER_SERVER_URL``, trusting ``$KUBEFLOW_TRAINER_SERVER_CA_CERT`` and sending the
token in ``$KUBEFLOW_TRAINER_SERVER_TOKEN`` (a file). Each trial gets its own endpoint on the
loopback of the node its process runs on, with a self-signed certificate and a random token;
a request without that token is refused (401). Each accepted update is one observation.

The SDK helper sends at most one update per 5 s and drops (returns False for) any update sent
sooner: a trainer whose last metrics come less than 5 s after its previous update loses them,
unless it waits (docs/optimization-job.md).

:class:`WithTrainerStatus` adds the endpoint to the trial's Katib collector (StdOut lines, files,
Push all still count).
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import queue
import secrets
import ssl
import threading
from pathlib import Path
from typing import Any

from .base import Collector, Observation

SERVER_URL_ENV = "KUBEFLOW_TRAINER_SERVER_URL"
CA_CERT_ENV = "KUBEFLOW_TRAINER_SERVER_CA_CERT"
TOKEN_ENV = "KUBEFLOW_TRAINER_SERVER_TOKEN"


class TrainerStatusEndpoint:
    """An HTTPS endpoint taking TrainJob status updates, for one trial."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.cert, key = folder / "trainer-status-ca.crt", folder / "trainer-status.key"
        self.token_file = folder / "trainer-status-token"
        _write_self_signed(self.cert, key)
        self.token = secrets.token_urlsafe(32)
        self.token_file.write_text(self.token)
        self.token_file.chmod(0o600)
        self.updates: queue.Queue[dict[str, Any]] = queue.Queue()
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                if self.headers.get("Authorization") != f"Bearer {endpoint.token}":
                    self._answer(401, {"error": "unauthorized"})
                    return
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                    status = body["trainerStatus"]
                except (ValueError, KeyError, TypeError):
                    self._answer(400, {"error": "expected a JSON body with trainerStatus"})
                    return
                endpoint.updates.put(status)
                self._answer(200, {})

            def _answer(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # the trial's output stays the trainer's
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}/status"
        threading.Thread(target=self._server.serve_forever, daemon=True, name="trainer-status").start()

    def env(self) -> dict[str, str]:
        return {SERVER_URL_ENV: self.url, CA_CERT_ENV: str(self.cert), TOKEN_ENV: str(self.token_file)}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class WithTrainerStatus(Collector):
    """The trial's Katib collector, plus the TrainJob status endpoint's metrics."""

    def __init__(self, inner: Collector, folder: Path):
        super().__init__(inner.metric_names)
        self.inner, self.folder = inner, folder
        self.katib_path, self.local_path, self.moves_parents = inner.katib_path, inner.local_path, inner.moves_parents
        self.rejected = inner.rejected
        self.endpoint: TrainerStatusEndpoint | None = None

    def prepare(self) -> None:
        self.inner.prepare()
        self.endpoint = TrainerStatusEndpoint(self.folder)

    def env(self) -> dict[str, str]:
        return {**self.inner.env(), **(self.endpoint.env() if self.endpoint is not None else {})}

    def rewrite(self, text: str) -> str:
        return self.inner.rewrite(text)

    def on_line(self, line: str) -> list[Observation]:
        return self.inner.on_line(line)

    def poll(self) -> list[list[Observation]]:
        return self.inner.poll() + self._updates()

    def flush(self) -> list[list[Observation]]:
        return self.inner.flush() + self._updates()

    def close(self) -> None:
        self.inner.close()
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None

    def _updates(self) -> list[list[Observation]]:
        groups = []
        while self.endpoint is not None:
            try:
                status = self.endpoint.updates.get_nowait()
            except queue.Empty:
                break
            group = [o for m in status.get("metrics") or [] if isinstance(m, dict)
                     if (o := self.accept(str(m.get("name")), str(m.get("value")))) is not None]
            if group:
                groups.append(group)
        return groups


def _write_self_signed(cert_path: Path, key_path: Path) -> None:
    """A certificate for 127.0.0.1 that is its own CA (what the trial is told to trust)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "raytune-k8s trainer status")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
