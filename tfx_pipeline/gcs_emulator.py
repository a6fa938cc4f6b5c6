"""Google Cloud Storage on this machine, for running the pipeline on gs:// without a cloud.

    python -m tfx_pipeline.gcs_emulator --bucket recdistill      # prints the variables to export
    recdistill run --data gs://recdistill/data --pipeline-root gs://recdistill/root ...

Two clients must reach it, in the ways they reach the real service:
- Beam and google-cloud-storage (Python) honour STORAGE_EMULATOR_HOST: plain HTTP to the emulator.
- TensorFlow's built-in gs:// filesystem (what the pipeline uses on Google Cloud too) always calls
  https://www.googleapis.com. It honours `https_proxy`, `CURL_CA_BUNDLE` and `NO_GCE_CHECK`, so a
  local proxy answers its CONNECTs with TLS under a certificate of a throwaway CA and passes the
  requests on to the emulator. (The tensorflow-io-gcs-filesystem plugin, which can be pointed at an
  emulator directly, corrupts its heap on reads of a few hundred KB from one: not usable here.)

The emulator is `gcp-storage-emulator` (PyPI), objects in memory, with these fixes: the links it
returns (resumable uploads, media) are built from the request's Host header, which is
www.googleapis.com behind the proxy (they get https, so they lead back through it) or has no port;
a body sent with Transfer-Encoding: chunked is decoded even when a Content-Length comes too; an
empty upload makes an empty object instead of a crash; `Expect: 100-continue` is answered; and a
write no longer re-serializes every object's metadata.
"""

import argparse
import datetime
import os
import select
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time
from typing import Dict, Iterable, Optional

GOOGLE_HOSTS = ("www.googleapis.com", "storage.googleapis.com")


def _fix_links(emulator_port: int) -> None:
    from gcp_storage_emulator import server

    if getattr(server.Request, "_recdistill_links", None) == emulator_port:
        return
    original = getattr(server.Request, "_recdistill_init", server.Request.__init__)

    def init(self, handler, method):
        original(self, handler, method)
        host = handler.headers.get("Host") or ""
        if host.split(":")[0] in GOOGLE_HOSTS:
            self._base_url = f"https://{host}"  # came through the TLS proxy: links go back through it
        elif host and ":" not in host:
            self._base_url = f"http://{host}:{emulator_port}"
        self._full_url = self._base_url + self._path

    server.Request.__init__ = init
    server.Request._recdistill_init = original
    server.Request._recdistill_links = emulator_port
    _chunked_first(server)
    _continue_uploads(server)


def _continue_uploads(server) -> None:
    """TensorFlow's uploads ask `Expect: 100-continue` and wait a second for the answer, which an
    HTTP/1.0 server never gives: every object written took a second longer."""
    if getattr(server.RequestHandler, "_recdistill_continue", False):
        return
    parse = server.RequestHandler.parse_request

    def parse_request(self):
        parsed = parse(self)
        if parsed and (self.headers.get("Expect") or "").lower() == "100-continue" \
                and self.protocol_version < "HTTP/1.1":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
        return parsed

    server.RequestHandler.parse_request = parse_request
    server.RequestHandler._recdistill_continue = True


def _chunked_first(server) -> None:
    """Request bodies as TensorFlow sends them. Its uploads carry Transfer-Encoding: chunked and a Content-Length; HTTP says the
    chunked encoding wins, the emulator read Content-Length bytes of the encoded body."""
    if getattr(server, "_recdistill_chunked", False):
        return
    original = server._read_raw_data

    def read_raw_data(request_handler):
        headers = request_handler.headers
        if (headers.get("Transfer-Encoding") or "").lower() == "chunked" and headers.get("Content-Length"):
            del headers["Content-Length"]
        return original(request_handler)

    server._read_raw_data = read_raw_data
    read_data = server._read_data

    def read_data_or_empty(request_handler, query):
        data = read_data(request_handler, query)
        # an empty media upload (TensorFlow's directory markers, "dir/") is an empty object, not None
        if data is None and request_handler.command in ("POST", "PUT") and "uploadType=media" in request_handler.path:
            return b""
        return data

    server._read_data = read_data_or_empty
    server._recdistill_chunked = True


