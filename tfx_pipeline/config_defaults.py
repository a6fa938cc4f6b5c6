"""`recdistill config --defaults`: the whole default configuration as commented YAML.

Every field of PipelineConfig and of its sections' dataclasses (the teacher's match_wide and cloze
nested in it) is written with its default and a one-line comment (the meanings of
docs/configuration.md's tables, kept here so that an installed command needs no docs/;
tests/tfx_pipeline/test_cli_config.py checks that both name the same settings). The output,
given as `--config`, changes nothing: config_from_dict(yaml.safe_load(text)) == PipelineConfig().
`split` is the one section whose defaults depend on the data (default_split):
it is written empty, its keys as comments with own data's values.
"""

import dataclasses
import enum
from typing import Any, Dict, List

import yaml

from components.ingest.splits import SplitSpec
from tfx_pipeline.config import PipelineConfig, default_split

HEADER = """\
# recdistill's default configuration (`recdistill config --defaults`): every setting with its default.
# Given as --config it changes nothing; a file may keep only the lines it changes (docs/configuration.md).
"""

# Meanings, from docs/configuration.md (section -> setting -> one line).
PIPELINE = {
    "pipeline_name":
        "the TFX pipeline name (1-63 letters, digits, _, -, .): names ML Metadata contexts and Kubeflow jobs",
    "split": "overrides of the dataset's default split (the keys below)",
    "cold_items":
        "a share of the catalog (a seeded draw) held out of training; all their interactions go to test and "
        "the report ranks them apart, report.json cold_items (docs/cold-items.md)",
    "max_bad_share":
        "the share of bad rows per input file that is dropped and counted; above it the run stops (exit 2; "
        "docs/data.md, \"Bad rows\")",
    "item_text_columns": "item columns that are text: tokenized by Transform, and the teacher's MiniLM reads them",
    "user_text_columns": "user columns that are text",
    "list_columns": "columns holding several values separated by | (checked against the data only when set)",
    "max_tokens": "tokens kept per text column (Transform's <text>_tokens, 0 pads)",
    "max_list_values": "values kept per list column (Transform's <list>_indices, 0 pads)",
    "numeric_buckets": "quantile buckets of a numeric column (Transform's <numeric>_bucket, 0 = missing)",
    "beam_workers":
        "Beam DirectRunner workers: 1 runs in-process (fastest on small data), more use that many worker "
        "processes",
    "beam_args": "further Beam arguments (--name=value), e.g. another runner, its project (docs/cloud.md)",
    "schema_path":
        "a curated schema.pbtxt: ImportSchemaGen replaces SchemaGen, so drift in new data stops at the "
        "validation gate",
    "teacher": "teacher overrides (the keys below)",
    "teacher_encoder": "minilm: the pretrained MiniLM-L6 BERT; tiny: a random 2-layer BERT (tests only)",
    "text_length": "tokens of an item's text the teacher's BERT reads (3-512; [CLS] and [SEP] take two)",
    "scoring_negatives":
        "per training interaction, this many sampled and this many hard negatives scored by the teacher (at "
        "least 1 when the student distills)",
    "scoring_workers": "Beam worker processes of TeacherScorer (each loads the teacher once); a scoring of at most "
                       "32,768 rows a split runs in-process on the DirectRunner",
    "scoring_candidate_budget":
        "fewer negatives when a split's rows x (1 + 2N) would exceed this many scored candidates (about 12 "
        "bytes each; docs/scale.md)",
    "student": "student overrides (the keys below); the no-KD twin is the same with beta = gamma = 0",
    "compression": "compression overrides (the keys below)",
    "bless_tolerance":
        "the push gate: the int8 TFLite model's ndcg@10 must be >= (1 - tolerance) x student_kd's (or short of it "
        "by less than the test's noise, paired per user) and >= (1 - tolerance) x the last blessed model's "
        "(paired too)",
    "bless_margin":
        "... and >= (1 + margin) x the best non-personalized baseline (popularity, trending); in (-1, 10), "
        "negative only for tiny test data",
    "trending_days":
        "the trending baseline ranks by interactions in the last this many days of training (temporal and "
        "time_cutoff splits only)",
    "ease_max_items": "the ease baseline (a dense item-item inverse) is skipped above this many catalog items",
    "spans": "input in spans (span-1/, span-2/, ... under --data; docs/spans.md): the keys below",
    "drift": "the drift check between the newest span and the one before (input in spans): the keys below",
}
SPLIT = {
    "method":
        "stratified (per user, a random share is test), temporal (per user, the latest share is test), "
        "time_cutoff (globally, everything at or after a timestamp is test) or newest_span (the newest span's "
        "latest share is test: the default of data in spans); docs/data.md, \"Running on your own data\"",
    "test_share": "the share of interactions in test, in [0, 1)",
    "eval_share": "the share of each user's train interactions carved out as the validation split, in [0, 1)",
    "seed": "the random draws' seed (0 to 2^32 - 1)",
    "test_from": "time_cutoff only: explicit cutoffs in Unix seconds (null, the default: derived from the shares)",
    "eval_from": "time_cutoff only: explicit cutoffs in Unix seconds (null, the default: derived from the shares)",
    "cold_items": "as the top-level cold_items (which, when set, takes its place)",
}
TEACHER = {
    "dim": "width of the BERT encoder (a multiple of heads)",
    "layers": "TransformerEncoder layers",
    "heads": "attention heads",
    "intermediate": "feed-forward width",
    "dropout": "dropout, in [0, 1)",
    "sequence": "items the BERT encoder reads, most recent first (at most history)",
    "history": "items the wide part reads",
    "objective":
        "match_wide: the encoder learns to reproduce the wide part's scores; cloze: BERT4Rec's masked-item "
        "training (kept for comparison); each has its own settings, the two keys below",
    "match_wide": "match_wide's settings (read when objective is match_wide)",
    "cloze": "cloze's settings (read when objective is cloze)",
    "refit":
        "the encoder that ranks test users: warm (phase one's, trained refit_epochs more on train + eval), "
        "scratch (trained again on train + eval for phase one's best number of epochs), none (phase one's as "
        "it is)",
    "refit_epochs": "epochs of the warm refit",
    "l2": "EASE's l2 weight; null: picked on the validation split",
    "half_life":
        "recency half-life of the wide part's history: a number of items, picked (on the eval split; without "
        "one: none) or none (no decay)",
    "use_text": "the pretrained MiniLM text in the item vectors (false: the ablation without it)",
    "use_bert": "the BERT encoder (false: the wide part alone)",
    "batch_size": "users per batch (the global batch under tf.distribute)",
    "epochs": "training epochs at most",
    "patience": "early stopping's patience, in epochs",
    "min_epochs": "no stop and no epoch picked before this one",
    "learning_rate": "Adam's learning rate",
    "seed": "the teacher's seed",
    "max_epoch_users": "an epoch is at most this many users, a fresh random draw each epoch (docs/scale.md)",
    "validation_users": "the wide part's choice and each epoch's validation rank at most this many eval users",
    "distribute":
        "tf.distribute strategy: default (one device), mirrored (the GPUs of one machine), "
        "multi_worker_mirrored (TF_CONFIG's workers); docs/scale.md",
    "mixed_precision": "Keras 3 mixed_float16 on a GPU (ignored, and logged, without one); scores stay float32",
    "warm_start": "the training of a teacher that starts from the last blessed run's (data in spans; the keys below)",
}
MATCH_WIDE = {
    "deep_weight":
        "the encoder's weight in the ranking (z(wide) + w z(deep)), at least 0; null: picked on the eval split "
        "from 0.25, 0.5, 0.75, 1 (without one: 0.75)",
}
CLOZE = {
    "mask_share": "the share of masked items, in [0, 1)",
    "future_share": "the share of cut-off recent items, in [0, 1)",
    "cloze_weight": "the cloze loss's weight",
    "wide_scale": "the wide part's initial scale (trained)",
    "gate": "the encoder's initial gate (trained)",
}
STUDENT = {
    "dim": "width of every embedding of both towers",
    "history": "the user's latest items the query tower averages (H of the deployed models)",
    "max_feature_bins": "features with more values are hashed into this many bins minus one, plus bin 0 for padding",
    "share_item_embeddings": "the query tower's history reuses the candidate tower's item id table",
    "user_rank": "the user id table trained as two factors of this rank from the start (none, an integer or a share of dim in (0, 1)): the deployed models keep the factors (docs/student-and-compression.md, \"Factorization\")",
    "alpha": "weight of the hard loss (positive)",
    "beta": "weight of the soft (distillation) loss",
    "gamma": "weight of the hint loss (item embeddings against the teacher's)",
    "soft_loss": "mse: logit matching; kl: T^2 x KL(teacher || student) at temperature",
    "soft_scale": "mse: the teacher's logits rescaled once to this standard deviation",
    "temperature": "kl only: the temperature T",
    "refit":
        "after early stopping has chosen the epochs, train again from the same start on train + eval (the "
        "final teacher's labels) for that many epochs",
    "hard_negatives":
        "full: softmax over the whole catalog; in_batch: TFRS Retrieval over the batch with the log-Q "
        "correction; auto: full up to full_softmax_items, in-batch above",
    "full_softmax_items": "auto's threshold (docs/scale.md has the measurement)",
    "item_id_dropout": "in training, the share of candidate items whose id vector is left out (their features only)",
    "recency_prior":
        "the deployed models add weight x log(1 + an item's interactions in the last recency_days days): picked (the "
        "weight picked on the eval split), none, or auto (picked for the newest_span and time_cutoff splits)",
    "recency_days": "the recency prior's window, in days before the run's latest interaction (test split included)",
    "batch_size": "rows per batch (the global batch under tf.distribute)",
    "learning_rate": "the learning rate",
    "epochs": "training epochs at most",
    "patience": "early stopping's patience, in epochs",
    "warm_epochs": "when the students start from the last blessed run's (data in spans): their epochs on the final "
                   "teacher's rows, or phase one's at most (teacher.warm_start.phase_one: true)",
    "warm_patience": "early stopping's patience for such a phase one",
    "max_epoch_rows":
        "an epoch is one pass over the rows, or this many rows of the repeated stream when there are more",
    "distribute": "tf.distribute strategy of both students, as the teacher's",
    "seed": "the students' seed",
}
COMPRESSION = {
    "rank": "low-rank factorization before pruning: the user and history-item tables and the scoring kernel as "
            "two factors of this rank each; none, an integer, or a share of the student's dim in (0, 1)",
    "full_rank_items": "with a rank, the most frequent items' history rows and scoring columns kept whole (mixed "
                       "dimensions), only the others factorized: a share of the catalog in [0, 1] (1.0: every item), or a count",
    "full_rank_coverage": "... and at least the most frequent items holding this share of the training interactions "
                          "(a flatter catalog keeps more whole), in [0, 1]; 0: full_rank_items alone",
    "min_kept": "the share of the KD student's eval ndcg@10 the compressed (int8) model must keep, in [0, 1]; below it "
                "the compression runs again without factorization, then at half the sparsity, and exports the first "
                "that keeps it (or the best); 0: no check",
    "target_sparsity": "the share of zeros in every Embedding table, in [0, 1)",
    "dense_sparsity": "the share of zeros in the scoring Dense, in [0, 1)",
    "prune_epochs": "fine-tuning epochs with pruning",
    "ramp_epochs": "the first epochs, raising the sparsity (at most prune_epochs)",
    "qat_epochs": "quantization-aware training epochs",
    "warm_prune_epochs": "prune_epochs when the KD student started from the last blessed run's (data in spans)",
    "warm_ramp_epochs": "ramp_epochs for such a run",
    "warm_qat_epochs": "qat_epochs for such a run",
    "learning_rate": "the fine-tuning learning rate",
    "pruning_frequency": "steps between pruning-mask updates",
    "reference_weight":
        "weight, times the student's beta, of the soft term against the uncompressed student's scores over "
        "the whole catalog",
}
WARM_START = {
    "phase_one": "when the teacher starts from the last blessed run's (data in spans): false trains refit_epochs "
                 "on train + eval with no validation, the students likewise; true runs phase one first",
    "epochs": "phase one's epochs in such a run (phase_one: true)",
    "min_epochs": "as min_epochs, for such a phase one",
    "patience": "as patience, for such a phase one",
    "refit_epochs": "the epochs on train + eval: the whole training without phase one, the refit's after it",
    "data": "what such a run trains on: newest_span (the teacher's users and the students' rows of the newest span) "
            "or window (every row, as a start from scratch)",
}
SPANS = {
    "window": "interactions of the latest this many spans are trained on (the newest included)",
    "pattern": "a span directory's name under --data; {SPAN} stands for its number (TFX's placeholder)",
}
DRIFT = {
    "categorical":
        "bounds of the L-infinity distance of value frequencies, newest span against the previous one, per "
        "categorical feature",
    "numeric": "bounds of the Jensen-Shannon divergence of their histograms, per numeric feature",
    "min_ratio": "drift when the newest span has fewer than this share of the previous span's examples",
    "max_ratio": "drift when it has more than this many times them",
    "on_drift": "what a run does on drift: scratch (train from scratch) or warm (start from the last blessed run)",
}
SECTIONS: Dict[str, Dict[str, str]] = {"": PIPELINE, "split": SPLIT, "teacher": TEACHER,
                                       "teacher.match_wide": MATCH_WIDE, "teacher.cloze": CLOZE,
                                       "teacher.warm_start": WARM_START,
                                       "student": STUDENT, "compression": COMPRESSION,
                                       "spans": SPANS, "drift": DRIFT}


