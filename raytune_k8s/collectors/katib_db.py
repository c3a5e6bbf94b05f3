"""Katib's DB manager as a Push trial's process sees it: ``kubeflow.katib.report_metrics`` (Katib's
SDK) sends each observation over gRPC to ``katib-db-manager.kubeflow:6789``. For the trial's
process, gRPC's own proxy setting (``grpc_proxy``, which only gRPC reads) points at a small HTTP
CONNECT proxy here that hands every connection to a local gRPC server implementing the DB
manager's ``ReportObservationLog``; each request becomes one line of the Push collector's file.
Katib's call and its default address stay as they are in the trial's code. Every other address
the trial's gRPC asks the proxy for is connected to as asked.

Outside a pod, Katib's ``report_metrics`` first reads the pod's namespace file; the trial's
``PYTHONPATH`` starts with ``outside_pod/``, whose ``sitecustomize`` gives that lookup the
namespace where the file is missing (and changes nothing in a pod).

Started only when Katib's SDK is installed (its generated gRPC code is the server's interface).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any


#: The host of Katib's DB manager (``katib-db-manager.kubeflow``, and any namespace's).
KATIB_DB_HOST = "katib-db-manager"


class KatibDBStandIn:
    """The gRPC server and the CONNECT proxy in front of it, for one trial."""

    def __init__(self, push_file: Path):
        import grpc
        from kubeflow.katib import katib_api_pb2, katib_api_pb2_grpc

        self.push_file = push_file
        self._lock = threading.Lock()
        outer = self

        class Servicer(katib_api_pb2_grpc.DBManagerServicer):
            def ReportObservationLog(self, request: Any, context: Any) -> Any:
                outer._record(request)
                return katib_api_pb2.ReportObservationLogReply()  # type: ignore[attr-defined]

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        katib_api_pb2_grpc.add_DBManagerServicer_to_server(Servicer(), self._server)
        self._grpc_port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.proxy_port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        #: every address the trial's gRPC asked the proxy for, in order
        self.tunnelled: list[str] = []
        threading.Thread(target=self._accept, daemon=True, name="katib-db-proxy").start()

    def env(self) -> dict[str, str]:
        """For the trial's process: gRPC reaches Katib's DB manager through the proxy, and
        Katib's namespace lookup works outside a pod (``outside_pod/sitecustomize.py``)."""
        return {"grpc_proxy": f"http://127.0.0.1:{self.proxy_port}", "PYTHONPATH": str(Path(__file__).with_name("outside_pod"))}

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self._server.stop(grace=1)

    def _record(self, request: Any) -> None:
        values: dict[str, Any] = {}
        for log in request.observation_log.metric_logs:
            try:
                values[log.metric.name] = float(log.metric.value)
            except ValueError:
                values[log.metric.name] = log.metric.value
        with self._lock, open(self.push_file, "a") as f:
            f.write(json.dumps({**values, "timestamp": time.time()}) + "\n")

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        """Answer the CONNECT, then pass bytes both ways: to the stand-in when Katib's DB
        manager is asked for, else to the address asked for (the trial's other gRPC traffic
        goes where it went without the proxy)."""
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        request, rest = head.split(b"\r\n\r\n", 1)
        target = request.split(b"\r\n", 1)[0].split()[1].decode() if request.startswith(b"CONNECT ") else ""
        host, _, port = target.rpartition(":")
        self.tunnelled.append(target)
        try:
            if host.startswith(KATIB_DB_HOST):
                upstream = socket.create_connection(("127.0.0.1", self._grpc_port))
            else:
                upstream = socket.create_connection((host.strip("[]"), int(port)))
        except (OSError, ValueError):
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            client.close()
            return
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if rest:
            upstream.sendall(rest)
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        _pipe(client, upstream)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
