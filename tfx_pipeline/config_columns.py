"""The configuration's columns against the data, checked before a run starts (`recdistill run`)."""

import os

from models.foundation import storage
from tfx_pipeline.config import ConfigError, PipelineConfig


def check_columns(config: PipelineConfig, data_dir: str, source: str = "config") -> None:
    """The text and list columns the config names exist in the data's users.csv and items.csv.

    Run before the pipeline starts: a misspelt column would otherwise be a silently missing feature.
    A file that is missing or unreadable is left to ExampleGen, which says what is wrong with it.
    list_columns is checked only when set (its default, genres, is MovieLens's: other data may lack it)."""
    from components.ingest import rows, spans
    from components.ingest.csv_rows import InputFileError

    present = spans.find_spans(data_dir, config.spans) if storage.isdir(data_dir) else []
    if present:  # data in spans: the newest span's files (ExampleGen checks that every span has its columns)
        data_dir = spans.span_dir(data_dir, present[-1], config.spans.pattern)
    columns = {}
    for file_name in (rows.USERS_FILE, rows.ITEMS_FILE):
        path = os.path.join(data_dir, file_name)
        try:
            columns[file_name] = rows.feature_columns(path, file_name)
        except InputFileError:
            return
    wanted = [("item_text_columns", config.item_text_columns, (rows.ITEMS_FILE,)),
              ("user_text_columns", config.user_text_columns, (rows.USERS_FILE,))]
    if tuple(config.list_columns) != PipelineConfig.list_columns:
        wanted.append(("list_columns", config.list_columns, (rows.USERS_FILE, rows.ITEMS_FILE)))
    for name, values, files in wanted:
        for value in values:
            if not any(value in columns[f] for f in files):
                known = "; ".join(f"{os.path.join(data_dir, f)}: {', '.join(columns[f]) or 'none'}" for f in files)
                raise ConfigError(f"{source}: {name}: {value!r} is not a column of "
                                  f"{' or '.join(files)} (their feature columns: {known})")
