"""NEW.csv of `recdistill add-items`: read and checked as ingestion reads items.csv, encoded as
ExampleGen encodes the catalog.

The file has the columns of the run's items.csv (item_id, title, ...; any order). Rows go through
the ingestion's own reader (components/ingest/rows.py): a malformed row, an empty or repeated id
is a bad row with its file, line and reason, as in a run (an id with a control character too: a
"\n" in one would add a line to item_vocab.txt and shift every later id). One check is added: a
value must fit its column's type in the run's catalog (ingest_summary.json's column types: a run
infers them from all values, so it never meets a misfit; a year of "199x" in an integer column is
one here).
Bad rows are counted and skipped; beyond `max_bad_share` of the rows nothing is added
(components/ingest/quality.py's rule and message). An id already in the catalog is not a bad
row but an error: the caller meant something else (an update), and nothing is added.
"""

import dataclasses
from typing import Dict, List, Mapping, Sequence

from components.ingest import examples, quality, rows
from components.ingest.csv_rows import BadRow, InputFileError, display_name, printable

BAD_VALUE = "bad_value"  # a value that does not fit its column's type in the run's catalog
_FITS = {examples.INT: (examples.INT,), examples.FLOAT: (examples.INT, examples.FLOAT)}  # bytes take anything
_KIND_WORDS = {examples.INT: "an integer", examples.FLOAT: "a number"}


class IdsInCatalog(ValueError):
    """Rows whose item id the deployed catalog already has."""


@dataclasses.dataclass(frozen=True)
class NewItems:
    ids: List[str]  # the good rows' item ids, in file order
    records: List[bytes]  # their serialized catalog tf.Examples (components/ingest/examples.py)
    bad: List[BadRow]
    rows: int  # data rows read (a record spanning several lines counts as that many)


def read(path: str, column_types: Mapping[str, str], catalog_ids: Sequence[str], max_bad_share: float) -> NewItems:
    """The good rows of NEW.csv; raises InputFileError (unusable file), IdsInCatalog, or
    quality.DataQualityError (too many bad rows, or none good)."""
    name = display_name(path)  # printable: its bad rows are printed, and the name may not be UTF-8
    _check_columns(path, column_types)
    known = set(catalog_ids)
    ids, records, bad, clashes, count = [], [], [], [], 0
    for row in rows.read_entities(path, rows.ITEMS_FILE):
        if isinstance(row, BadRow):
            # read_entities names the file it was told to validate as (items.csv): this one is NEW.csv.
            bad.append(dataclasses.replace(row, file=name))
            count += row.lines
            continue
        count += 1
        misfit = _misfit(row.features, column_types)
        if row.id in known:
            clashes.append((row.line, row.id))
        elif misfit:
            bad.append(BadRow(name, row.line, BAD_VALUE, misfit))
        else:
            ids.append(row.id)
            records.append(examples.catalog_example(row.id, examples.entity_features("item_", row, column_types)))
    if clashes:
        shown = ", ".join(f"line {line}: {item!r}" for line, item in clashes[:5])
        more = f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
        raise IdsInCatalog(f"{name}: {len(clashes)} item id(s) already in the deployed catalog ({shown}{more}); "
                           "add-items adds new items only, so nothing was added")
    summary: Dict = {}
    quality.add_rows(summary, name, count)
    for row in bad:
        quality.add_bad(summary, row)
    quality.check(summary, max_bad_share)
    if not ids:
        raise quality.DataQualityError(f"{name}: no item to add ({count} data rows, {len(bad)} of them bad)")
    return NewItems(ids, records, bad, count)


def describe_bad(bad: Sequence[BadRow]) -> List[str]:
    """One line per bad row: file, line, reason and detail."""
    return [f"{row.file}, line {row.line}: {row.reason}: {row.detail}" for row in bad]


def _check_columns(path: str, column_types: Mapping[str, str]) -> None:
    header = rows.read_header(path, rows.REQUIRED_COLUMNS[rows.ITEMS_FILE])
    features = [c for c in header if c != rows.ID_COLUMN[rows.ITEMS_FILE]]
    extra, missing = sorted(set(features) - set(column_types)), sorted(set(column_types) - set(features))
    if extra or missing:
        problems = ([f"column(s) {', '.join(extra)} not in the run's items.csv"] if extra else []) + (
            [f"missing column(s) {', '.join(missing)}"] if missing else [])
        raise InputFileError(path, 1, f"{printable('; '.join(problems))}: the header must have the run's item columns "
                                      f"(item_id, {', '.join(sorted(column_types))})")


def _misfit(features: Mapping[str, str], column_types: Mapping[str, str]) -> str:
    """Why a row's value does not fit its column's type, or ""."""
    for column, kind in column_types.items():
        value = features.get(column, "")
        if kind in _FITS and value and examples.value_type(value) not in _FITS[kind]:
            return f"{column} {value!r} is not {_KIND_WORDS[kind]} (the catalog's {column} column holds {kind} values)"
    return ""

