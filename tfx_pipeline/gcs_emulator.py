"""A Google Cloud Storage emulator on this machine, for running the pipeline on gs:// without a cloud.

    python -m tfx_pipeline.gcs_emulator --port 9023 --bucket recdistill
    export STORAGE_EMULATOR_HOST=http://127.0.0.1:9023
    recdistill run --data gs://recdistill/data --pipeline-root gs://recdistill/root ...

It is `gcp-storage-emulator` (PyPI) with one fix: TensorFlow's gs:// plugin sends a Host header
without the port, and the emulator builds its download links from that header, so links pointed
at port 80. Here they get the port the emulator listens on. Objects live in memory.
"""

import argparse
import sys
import time


def _links_with_port() -> None:
    from gcp_storage_emulator import server

    if getattr(server.Request, "_recdistill_port_fix", False):
        return
    original = server.Request.__init__

    def init(self, handler, method):
        original(self, handler, method)
        host = handler.headers.get("Host")
        if host and ":" not in host:
            self._base_url = f"http://{host}:{handler.server.server_address[1]}"
            self._full_url = self._base_url + self._path

    server.Request.__init__ = init
    server.Request._recdistill_port_fix = True


def start(port: int, buckets=("recdistill",), host: str = "127.0.0.1"):
    """A started emulator (call .stop() on it) serving `buckets`, all empty."""
    from gcp_storage_emulator import server
    from gcp_storage_emulator.handlers import buckets as bucket_handlers

    _links_with_port()
    emulator = server.create_server(host, port, in_memory=True)
    for bucket in buckets:
        bucket_handlers.create_bucket(bucket, emulator._storage)
    emulator.start()
    return emulator


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfx_pipeline.gcs_emulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=9023)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--bucket", action="append", help="a bucket to create (repeatable; default recdistill)")
    args = parser.parse_args(argv)
    emulator = start(args.port, tuple(args.bucket or ["recdistill"]), args.host)
    print(f"storage emulator on http://{args.host}:{args.port} (buckets: {', '.join(args.bucket or ['recdistill'])}); "
          f"export STORAGE_EMULATOR_HOST=http://{args.host}:{args.port}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
