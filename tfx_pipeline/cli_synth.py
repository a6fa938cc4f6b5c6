"""`recdistill synth`: a synthetic dataset in the input format, or N weekly spans that drift."""

from tfx_pipeline.cli_help import subcommand
from tfx_pipeline.cli_exits import EXIT_BAD_INPUT, fail


def add_parser(commands) -> None:
    """The `synth` subcommand on the CLI's subparsers."""
    parser = subcommand(commands, "synth", "write a synthetic dataset in the input format", [
        "recdistill synth --users 1000 --items 500 --interactions 100000 --output data/synth",
        "recdistill synth --users 2000 --items 1000 --interactions 160000 --spans 8 --shift-at 5 --output data/spans"],
        description="Writes a synthetic dataset in the input format (docs/data.md); with --spans,\n"
                    "N weekly spans that drift (tfx_pipeline/datasets/synth_spans.py).")
    parser.add_argument("--users", type=int, required=True, help="users in all (over all spans)")
    parser.add_argument("--items", type=int, required=True, help="items in all (over all spans)")
    parser.add_argument("--interactions", type=int, required=True,
                       help="interactions in all (split evenly over the spans)")
    parser.add_argument("--output", required=True, metavar="DIR", help="the directory written")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same bytes (default %(default)s)")
    parser.add_argument("--bad-share", type=float, default=0.0,
                       help="share of bad interaction rows to inject (4 kinds; default %(default)s; not with --spans)")
    parser.add_argument("--spans", type=int, metavar="N",
                       help="write DIR/span-1 ... DIR/span-N, one week each, with new users and items "
                            "every span and tastes that drift (default: one dataset, no spans)")
    parser.add_argument("--shift-at", type=int, metavar="K",
                       help="an abrupt taste shift in span K, 2 <= K <= N (default: none, only gradual drift)")
    parser.set_defaults(handler=synth)


def synth(args) -> int:
    from tfx_pipeline.datasets.synth import write_synthetic

    if min(args.users, args.items, args.interactions) < 1 or not 0 <= args.bad_share < 1 or args.seed < 0:
        return fail("--users, --items and --interactions must be positive, --bad-share in [0, 1), --seed not negative",
                    EXIT_BAD_INPUT)
    if args.spans is not None or args.shift_at is not None:
        return _spans(args)
    try:
        summary = write_synthetic(args.output, users=args.users, items=args.items,
                                  interactions=args.interactions, seed=args.seed, bad_share=args.bad_share)
    except OSError as error:  # e.g. --output under a file, or not writable
        return fail(f"--output {args.output}: {error.strerror or error}", EXIT_BAD_INPUT)
    print(f"wrote {summary['interactions']:,} interactions, {summary['users']:,} users, "
          f"{summary['items']:,} items to {args.output}; bad rows: {summary['bad'] or 'none'}")
    return 0


def _spans(args) -> int:
    from tfx_pipeline.datasets import synth_spans

    problem = _synth_spans_problem(args, synth_spans.MAX_INTERACTIONS_PER_SPAN)
    if problem:
        return fail(problem, EXIT_BAD_INPUT)
    try:
        summary = synth_spans.write_synthetic_spans(
            args.output, spans=args.spans, users=args.users, items=args.items,
            interactions=args.interactions, seed=args.seed, shift_at=args.shift_at)
    except ValueError as error:  # e.g. a shift with a single taste cluster (too few items)
        return fail(str(error), EXIT_BAD_INPUT)
    except OSError as error:
        return fail(f"--output {args.output}: {error.strerror or error}", EXIT_BAD_INPUT)
    shift = f"; taste shift in span {args.shift_at}" if args.shift_at else ""
    print(f"wrote {args.spans} spans (span-1 ... span-{args.spans}) to {args.output}: "
          f"{summary['interactions']:,} interactions, {summary['users']:,} users, {summary['items']:,} items{shift}")
    return 0


def _synth_spans_problem(args, max_per_span: int) -> str | None:
    """What is wrong with synth's flags for spans, in one line naming the flags, or None."""
    spans = args.spans
    if spans is None:
        return "--shift-at needs --spans"
    if spans < 1:
        return "--spans must be at least 1"
    if args.shift_at is not None and not 2 <= args.shift_at <= spans:
        return f"--shift-at must be in 2..{spans} (2..--spans), got {args.shift_at}"
    if args.bad_share:
        return "--bad-share is not supported with --spans"
    if min(args.users, args.items) < 2 * spans:
        return f"--users and --items must be at least 2 * --spans ({2 * spans}): some arrive in every span"
    if not spans <= args.interactions <= spans * max_per_span:
        return (f"--interactions must be at least --spans ({spans}) and at most --spans * {max_per_span:,} "
                "(one a second in a week)")
    return None
