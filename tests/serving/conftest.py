"""A tiny exported model version (an untrained student with 5 users and 8 items) for serving tests."""

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import pytest  # noqa: E402

H, K = 4, 5
USER_IDS = [""] + [f"u{i}" for i in range(1, 6)]
ITEM_IDS = [""] + [f"i{i}" for i in range(1, 9)]


def export_version(path, seed):
    """A tiny untrained student exported as a version directory; returns the loaded SavedModel."""
    import tensorflow as tf

    from models import deployable, serving_export, student

    tf.keras.utils.set_random_seed(seed)
    model = student.StudentModel(len(USER_IDS), len(ITEM_IDS), {"user": {}, "item": {}, "size": {}},
                                 student.StudentConfig(dim=4, history=H))
    model.score(tf.constant([1], tf.int64), tf.zeros([1, H], tf.int64))  # builds the towers
    serving_export.export(deployable.build(model), deployable.feature_bins(model), serving_export.hash_bins_of(model),
                          USER_IDS, ITEM_IDS, H, str(path), k=K)
    return tf.saved_model.load(str(path))


@pytest.fixture(scope="session")
def export():
    """export(path, seed) -> the loaded SavedModel of a tiny version written to path."""
    return export_version


@pytest.fixture(scope="session")
def served_base(tmp_path_factory, export):
    """A model base directory holding version 1 of the tiny model: .path (leave it unchanged; copy
    its "1" to change versions) and .v1 (the loaded SavedModel), for the server tests."""
    import types

    from models.foundation import signatures

    path = tmp_path_factory.mktemp("served") / signatures.MODEL_NAME
    return types.SimpleNamespace(path=str(path), v1=export(path / "1", seed=0))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """Self-signed PEM files made here: a CA, a server certificate for localhost and 127.0.0.1,
    and a client certificate, both signed by the CA, and a second CA that signed neither.
    {"ca", "server_cert", "server_key", "client_cert", "client_key", "other_ca"}: paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    root, now = tmp_path_factory.mktemp("tls"), datetime.datetime.now(datetime.timezone.utc)
    files = {}

    def write(name, content):
        files[name] = str(root / f"{name}.pem")
        (root / f"{name}.pem").write_bytes(content)

    def certificate(common_name, key, issuer_name, issuer_key, ca=False, names=()):
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def private(key):
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    pem = serialization.Encoding.PEM
    for ca_name in ("ca", "other_ca"):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"recdistill test {ca_name}")])
        write(ca_name, certificate(f"recdistill test {ca_name}", ca_key, name, ca_key, ca=True).public_bytes(pem))
        if ca_name == "ca":
            issuer = (name, ca_key)
    for side, names in (("server", [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                        ("client", [])):
        key = ec.generate_private_key(ec.SECP256R1())
        write(f"{side}_cert", certificate(f"recdistill test {side}", key, *issuer, names=names).public_bytes(pem))
        write(f"{side}_key", private(key))
    return files
