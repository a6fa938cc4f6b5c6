"""`recdistill serve` and `recdistill query` in process: numeric flags checked before anything
starts (exit 2 naming the flag), the serve command's startup line and log file, and query's
TLS, version, signature and model flags (exit 1 for the server's errors, on one line)."""

import os
import signal
import socket
import threading
import time

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import pytest  # noqa: E402

from serving import client as client_lib  # noqa: E402
from serving import dev_server  # noqa: E402
from serving.tls import ServerTLS  # noqa: E402
from tfx_pipeline import cli  # noqa: E402


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BAD_FLAGS = [
    ("serve", "--port", "0"), ("serve", "--port", "65536"), ("serve", "--port", "http"),
    ("serve", "--poll-seconds", "nan"), ("serve", "--poll-seconds", "0"), ("serve", "--poll-seconds", "inf"),
    ("serve", "--batch-timeout-ms", "nan"), ("serve", "--batch-timeout-ms", "-1"),
    ("serve", "--batch-timeout-ms", "inf"), ("serve", "--max-request-rows", "0"),
    ("serve", "--max-request-rows", "1.5"), ("serve", "--max-tensor-elements", "-5"),
    ("serve", "--max-load-retries", "-1"), ("serve", "--load-retry-interval", "nan"),
    ("serve", "--load-retry-interval", "0"),
    ("query", "--timeout", "nan"), ("query", "--timeout", "0"), ("query", "--timeout", "-inf"),
    ("query", "--k", "0"), ("query", "--k", "nan"), ("query", "--version", "-1"),
    ("query", "--version", str(2 ** 63)),
]


@pytest.mark.parametrize("command, flag, value", BAD_FLAGS)
def test_a_numeric_flag_out_of_range_stops_with_exit_2_naming_it(command, flag, value, capsys):
    required = (["--model-base-path", "/nowhere"] if command == "serve"
                else ["--target", "127.0.0.1:1", "--user-id", "u1"])
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, *required, f"{flag}={value}"])  # "=": argparse reads a lone -inf as an option
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"argument {flag}: " in err and repr(value) in err, err  # one line


@pytest.mark.parametrize("argv, message", [
    (["--ssl-cert", "/nowhere/cert.pem"], "--ssl-cert and --ssl-key go together"),
    (["--ssl-cert", "/nowhere/cert.pem", "--ssl-key", "/nowhere/key.pem"], "--ssl-cert /nowhere/cert.pem: cannot read"),
    (["--log-file", "/nowhere/serve.log"], "--log-file /nowhere/serve.log: cannot append"),
])
def test_serve_refuses_unusable_files_in_one_line_naming_the_flag(served_base, argv, message, capsys):
    assert cli.main(["serve", "--model-base-path", served_base.path, "--port", str(_free_port()), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_serve_says_where_it_listens_and_logs_loads_and_failed_loads_to_a_file(served_base, tmp_path, capsys):
    import shutil

    base, port, log_file = tmp_path / "recdistill", _free_port(), tmp_path / "serve.log"
    shutil.copytree(os.path.join(served_base.path, "1"), base / "1")
    previous, outcome = signal.getsignal(signal.SIGTERM), []

    def push_a_broken_version_then_terminate():
        try:
            with client_lib.RecommendationClient(f"127.0.0.1:{port}", retries=8, backoff_s=0.1) as client:
                outcome.append(client.status().model_version_status[0].version)
            (base / "2").mkdir()
            (base / "2" / "saved_model.pb").write_bytes(b"not a SavedModel")
            deadline = time.monotonic() + 30
            while "did not load" not in log_file.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:  # only to cli's handler (the default one would end pytest)
            deadline = time.monotonic() + 30
            while signal.getsignal(signal.SIGTERM) is previous and time.monotonic() < deadline:
                time.sleep(0.01)
            if signal.getsignal(signal.SIGTERM) is not previous:
                os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=push_a_broken_version_then_terminate, daemon=True).start()
    assert cli.main(["serve", "--model-base-path", str(base), "--port", str(port), "--poll-seconds", "0.1",
                     "--max-load-retries", "0", "--log-file", str(log_file)]) == 0
    assert outcome == [1]
    out, err = capsys.readouterr()
    assert f"on 127.0.0.1:{port} (this machine only, no TLS)" in out.splitlines()[0]
    logged = log_file.read_text()
    assert "recdistill version 1 is available" in logged
    assert "recdistill version 2 did not load (attempt 1 of 1)" in logged
    assert "version 2 did not load" in err  # the same lines on stderr


@pytest.fixture(scope="module")
def tls_server(served_base, tls_files):
    server = dev_server.serve(served_base.path, 0, tls=ServerTLS(tls_files["server_cert"], tls_files["server_key"]))
    yield server
    server.stop(None).wait(10)


def _query(server, *argv):
    return cli.main(["query", "--target", f"127.0.0.1:{server.port}", "--user-id", "u1", "--history", "i2",
                     "--k", "3", "--timeout", "5", *argv])


def test_query_over_tls_with_a_version_a_signature_and_its_errors(tls_server, tls_files, capsys):
    ca = ["--ssl-ca", tls_files["ca"]]
    assert _query(tls_server, *ca) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 3
    assert _query(tls_server, *ca, "--version", "1", "--signature-name", "serve_tf_examples") == 0
    assert capsys.readouterr().out.splitlines() == listed
    for argv, code, message in [
            (["--version", "7"], 1, "NOT_FOUND: Servable not found for request: Specific(recdistill, 7)"),
            (["--version-label", "stable"], 1, "INVALID_ARGUMENT: version_label 'stable'"),
            (["--model-name", "movies"], 1, "NOT_FOUND: Servable not found for request: Latest(movies)"),
            (["--signature-name", "predict"], 1, "NOT_FOUND: serving signature 'predict' not found"),
            (["--ssl-ca", "/nowhere/ca.pem"], 2, "--ssl-ca /nowhere/ca.pem: cannot read it"),
            (["--ssl-cert", tls_files["client_cert"]], 2, "--ssl-cert and --ssl-key go together")]:
        assert _query(tls_server, *([] if argv[0] == "--ssl-ca" else ca), *argv) == code, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert _query(tls_server, "--timeout", "0.5") == 1  # plaintext to a TLS server
    assert "UNAVAILABLE" in capsys.readouterr().err
    # The name checked in the server's certificate: one it names, then one it does not.
    assert _query(tls_server, *ca, "--ssl-target-name", "localhost") == 0
    assert _query(tls_server, *ca, "--ssl-target-name", "elsewhere.example", "--timeout", "0.5") == 1
    assert "UNAVAILABLE" in capsys.readouterr().err
