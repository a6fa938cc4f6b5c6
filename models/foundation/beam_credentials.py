"""Beam without Google's credentials lookup when a storage emulator stands in for Cloud Storage.

An emulator (STORAGE_EMULATOR_HOST, tfx_pipeline/gcs_emulator.py) takes no credentials, and Beam
would otherwise spend about 25 s per process retrying the lookup of Google's default credentials
before connecting anonymously anyway. The modules that read or write files through Beam
(ExampleGen's readers and writers, the local runner) call `anonymous_when_emulated()` when they are
imported, so that Beam worker processes, which import them to run their transforms, skip it too.
Nothing happens without STORAGE_EMULATOR_HOST: real buckets keep Beam's usual credentials.
"""

import os
import warnings

_done = False


def anonymous_when_emulated() -> None:
    """Marks Beam's credentials as looked up and absent, once per process, when an emulator is set."""
    global _done
    if _done or not os.environ.get("STORAGE_EMULATOR_HOST"):
        return
    with warnings.catch_warnings():  # Google's client libraries warn about Python versions on import
        warnings.simplefilter("ignore", FutureWarning)
        from apache_beam.internal.gcp import auth as beam_auth

    # Beam's private cache (apache_beam/internal/gcp/auth.py, Beam 2.59-2.61): no public switch exists.
    with beam_auth._Credentials._credentials_lock:
        beam_auth._Credentials._credentials, beam_auth._Credentials._credentials_init = None, True
    _done = True
