"""Small files in the official formats, and an HTTP server on 127.0.0.1 that serves them."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from binary_nn.data.remote import FileSet, RemoteFile


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file (uint8 values) as MNIST ships it, gzip-compressed."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def mini_mnist(rng: np.random.Generator, n_train: int = 60, n_test: int = 20) -> dict[str, bytes]:
    """Four IDX files whose images light up a row band per class, so a net can learn them."""
    files = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 50, (n, 28, 28))
        for i, label in enumerate(labels):
            images[i, 2 * label : 2 * label + 3, :] = 250
        files[f"{prefix}-images-idx3-ubyte.gz"] = idx_bytes(images)
        files[f"{prefix}-labels-idx1-ubyte.gz"] = idx_bytes(labels)
    return files


def cifar_batch(rng: np.random.Generator, n: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    images = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    data = pickle.dumps({b"batch_label": b"x", b"labels": labels, b"data": images}, protocol=2)
    return data, images, np.array(labels)


def mini_cifar_tarball(rng: np.random.Generator, n: int = 8) -> tuple[bytes, dict]:
    """``cifar-10-python.tar.gz`` with the real layout; returns it and the arrays inside."""
    buffer, contents = io.BytesIO(), {}
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            data, images, labels = cifar_batch(rng, n)
            contents[name] = (images, labels)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), contents


def fileset(name: str, folder: str, files: dict[str, bytes], mirrors: list[str]) -> FileSet:
    return FileSet(
        name,
        folder,
        tuple(RemoteFile(k, hashlib.sha256(v).hexdigest(), len(v)) for k, v in files.items()),
        tuple(mirrors),
    )


class FileServer:
    """Serves ``files`` under URL prefixes that behave differently.

    ``/good/NAME`` the file; ``/broken/NAME`` HTTP 500; ``/corrupt/NAME`` other bytes;
    ``/truncated/NAME`` announces the full length, sends half and closes the connection.
    ``requests`` records every path asked for.
    """

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                mode, _, name = self.path.strip("/").partition("/")
                body = server.files.get(name)
                if body is None or mode == "broken":
                    self.send_error(404 if body is None else 500)
                    return
                if mode == "corrupt":
                    body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "truncated":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{mode}/"

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused: 'offline')."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def use_test_mnist(monkeypatch, files: dict[str, bytes], mirrors: list[str]) -> FileSet:
    """Register the miniature MNIST ``files`` under ``MNIST`` with the given mirrors (for the
    test's duration)."""
    from binary_nn.data import DATASETS
    from binary_nn.data.sources import DatasetSource, idx_loader

    fs = fileset("MNIST", "mnist", files, mirrors)
    source = DatasetSource("MNIST", "test", idx_loader(fs), fs)
    monkeypatch.setitem(DATASETS._entries, "MNIST", source)
    return fs
