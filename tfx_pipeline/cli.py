"""The `recdistill` command line. Exit codes: 0 done, 1 failure, 2 bad input or configuration."""

import argparse
import logging
import os
import sys
import warnings

from models.foundation import env  # noqa: F401  (before anything imports TensorFlow)
from tfx_pipeline import cli_help, cli_serving, cli_synth, compile_placeholders  # noqa: E402
from tfx_pipeline.cli_help import subcommand  # noqa: E402
from tfx_pipeline.cli_exits import EXIT_BAD_INPUT, EXIT_FAILURE, fail as _fail  # noqa: E402



def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    _quiet_imports()
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("recdistill: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recdistill", description=__doc__,
                                     epilog="`recdistill COMMAND --help` shows a command's options, defaults and examples.")
    parser.add_argument("--version", action="version", version=f"recdistill {cli_help.version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = subcommand(commands, "run", "run the pipeline on a dataset", [
        "recdistill run --data movielens-100k --output runs/movielens-100k",
        "recdistill run --data data/shop --output runs/shop --config shop.yaml",
        "recdistill run --data gs://BUCKET/data --output runs/shop --pipeline-root gs://BUCKET/root --push-root gs://BUCKET"])
    run.add_argument("--data", required=True,
                     help="movielens-100k, or a directory (or gs:// URI) with interactions.csv, users.csv, items.csv")
    run.add_argument("--output", required=True, help="the run's local directory (ML Metadata, logs, report)")
    run.add_argument("--pipeline-root", metavar="URI",
                     help="where the TFX artifacts go, a directory or gs:// URI (default: OUTPUT/pipeline_root)")
    run.add_argument("--push-root", metavar="URI",
                     help="where serving/ and mobile/ are pushed, a directory or gs:// URI (default: OUTPUT)")
    run.add_argument("--config", help="a YAML or JSON file of pipeline settings (default: every setting's default, "
                                      "as `recdistill config --defaults` prints them)")
    run.add_argument("--runner", choices=["local"], default="local", help="where the DAG runs")
    run.add_argument("--until", metavar="COMPONENT",
                     help="stop after this component, e.g. Transform (default: run the whole DAG)")
    run.set_defaults(handler=_run)

    show = subcommand(commands, "report", "print the report of a finished run, or two runs side by side", [
        "recdistill report runs/movielens-100k",
        "recdistill report runs/seed-42 runs/seed-7"])
    show.add_argument("output", metavar="DIR", help="the --output directory of a finished `recdistill run`")
    show.add_argument("other", metavar="DIR_B", nargs="?",
                      help="a second run: both side by side, B's deltas against DIR, and the settings, inputs "
                           "and code that differ (default: none, DIR alone)")
    show.set_defaults(handler=_report)

    cli_synth.add_parser(commands)

    cli_serving.add_parsers(commands)

    add = subcommand(commands, "add-items", "add new catalog items to both deployed models, without retraining", [
        "recdistill add-items --run runs/movielens-100k --items new_items.csv",
        "recdistill add-items --run runs/shop --items gs://BUCKET/new_items.csv --push-root gs://BUCKET"])
    add.add_argument("--run", required=True, metavar="DIR",
                     help="the --output directory of a finished run (or a copy of one: the copy is extended)")
    add.add_argument("--items", required=True, metavar="NEW.csv", help="new items, in the columns of the run's items.csv")
    add.add_argument("--push-root", metavar="URI",
                     help="the directory (or gs:// URI) holding serving/ and mobile/ (default: the run's own, "
                          "under --run; required when the run pushed elsewhere)")
    add.add_argument("--max-bad-share", type=float, metavar="F",
                     help="share of bad rows above which nothing is added (default: the run's max_bad_share)")
    add.set_defaults(handler=_add_items)

    compile_ = subcommand(commands, "compile", "compile the DAG into a Kubeflow Pipelines v2 spec", [
        "recdistill compile --output pipeline.json --image REGISTRY/recdistill:TAG --data-root gs://BUCKET/data "
        "--pipeline-root gs://BUCKET/root --push-root gs://BUCKET --strict",
        "recdistill compile --output pipeline.yaml --spans --config dataflow.yaml --image REGISTRY/recdistill:TAG "
        "--data-root gs://BUCKET/spans --pipeline-root gs://BUCKET/root --push-root gs://BUCKET"],
        description="Compile the DAG into a Kubeflow Pipelines v2 spec. A setting not given is written as a "
                    "placeholder,\nnamed on one line each; --strict refuses to write any.")
    compile_.add_argument("--runner", choices=["kubeflow"], default="kubeflow", help="the orchestrator")
    compile_.add_argument("--output", required=True, help="pipeline.json (Vertex AI PipelineJob) or pipeline.yaml (KFP)")
    compile_.add_argument("--image", help="the pipeline image (tfx_pipeline/Dockerfile), e.g. REGISTRY/recdistill:TAG "
                                          f"(default: the placeholder {compile_placeholders.DEFAULT_IMAGE})")
    compile_.add_argument("--config", help="a YAML or JSON file of pipeline settings, e.g. beam_args selecting Dataflow "
                                           "(default: every setting's default)")
    compile_.add_argument("--data-root", help="the input directory as the cluster sees it, gs://... "
                                              f"(default: the placeholder {compile_placeholders.DEFAULT_DATA_ROOT})")
    compile_.add_argument("--pipeline-root", help="where artifacts go, gs://... "
                                                  f"(default: the placeholder {compile_placeholders.DEFAULT_PIPELINE_ROOT})")
    compile_.add_argument("--push-root", help="where serving/ and mobile/ are pushed, gs://... "
                                              f"(default: the placeholder {compile_placeholders.DEFAULT_PUSH_ROOT})")
    compile_.add_argument("--spans", action="store_true",
                          help="the data root holds span-1/, span-2/, ...: each run takes the newest span, docs/spans.md")
    compile_.add_argument("--strict", action="store_true",
                          help="refuse to write a spec holding a placeholder, exit 2 naming each")
    compile_.set_defaults(handler=_compile)

    config = subcommand(commands, "config", "print or check pipeline settings (--config files)", [
        "recdistill config --defaults > shop.yaml",
        "recdistill config --check shop.yaml"])
    what = config.add_mutually_exclusive_group(required=True)
    what.add_argument("--defaults", action="store_true",
                      help="print every setting with its default and meaning, as YAML a --config file may start from")
    what.add_argument("--check", metavar="FILE",
                      help="check a --config file: exit 2 with one line naming a bad setting")
    config.set_defaults(handler=_config)
    return parser


