"""The foundation: what every other part of recdistill stands on, importing nothing of it.

  env.py               the Keras-2 switch (TF_USE_LEGACY_KERAS) and process settings, before TensorFlow loads
  storage.py           files on local disks and object storage (gs://) alike
  progress.py          a run's console: progress lines, heartbeats, wall times and memory per component
  signatures.py        the deployed models' interfaces (names, shapes, files)
  tflite_runner.py     model.tflite run with LiteRT, as a phone runs it
  beam_credentials.py  Beam against a storage emulator without Google's credentials lookup

The floors above it (docs/design.md, "Layers"): models/, then components/ and serving/ (which do
not import each other), then tfx_pipeline/ on top. It lives inside models/ because the top level
of the repository is fixed and models/ is its lowest package; the import-linter contracts in
pyproject.toml keep it free of any import of the project, and `make test` checks them.
"""
