"""`recdistill serve`, `query` and `tflite-predict`: the deployed models answering, through TF
Serving's gRPC API or LiteRT."""

from serving import flags  # argparse types (numeric flags checked for NaN and range) and defaults
from tfx_pipeline.cli_exits import EXIT_BAD_INPUT, EXIT_FAILURE, fail
from tfx_pipeline.cli_help import subcommand


def add_parsers(commands) -> None:
    """The three subcommands on the CLI's subparsers."""
    server = subcommand(commands, "serve", "a development gRPC server speaking TF Serving's API (no TF Serving binary)", [
        "recdistill serve --model-base-path runs/movielens-100k/serving/recdistill",
        "recdistill serve --model-base-path gs://BUCKET/serving/recdistill --host 0.0.0.0 --ssl-cert server.pem "
        "--ssl-key server.key"])
    server.add_argument("--model-base-path", required=True, metavar="DIR", help="a run's serving/recdistill (a directory or gs:// URI)")
    server.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    server.add_argument("--port", type=flags.port, default=8500, help="the gRPC port")
    server.add_argument("--poll-seconds", type=flags.positive_float, default=1.0,
                        help="how often new versions are looked for")
    server.add_argument("--batch-timeout-ms", type=flags.non_negative_float, default=flags.DEFAULT_BATCH_TIMEOUT_MS,
                        help="how long a request waits to be batched with others")
    server.add_argument("--max-request-rows", type=flags.positive_int, default=flags.DEFAULT_MAX_REQUEST_ROWS,
                        metavar="N", help="rows per request; more are RESOURCE_EXHAUSTED (default %(default)s)")
    server.add_argument("--max-tensor-elements", type=flags.positive_int, default=flags.DEFAULT_MAX_TENSOR_ELEMENTS,
                        metavar="N", help="elements per input tensor, from its declared shape (default %(default)s)")
    server.add_argument("--max-load-retries", type=flags.non_negative_int, default=flags.DEFAULT_MAX_LOAD_RETRIES,
                        metavar="N", help="retries of a version that fails to load (default %(default)s)")
    server.add_argument("--load-retry-interval", type=flags.positive_float,
                        default=flags.DEFAULT_LOAD_RETRY_INTERVAL_S, metavar="SECONDS",
                        help="wait before the first retry, doubling after each (default %(default)s)")
    server.add_argument("--ssl-cert", metavar="PEM",
                        help="the server's certificate chain: TLS (with --ssl-key; default: none, plaintext)")
    server.add_argument("--ssl-key", metavar="PEM", help="the server certificate's private key (default: none)")
    server.add_argument("--ssl-client-ca", metavar="PEM",
                        help="require client certificates signed by this CA, mutual TLS (default: none, any client)")
    server.add_argument("--log-file", metavar="PATH",
                        help="also append the server's log lines to this file (default: stderr only)")
    server.set_defaults(handler=_serve)

    query = subcommand(commands, "query", "ask a TF Serving (or `recdistill serve`) server for recommendations", [
        "recdistill query --target 127.0.0.1:8500 --user-id 1",
        "recdistill query --target serving.example.com:8500 --tls --user-id 1 --history 50,172 --version-label stable"])
    query.add_argument("--target", required=True, metavar="HOST:PORT")
    query.add_argument("--user-id", required=True)
    query.add_argument("--history", default="", help="item ids, most recent first, comma-separated")
    query.add_argument("--k", type=flags.positive_int, default=10, help="how many recommendations")
    query.add_argument("--timeout", type=flags.positive_float, default=5.0, help="deadline per call, seconds")
    query.add_argument("--items", metavar="CSV",
                       help="items.csv for titles (default: the newest runs/*/input/items.csv here, if any)")
    query.add_argument("--model-name", default="recdistill", help="the model's name on the server")
    which = query.add_mutually_exclusive_group()
    which.add_argument("--version", type=flags.version, metavar="N", help="this version (default: the latest)")
    which.add_argument("--version-label", metavar="LABEL",
                       help="the version TF Serving labels so, e.g. stable (default: none, the latest)")
    query.add_argument("--signature-name", default="serving_default",
                       help="serving_default or serve_tf_examples (default %(default)s)")
    query.add_argument("--tls", action="store_true", help="TLS with the system's root certificates")
    query.add_argument("--ssl-ca", metavar="PEM",
                       help="TLS, trusting this root certificate, e.g. a self-signed one (default: none)")
    query.add_argument("--ssl-cert", metavar="PEM",
                       help="a client certificate, for servers that require one (default: none)")
    query.add_argument("--ssl-key", metavar="PEM", help="the client certificate's private key (default: none)")
    query.add_argument("--ssl-target-name", metavar="NAME",
                       help="the host name expected in the server's certificate, when the target is another name "
                            "(default: the target's host)")
    query.set_defaults(handler=_query)

    lite = subcommand(commands, "tflite-predict", "recommend with a pushed TFLite model (LiteRT), as a phone does", [
        "recdistill tflite-predict --model runs/movielens-100k/mobile/1 --user-id 1",
        "recdistill tflite-predict --model gs://BUCKET/mobile/1 --user-id 1 --history 50,172 --k 5"])
    lite.add_argument("--model", required=True, metavar="DIR", help="a mobile/<version> directory of a run (or gs:// URI)")
    lite.add_argument("--user-id", required=True)
    lite.add_argument("--history", default="", help="item ids, most recent first, comma-separated")
    lite.add_argument("--k", type=int, default=10, help="how many recommendations")
    lite.add_argument("--items", metavar="CSV", help="items.csv for titles (default: the run's input/items.csv)")
    lite.set_defaults(handler=_tflite_predict)