def _run(args) -> int:
    # --data and the config are checked before TensorFlow, Beam or TFX is imported (seconds each):
    # a typo is answered at once. tfx_pipeline/config.py and the settings it reads import none.
    from tfx_pipeline.config import BUILTIN_DATASETS, ConfigError, load_config

    from models.foundation import storage

    local = not storage.is_uri(args.data)  # a gs:// directory is looked up through TensorFlow's file system
    if args.data not in BUILTIN_DATASETS and not (os.path.isdir(args.data) if local else storage.isdir(args.data)):
        return _fail(f"--data {args.data}: not a built-in dataset ({', '.join(BUILTIN_DATASETS)}) nor a directory", EXIT_BAD_INPUT)
    try:
        config = load_config(args.config)
    except (ConfigError, ValueError) as error:
        return _fail(str(error), EXIT_BAD_INPUT)

    from components.ingest.quality import DataQualityError
    from components.validation_gate import DataAnomaliesError
    from tfx_pipeline import report
    from tfx_pipeline.config_columns import check_columns
    from tfx_pipeline.local_runner import ComponentFailed, RunPaths, resolve_data, run_local

    try:
        # Settings that name the data's columns are checked before anything runs (a built-in dataset
        # is converted first: run_local finds it converted).
        data_dir = resolve_data(args.data, RunPaths(args.output, args.pipeline_root, args.push_root))
        check_columns(config, data_dir, source=args.config or "config")
        result = run_local(config, args.data, args.output, until=args.until,
                           pipeline_root=args.pipeline_root, push_root=args.push_root)
    except (ConfigError, ValueError, ImportError) as error:  # ImportError: a built-in dataset's files absent
        if isinstance(error, ComponentFailed):
            raise
        return _fail(str(error), EXIT_BAD_INPUT)
    except ComponentFailed as failure:
        if isinstance(failure.cause, (DataQualityError, DataAnomaliesError)):
            return _fail(f"{failure.component}: {failure.cause}", EXIT_BAD_INPUT)
        return _fail(f"{failure}; details in {failure.log_path}", EXIT_FAILURE)
    print()
    print(report.render(result), end="")  # as report/summary.txt holds it
    print(f"\nreport: {os.path.join(os.path.abspath(args.output), report.REPORT_DIR, 'report.json')}")
    print(f"log: {os.path.abspath(RunPaths(args.output, args.pipeline_root, args.push_root).log)}")
    return 0