def _certificates(directory: str) -> Dict[str, str]:
    """A throwaway CA and a certificate for Google's storage hosts signed by it, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "recdistill storage emulator CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, GOOGLE_HOSTS[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in GOOGLE_HOSTS]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {name: os.path.join(directory, f"{name}.pem") for name in ("ca", "cert", "key")}
    pem = serialization.Encoding.PEM
    for name, data in (("ca", ca.public_bytes(pem)), ("cert", leaf.public_bytes(pem)),
                       ("key", key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))):
        with open(paths[name], "wb") as handle:
            handle.write(data)
    return paths


class _TlsProxy(socketserver.ThreadingTCPServer):
    """Answers CONNECT host:443 with TLS as that host and pipes the plain requests to the emulator."""

    daemon_threads = allow_reuse_address = True

    def __init__(self, port: int, emulator_port: int, certificates: Dict[str, str]):
        self.emulator_port = emulator_port
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(certificates["cert"], certificates["key"])
        super().__init__(("127.0.0.1", port), _Tunnel)


class _Tunnel(socketserver.BaseRequestHandler):
    def handle(self):
        client = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        if not head.startswith(b"CONNECT "):
            client.sendall(b"HTTP/1.1 405 Only CONNECT\r\nContent-Length: 0\r\n\r\n")
            return
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        with self.server.tls.wrap_socket(client, server_side=True) as secure, \
                socket.create_connection(("127.0.0.1", self.server.emulator_port)) as upstream:
            _pipe(secure, upstream)


def _pipe(secure: ssl.SSLSocket, upstream: socket.socket) -> None:
    """Bytes both ways until either side closes."""
    sockets = [secure, upstream]
    while True:
        # TLS may hold decrypted bytes that select() cannot see: drain those first
        ready = [secure] if secure.pending() else select.select(sockets, [], [], 60)[0]
        if not ready:
            return
        for source in ready:
            target = upstream if source is secure else secure
            try:
                data = source.recv(65536)
            except (ssl.SSLError, OSError):
                return
            if not data:
                return
            target.sendall(data)


class Emulator:
    """A running emulator and its TLS proxy; `environment` is what every client process needs."""

    def __init__(self, port: int, proxy_port: int, buckets: Iterable[str] = ("recdistill",),
                 certificate_dir: Optional[str] = None):
        from gcp_storage_emulator import server
        from gcp_storage_emulator.handlers import buckets as bucket_handlers

        _fix_links(port)
        self._scratch = tempfile.TemporaryDirectory(prefix="recdistill-gcs-")
        os.makedirs(certificate_dir or self._scratch.name, exist_ok=True)
        certificates = _certificates(certificate_dir or self._scratch.name)
        self._server = server.create_server("127.0.0.1", port, in_memory=True)
        # Every write re-serialized every object's metadata to JSON (.meta), which only a restart of a
        # store on disk reads back: a pipeline's thousands of objects made each write slower. In memory,
        # the dictionaries it serialized are the state.
        self._server._storage._write_config_to_file = lambda: None
        for bucket in buckets:
            bucket_handlers.create_bucket(bucket, self._server._storage)
        self._server.start()
        self._proxy = _TlsProxy(proxy_port, port, certificates)
        threading.Thread(target=self._proxy.serve_forever, name="gcs-tls-proxy", daemon=True).start()
        self.environment = {
            "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}",
            "https_proxy": f"http://127.0.0.1:{proxy_port}",
            "CURL_CA_BUNDLE": certificates["ca"],
            "REQUESTS_CA_BUNDLE": certificates["ca"],  # Python clients following links to the proxy
            "NO_GCE_CHECK": "true",
            "no_proxy": "127.0.0.1,localhost",
        }

    def stop(self) -> None:
        self._proxy.shutdown()
        self._proxy.server_close()
        self._server.stop()
        self._scratch.cleanup()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfx_pipeline.gcs_emulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=9023, help="the emulator's HTTP port")
    parser.add_argument("--proxy-port", type=int, default=9024, help="the TLS proxy's port (for TensorFlow)")
    parser.add_argument("--bucket", action="append", help="a bucket to create (repeatable; default recdistill)")
    parser.add_argument("--certificate-dir", help="where the CA certificate goes (default: a temporary directory)")
    args = parser.parse_args(argv)
    emulator = Emulator(args.port, args.proxy_port, tuple(args.bucket or ["recdistill"]), args.certificate_dir)
    print("storage emulator running; in the shell that runs recdistill:", flush=True)
    for name, value in emulator.environment.items():
        print(f"export {name}={value}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