def render_defaults() -> str:
    """The default PipelineConfig as commented YAML (one comment line before each setting)."""
    config = PipelineConfig()
    lines = [HEADER]
    for field in dataclasses.fields(PipelineConfig):
        lines.append(f"# {PIPELINE[field.name]}")
        value = getattr(config, field.name)
        if field.name == "split":
            lines.extend(_split_lines())
        elif dataclasses.is_dataclass(value):
            lines.extend(_section_lines(field.name, value, field.name))
        else:
            lines.append(f"{field.name}: {_yaml(value)}")
    return "\n".join(lines) + "\n"


def _section_lines(key: str, settings, section: str, indent: str = "") -> List[str]:
    """`key:` and every setting of a section's dataclass below it, nested sections (teacher's
    match_wide and cloze) as nested mappings; SECTIONS[section] has their comments."""
    lines = [f"{indent}{key}:"]
    for inner in dataclasses.fields(settings):
        value = getattr(settings, inner.name)
        lines.append(f"{indent}  # {SECTIONS[section][inner.name]}")
        if dataclasses.is_dataclass(value):
            lines.extend(_section_lines(inner.name, value, f"{section}.{inner.name}", indent + "  "))
        else:
            lines.append(f"{indent}  {inner.name}: {_yaml(value)}")
    return lines


def _split_lines() -> List[str]:
    """split: {} and its keys as comments: movielens-100k's and own data's defaults differ."""
    own, builtin = default_split("own data"), default_split("movielens-100k")
    differ = [f"{f.name} {_yaml(getattr(builtin, f.name))}" for f in dataclasses.fields(SplitSpec)
              if getattr(builtin, f.name) != getattr(own, f.name)]
    lines = ["split: {}",
             f"  # Per dataset; own data's defaults below (movielens-100k: {', '.join(differ)}). Uncomment to set."]
    for field in dataclasses.fields(SplitSpec):
        lines.append(f"  # {field.name}: {_yaml(getattr(own, field.name))}  # {SPLIT[field.name]}")
    return lines


def _yaml(value: Any) -> str:
    """One value in YAML's flow style (tuples as lists, Enum members as their values; strings quoted
    only where YAML needs it)."""
    value = list(value) if isinstance(value, tuple) else value.value if isinstance(value, enum.Enum) else value
    return yaml.safe_dump([value], default_flow_style=True, width=1_000).strip()[1:-1]