def _report(args) -> int:
    from tfx_pipeline import report, report_compare

    reports = []
    for directory in (d for d in (args.output, args.other) if d is not None):
        try:
            reports.append(report.read_report(directory))
        except FileNotFoundError:
            return _fail(f"{directory}: no report/report.json (has `recdistill run` finished there?)", EXIT_BAD_INPUT)
        except ValueError as error:  # not UTF-8, not JSON
            path = os.path.join(directory, report.REPORT_DIR, "report.json")
            return _fail(f"{path}: not a report ({' '.join(str(error).split())})", EXIT_BAD_INPUT)
    if args.other:
        print(report_compare.render(args.output, reports[0], args.other, reports[1]), end="")
    else:
        print(report.render(reports[0]), end="")
    return 0


def _add_items(args) -> int:
    from components.ingest.csv_rows import InputFileError
    from components.ingest.quality import DataQualityError
    from components.push.push import LockBusy, PushConflict
    from tfx_pipeline import add_items, extension_checks, new_items
    from tfx_pipeline.pushed_lineage import LineageError
    from models.foundation.storage import PickledArrayError

    if args.max_bad_share is not None and not 0 <= args.max_bad_share < 1:
        return _fail("--max-bad-share must be in [0, 1)", EXIT_BAD_INPUT)
    try:
        result = add_items.add_items(args.run, args.items, push_root=args.push_root, max_bad_share=args.max_bad_share)
    except DataQualityError as error:
        return _fail(f"{error}; nothing was added", EXIT_BAD_INPUT)
    except (LineageError, InputFileError, new_items.IdsInCatalog, PickledArrayError) as error:
        return _fail(f"{error}", EXIT_BAD_INPUT)
    except PushConflict as error:  # another add-items or a pipeline push published first: its versions stay
        return _fail(f"{error}", EXIT_BAD_INPUT)
    except (extension_checks.CheckFailed, LockBusy) as error:
        return _fail(f"{error}; nothing was pushed", EXIT_FAILURE)
    if result["bad"]:
        print(f"{len(result['bad'])} of {result['rows']} rows skipped:")
        print("".join(f"  {line}\n" for line in result["bad"]), end="")
    checks, first, last = result["checks"], *result["indices"]
    print(f"added {len(result['added'])} items (indices {first}-{last}) in {result['seconds']:.1f} s")
    print(f"  serving version {result['versions']['serving']}: {result['serving']}")
    print(f"  mobile version {result['versions']['mobile']}: {result['mobile']}")
    print(f"  old items' scores unchanged on {checks['users']} users: SavedModel max difference "
          f"{checks['saved_model_old_max_diff']:.2g}, int8 {checks['int8_old_max_diff']:.2g} (one int8 step: "
          f"{checks['int8_step']:.3g}); int8/SavedModel top-10 overlap {checks['parity_top10_overlap']:.2f}")
    print(f"  new items: in the top-10 of {checks['users_with_new_in_top10']:.0%} of those users, median best rank "
          f"{checks['new_best_rank_median']:.0f}")
    return 0


def _compile(args) -> int:
    from tfx_pipeline.config import ConfigError, load_config

    missing = compile_placeholders.flags_missing(args)
    if args.strict and missing:  # before TFX is imported: answered at once
        return _fail(f"--strict: {', '.join(missing)} not given (each would be a placeholder); nothing written",
                     EXIT_BAD_INPUT)
    try:
        config = load_config(args.config)
    except (ConfigError, ValueError) as error:
        return _fail(str(error), EXIT_BAD_INPUT)

    from tfx_pipeline import kubeflow

    roots = {k: v for k, v in (("data_root", args.data_root), ("pipeline_root", args.pipeline_root),
                               ("push_root", args.push_root)) if v}
    try:
        spec = kubeflow.compile_pipeline(args.output, args.image or kubeflow.DEFAULT_IMAGE, config,
                                         spans=args.spans, **roots)
    except (ConfigError, ValueError, ImportError) as error:
        return _fail(str(error), EXIT_BAD_INPUT)
    tasks = (spec.get("pipelineSpec") or spec)["root"]["dag"]["tasks"]
    print(f"wrote {args.output}: {len(tasks)} tasks ({', '.join(sorted(tasks))})")
    for line in compile_placeholders.placeholders(args):
        print(f"placeholder: {line}")
    return 0


def _config(args) -> int:
    from tfx_pipeline.config import ConfigError, load_config

    if args.defaults:
        from tfx_pipeline.config_defaults import render_defaults

        print(render_defaults(), end="")
        return 0
    try:
        load_config(args.check)
    except ConfigError as error:
        return _fail(str(error), EXIT_BAD_INPUT)
    print(f"{args.check}: the settings are valid")
    return 0


def _quiet_imports() -> None:
    """Library import-time notices (Python version support, optional codecs) are not for users."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.getLogger().addHandler(logging.NullHandler())


if __name__ == "__main__":
    sys.exit(main())
