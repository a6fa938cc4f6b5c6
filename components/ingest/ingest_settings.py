"""ExampleGen's settings (components/ingest/beam_ingest.py), in a module without Beam or
TensorFlow: `recdistill run` checks a configuration before it imports them."""

import dataclasses
from typing import Optional, Sequence

from components.ingest import splits
from components.ingest.spans import SpanSettings


@dataclasses.dataclass(frozen=True)
class IngestSettings:
    split: splits.SplitSpec = splits.SplitSpec()
    max_bad_share: float = 0.01
    item_text_columns: Sequence[str] = ("title",)
    user_text_columns: Sequence[str] = ()
    list_columns: Sequence[str] = ("genres",)
    # Input in spans (components/ingest/spans.py): the window and the directories' pattern; the
    # newest span pinned by the local runner (None: the largest present when ExampleGen runs).
    spans: SpanSettings = SpanSettings()
    newest_span: Optional[int] = None