def _tflite_predict(args) -> int:
    from serving import catalog, tflite_predict
    from models.foundation import storage

    if args.k < 1:
        return fail("--k must be at least 1", EXIT_BAD_INPUT)
    if args.items and not storage.isfile(args.items):
        return fail(f"--items {args.items}: no such file", EXIT_BAD_INPUT)
    history = [item for item in args.history.split(",") if item]
    try:
        titles = catalog.load_titles(args.items or catalog.default_items_csv(args.model))
        ranked = tflite_predict.recommend(args.model, args.user_id, history, args.k)
    except (FileNotFoundError, ValueError) as error:
        return fail(str(error), EXIT_BAD_INPUT)
    _print_recommendations(ranked, titles)
    return 0


def _serve(args) -> int:
    from serving import dev_server, server_log
    from serving.request_limits import RequestLimits
    from serving.tls import ServerTLS

    if (args.ssl_cert is None) != (args.ssl_key is None) or (args.ssl_client_ca and not args.ssl_cert):
        return fail("--ssl-cert and --ssl-key go together (TLS), and --ssl-client-ca needs them", EXIT_BAD_INPUT)
    tls = ServerTLS(args.ssl_cert, args.ssl_key, args.ssl_client_ca) if args.ssl_cert else None
    try:
        handlers = server_log.configure(args.log_file)
    except OSError as error:
        return fail(f"--log-file {args.log_file}: cannot append to it ({error.strerror or error})", EXIT_BAD_INPUT)
    try:
        dev_server.run_until_signal(
            args.model_base_path, args.port, poll_seconds=args.poll_seconds, host=args.host, tls=tls,
            limits=RequestLimits(args.max_request_rows, args.max_tensor_elements),
            max_load_retries=args.max_load_retries, load_retry_interval_s=args.load_retry_interval,
            batch_timeout_ms=args.batch_timeout_ms)
    except (FileNotFoundError, OSError, ValueError) as error:  # TLSFileError is a ValueError
        return fail(" ".join(str(error).split()), EXIT_BAD_INPUT)  # on one line: TensorFlow's span several
    except Exception as error:  # a version that does not load (TensorFlow's errors): one line, not a traceback
        return fail(f"{args.model_base_path}: the model does not load: {type(error).__name__}: "
                     f"{' '.join(str(error).split())}", EXIT_FAILURE)
    finally:
        server_log.remove(handlers)
    return 0


def _query(args) -> int:
    from serving import catalog
    from serving.client import RecommendationClient, ServingError
    from serving.tls import ClientTLS, TLSFileError
    from models.foundation import storage

    if args.items and not storage.isfile(args.items):
        return fail(f"--items {args.items}: no such file", EXIT_BAD_INPUT)
    try:  # before the request: a file that is not UTF-8 CSV is answered without asking the server
        titles = catalog.load_titles(args.items or catalog.newest_run_items_csv())
    except ValueError as error:
        return fail(str(error), EXIT_BAD_INPUT)
    history = [item for item in args.history.split(",") if item]
    secure = args.tls or any((args.ssl_ca, args.ssl_cert, args.ssl_key, args.ssl_target_name))
    try:
        tls = ClientTLS(args.ssl_ca, args.ssl_cert, args.ssl_key, args.ssl_target_name) if secure else None
        with RecommendationClient(args.target, model_name=args.model_name, timeout_s=args.timeout, tls=tls) as client:
            ranked = client.recommend([args.user_id], [history], k=args.k + len(history), version=args.version,
                                      version_label=args.version_label, signature=args.signature_name)[0]
    except TLSFileError as error:
        return fail(str(error), EXIT_BAD_INPUT)
    except ServingError as error:
        return fail(f"{args.target}: {error.code.name}: {' '.join(str(error.details).split())}", EXIT_FAILURE)
    seen = set(history)  # the model ranks the whole catalog: the history's items are left out here
    _print_recommendations([(i, s) for i, s in ranked if i not in seen][: args.k], titles)
    return 0


def _print_recommendations(ranked, titles) -> None:
    """rank, item id, score and title (when known), one line each."""
    width = max([len(item) for item, _ in ranked] + [7])
    for rank, (item, score) in enumerate(ranked, 1):
        print(f"{rank:>3}  {item:<{width}}  {score:8.4f}  {titles.get(item, '')}".rstrip())
