"""`recdistill serve`'s socket: on 127.0.0.1 unless told otherwise, TLS and mutual TLS with
certificates made in the test, and unusable certificate files refused with their flag's name."""

import ipaddress
import logging
import os

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import psutil  # noqa: E402
import pytest  # noqa: E402

from serving import client as client_lib  # noqa: E402
from serving import dev_server  # noqa: E402
from serving.tls import ClientTLS, ServerTLS, TLSFileError  # noqa: E402


def _listening(port):
    """The local addresses this process listens on at `port` (IPv4-mapped IPv6 ones as IPv4: gRPC
    binds dual-stack sockets)."""
    addresses = set()
    for connection in psutil.Process().net_connections("tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            address = ipaddress.ip_address(connection.laddr.ip)
            addresses.add(str(getattr(address, "ipv4_mapped", None) or address))
    return addresses


def test_the_default_socket_is_on_loopback_and_another_host_is_warned_about(served_base, caplog):
    server = dev_server.serve(served_base.path, 0)
    try:
        assert _listening(server.port) == {"127.0.0.1"}
        assert (server.host, server.tls) == ("127.0.0.1", False)
    finally:
        server.stop(None).wait(10)
    assert not [r for r in caplog.records if "without TLS" in r.getMessage()]
    with caplog.at_level(logging.WARNING, logger="serving"):
        exposed = dev_server.serve(served_base.path, 0, host="0.0.0.0")
    try:
        assert _listening(exposed.port) and not any(dev_server.is_loopback(a) for a in _listening(exposed.port))
        [warning] = [r for r in caplog.records if "without TLS" in r.getMessage()]
        assert f"0.0.0.0:{exposed.port}" in warning.getMessage() and warning.levelno == logging.WARNING
    finally:
        exposed.stop(None).wait(10)
    assert dev_server.is_loopback("::1") and dev_server.is_loopback("localhost")
    assert not dev_server.is_loopback("0.0.0.0") and not dev_server.is_loopback("10.1.2.3")


def test_a_tls_round_trip_with_a_self_signed_certificate(served_base, tls_files):
    server = dev_server.serve(served_base.path, 0, tls=ServerTLS(tls_files["server_cert"], tls_files["server_key"]))
    target = f"127.0.0.1:{server.port}"
    try:
        assert server.tls
        with client_lib.RecommendationClient(target, tls=ClientTLS(ca=tls_files["ca"]), timeout_s=30) as client:
            [ranked] = client.recommend(["u1"], [["i1"]])
        assert len(ranked) == 5 and all(item.startswith("i") for item, _ in ranked)
        for refused in (None, ClientTLS(ca=tls_files["other_ca"])):  # plaintext; a CA that did not sign it
            with client_lib.RecommendationClient(target, tls=refused, retries=0, timeout_s=5) as client, \
                    pytest.raises(client_lib.ServingError) as error:
                client.status()
            assert error.value.code == client_lib.grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None).wait(10)


def test_mutual_tls_refuses_a_client_without_a_certificate(served_base, tls_files):
    server = dev_server.serve(served_base.path, 0, tls=ServerTLS(tls_files["server_cert"], tls_files["server_key"],
                                                                client_ca=tls_files["ca"]))
    target = f"localhost:{server.port}"
    try:
        with client_lib.RecommendationClient(target, tls=ClientTLS(ca=tls_files["ca"]), retries=0, timeout_s=5) as c, \
                pytest.raises(client_lib.ServingError) as error:
            c.status()
        assert error.value.code == client_lib.grpc.StatusCode.UNAVAILABLE
        with_certificate = ClientTLS(ca=tls_files["ca"], cert=tls_files["client_cert"], key=tls_files["client_key"])
        with client_lib.RecommendationClient(target, tls=with_certificate, timeout_s=30) as client:
            assert client.status().model_version_status[0].version == 1
    finally:
        server.stop(None).wait(10)


def test_unusable_certificate_files_are_refused_naming_their_flag(served_base, tls_files, tmp_path):
    missing, not_pem = str(tmp_path / "missing.pem"), tmp_path / "notes.txt"
    not_pem.write_text("hello")
    cases = [(ServerTLS(missing, tls_files["server_key"]), f"--ssl-cert {missing}: cannot read it"),
             (ServerTLS(tls_files["server_cert"], str(not_pem)), f"--ssl-key {not_pem}: not a PEM private key"),
             (ServerTLS(tls_files["server_cert"], tls_files["server_key"], str(tmp_path)), "--ssl-client-ca")]
    for tls, message in cases:
        with pytest.raises(TLSFileError, match=message):
            dev_server.serve(served_base.path, 0, tls=tls)
    with pytest.raises(TLSFileError, match="--ssl-ca"):
        client_lib.RecommendationClient("127.0.0.1:1", tls=ClientTLS(ca=missing))
    with pytest.raises(TLSFileError, match="go together"):
        ClientTLS(cert=tls_files["client_cert"])
    assert os.path.isfile(tls_files["ca"])
