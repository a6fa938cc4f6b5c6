"""TLS for the development server and its clients, as TF Serving's ssl_config does it: a server
certificate and key, and optionally a client CA, which makes clients prove who they are (mutual TLS).

  server = dev_server.serve(path, 8500, tls=ServerTLS("server.pem", "server.key", client_ca="ca.pem"))
  client = RecommendationClient("host:8500", tls=ClientTLS(ca="ca.pem", cert="client.pem", key="client.key"))

Files are PEM and read when the credentials are made; a file that is missing, unreadable or not
PEM is a TLSFileError naming the command-line flag it came from (--ssl-cert, --ssl-key,
--ssl-client-ca on the server; --ssl-ca, --ssl-cert, --ssl-key on the client).
"""

import dataclasses
from typing import List, Optional, Tuple

import grpc


class TLSFileError(ValueError):
    """A certificate or key file that cannot be used; the message names its flag and path."""


@dataclasses.dataclass(frozen=True)
class ServerTLS:
    """cert: the server's certificate chain; key: its private key; client_ca: when set, clients
    must present a certificate signed by it (mutual TLS)."""
    cert: str
    key: str
    client_ca: Optional[str] = None

    def credentials(self) -> grpc.ServerCredentials:
        chain, key = read_pem(self.cert, "--ssl-cert", _CERTIFICATE), read_pem(self.key, "--ssl-key", _KEY)
        client_ca = read_pem(self.client_ca, "--ssl-client-ca", _CERTIFICATE) if self.client_ca else None
        return grpc.ssl_server_credentials([(key, chain)], root_certificates=client_ca,
                                           require_client_auth=client_ca is not None)


@dataclasses.dataclass(frozen=True)
class ClientTLS:
    """ca: root certificate(s) to trust (None: the system's); cert and key: a client certificate,
    for servers that ask for one; target_name: the name expected in the server's certificate when
    it is not the host dialed (e.g. dialing an address whose certificate names a host)."""
    ca: Optional[str] = None
    cert: Optional[str] = None
    key: Optional[str] = None
    target_name: Optional[str] = None

    def __post_init__(self):
        if (self.cert is None) != (self.key is None):
            raise TLSFileError("--ssl-cert and --ssl-key go together: a client certificate needs its key")

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=read_pem(self.ca, "--ssl-ca", _CERTIFICATE) if self.ca else None,
            private_key=read_pem(self.key, "--ssl-key", _KEY) if self.key else None,
            certificate_chain=read_pem(self.cert, "--ssl-cert", _CERTIFICATE) if self.cert else None)

    def options(self) -> List[Tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.target_name)] if self.target_name else []


_CERTIFICATE, _KEY = (b"-----BEGIN CERTIFICATE-----",), (b"PRIVATE KEY-----",)


def read_pem(path: str, flag: str, markers=_CERTIFICATE) -> bytes:
    """The file's bytes, or TLSFileError('FLAG PATH: why') if it is not readable PEM of that kind."""
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as error:
        raise TLSFileError(f"{flag} {path}: cannot read it ({error.strerror or error})") from None
    if not any(marker in content for marker in markers):
        kind = "certificate" if markers is _CERTIFICATE else "private key"
        raise TLSFileError(f"{flag} {path}: not a PEM {kind} (no {markers[0].decode()} line)")
    return content
