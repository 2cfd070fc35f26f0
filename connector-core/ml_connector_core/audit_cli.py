"""`mlc-audit`: read the audit trail of ml-connector's targets, and replay what failed.

    mlc-audit runs [--limit N] [--flow F] [--no-pipeline]
    mlc-audit failures [--run R] [--stream S] [--key JSON] [--each]
    mlc-audit show (ENTRY_ID | --key JSON [--stream S])
    mlc-audit compact
    mlc-audit replay (--run R | --stream S | --key JSON | --entry ID ...) --target-command "CMD ..." [--dry-run]

The store is --url, else $MLC_AUDIT_URL, else .ml-connector/audit.sqlite under the current folder.

`runs` shows each run's status as it stands, with why: a run still recorded running whose process is gone is
interrupted (at once on the same host; elsewhere once its heartbeat is older than $MLC_AUDIT_LEASE_SECONDS, 300), and a
target run that succeeded inside a Meltano run that failed (its tap failed) is partial, when Meltano's database can be
read ($MELTANO_DATABASE_URI, else the one the run recorded, else .meltano/meltano.db here).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
from array import array
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

import msgspec

from ml_connector_core.audit import (
    AUDIT_URL_ENV,
    LEASE_ENV,
    AuditError,
    AuditTrail,
    FailureGroup,
    RunInfo,
    RunStatus,
    StoredEntry,
    dump_json,
)
from ml_connector_core.meltano_runs import lookup_for_reader
from ml_connector_core.redaction import redact_text

EXIT_TARGET_FAILED = 1
EXIT_USAGE = 2
STDERR_TAIL_LINES = 40
REPLAY_PLUGIN = "mlc-audit replay"
#: Set for the target command to the replay run's id: the target knows a person asked for these records to be sent
#: again (target-teams then posts also cards whose delivery was unknown, which it never posts again on its own).
REPLAY_RUN_ENV = "MLC_REPLAY_RUN_ID"
# Bounded IN lists (SQLite takes at most 32,766 variables in one statement).
ENTRY_IDS_PER_QUERY = 500


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with AuditTrail(args.url, must_exist=True) as trail:
            return args.handler(trail, args)
    except AuditError as exc:
        print(f"mlc-audit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `mlc-audit failures | head`
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlc-audit",
        description="Read the audit trail of ml-connector's targets, and replay what failed.",
    )
    parser.add_argument(
        "--url",
        help=f"the audit database (default: ${AUDIT_URL_ENV}, else .ml-connector/audit.sqlite in the current folder)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    runs = commands.add_parser(
        "runs", help="the latest runs: status and why, counts per outcome and operation",
        description="The latest runs, newest first, each with its status as it stands and why: succeeded, partial "
        "(records not delivered, the input ended early, or the pipeline failed), failed, interrupted (its process "
        f"is gone, or sent no heartbeat for ${LEASE_ENV} seconds, 300 by default) or running.",
    )
    runs.add_argument("--limit", type=_positive_int, default=20, metavar="N", help="how many runs (default 20)")
    runs.add_argument("--flow", metavar="F", help="only runs of this flow")
    runs.add_argument("--no-pipeline", action="store_true",
                      help="do not read Meltano's database for how the runs' pipelines ended")
    runs.set_defaults(handler=_runs)

    failures = commands.add_parser(
        "failures", help="failed entries not replayed yet, grouped by run, stream, destination and error",
        description="Failed entries no replay has delivered yet. Entries of one run, stream and destination that "
        "failed with the same error are one group: its count, the error once, and the entry ids.",
    )
    _add_selection(failures, entries=False)
    failures.add_argument("--each", action="store_true", help="list every entry on its own, with its key and error")
    failures.set_defaults(handler=_failures)

    show = commands.add_parser(
        "show", help="everything about one entry, with its exact payload",
        description="Everything about one entry, with its exact payload: the entry ENTRY_ID, or the latest entry of "
        "a record key (--key, with --stream when streams share key names), the ids of its earlier entries listed.",
    )
    show.add_argument("entry_id", type=_positive_int, metavar="ENTRY_ID", nargs="?")
    show.add_argument("--key", type=_key_json, metavar="JSON",
                      help="""the latest entry of this record key, e.g. '{"order_no": "PO-1"}'""")
    show.add_argument("--stream", metavar="S", help="with --key: of this stream")
    show.set_defaults(handler=_show)

    compact = commands.add_parser(
        "compact", help="make a trail written by an earlier version lean (its entries stay, ids unchanged)",
        description="Move the succeeded entries an earlier version wrote one per row into compressed blocks (every "
        "value and id unchanged), merge small blocks (runs that were killed before merging theirs), and give the "
        "space back (SQLite: VACUUM, which needs a moment alone with the file). Failed entries stay as they are.",
    )
    compact.set_defaults(handler=_compact)

    replay = commands.add_parser(
        "replay",
        help="send failed entries again into a target command (SCHEMA, then one RECORD per entry on its stdin)",
        description="Send the failed, not yet replayed entries that match every given selector into a Singer target: "
        "each stream's remembered SCHEMA, then one RECORD per entry, then nothing else. When the target exits 0 the "
        "entries are marked replayed; otherwise they stay failed.",
    )
    _add_selection(replay, entries=True)
    replay.add_argument(
        "--target-command",
        metavar='"CMD ..."',
        help='the target to run, e.g. "target-databricks --config config.json" or "meltano invoke target-databricks"',
    )
    replay.add_argument("--dry-run", action="store_true", help="print the Singer messages instead of running a target")
    replay.set_defaults(handler=_replay)
    return parser


def _add_selection(parser: argparse.ArgumentParser, *, entries: bool) -> None:
    parser.add_argument("--run", metavar="R", help="entries of this run")
    parser.add_argument("--stream", metavar="S", help="entries of this stream")
    parser.add_argument(
        "--key", type=_key_json, metavar="JSON", help="""entries of this record key, e.g. '{"order_no": "PO-1"}'"""
    )
    if entries:
        parser.add_argument(
            "--entry", dest="entries", type=_positive_int, nargs="+", action="extend", metavar="ID",
            help="these entries (by id, as `failures` lists them)",
        )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _key_json(text: str) -> dict[str, Any]:
    example = """'{"order_no": "PO-1", "line_no": 2}'"""
    try:
        key = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc.msg} at character {exc.pos}): {text!r}; expected e.g. {example}") from None
    if not isinstance(key, dict) or not key:
        raise argparse.ArgumentTypeError(f"a key is a JSON object of key properties and values, e.g. {example}; got {text!r}")
    return key


# --- runs ---


def _runs(trail: AuditTrail, args: argparse.Namespace) -> int:
    problems: list[str] = []
    lookup = None if args.no_pipeline else lookup_for_reader(os.environ, problems)
    runs = trail.runs(args.limit, flow=args.flow, pipeline_lookup=lookup)
    if not runs:
        print("no runs" + (f" of flow {args.flow!r}" if args.flow else "") + f" in {trail!r}")
        return 0
    header = ("RUN", "FLOW", "PLUGIN", "STARTED", "FINISHED", "STATUS", "ENTRIES", "WHY")
    _print_table(header, [_run_row(run) for run in runs])
    for problem in problems:
        print(f"mlc-audit: how the pipeline ended is not shown for runs linked to Meltano runs: {problem}",
              file=sys.stderr)
    return 0


def _run_row(run: RunInfo) -> tuple[str, ...]:
    outcomes = ", ".join(f"{name} {count}" for name, count in sorted(run.outcomes.items()))
    operations = ", ".join(f"{name} {count}" for name, count in sorted(run.operations.items()))
    counts = f"{outcomes} | {operations}" if outcomes else "none"
    return (run.run_id, run.flow, run.plugin, _time(run.started_at), _time(run.finished_at), run.status, counts,
            run.reason or "")


# --- failures ---


def _failures(trail: AuditTrail, args: argparse.Namespace) -> int:
    selection = _selection(trail, args)
    if args.each:
        return _failures_each(trail, selection, args)
    groups: dict[tuple[str, str, str, str], _FailureGroupIds] = {}
    for entry in trail.failures(**selection):
        key = (entry.run_id, entry.stream, entry.destination or "-", entry.error or "(no error text recorded)")
        group = groups.get(key)
        if group is None:
            group = groups[key] = _FailureGroupIds(entry.flow)
        group.ids.append(entry.id)
    if not groups:
        print(f"no failed entries waiting for a replay ({_describe_selection(args)})")
        return 0
    total = sum(len(group.ids) for group in groups.values())
    print(f"failed entries not replayed yet ({_describe_selection(args)}), by run, stream, destination and error:")
    for (run_id, stream, destination, error), group in groups.items():
        count = len(group.ids)
        print(f"\n{count} entr{'y' if count == 1 else 'ies'}  run {run_id}  {stream} -> {destination}  "
              f"flow {group.flow}")
        for error_line in error.splitlines() or [""]:
            print(f"    {error_line}")
        print(f"    {_compact_ids(group.ids)}")
    print(
        f"\n{total} failed entr{'y' if total == 1 else 'ies'} in {len(groups)} group{'' if len(groups) == 1 else 's'}; "
        "`mlc-audit show ID` for one entry, `mlc-audit failures --each` for every entry with its key, "
        "`mlc-audit replay` to send them again"
    )
    return 0


class _FailureGroupIds:
    __slots__ = ("flow", "ids")

    def __init__(self, flow: str) -> None:
        self.flow = flow
        self.ids = array("q")  # 8 bytes an entry: a store with millions of failures still groups in memory


#: How many ids or ranges of ids a group shows before "and N more".
SHOWN_ID_ITEMS = 20


def _compact_ids(ids: Iterable[int], limit: int = SHOWN_ID_ITEMS) -> str:
    """"#12-57, #60, #63-64 and 120 more": runs of consecutive ids as ranges, at most ``limit`` ids or ranges."""
    ranges: list[list[int]] = []
    for entry_id in sorted(ids):
        if ranges and entry_id == ranges[-1][1] + 1:
            ranges[-1][1] = entry_id
        elif not ranges or entry_id != ranges[-1][1]:
            ranges.append([entry_id, entry_id])
    shown = ranges[:limit]
    text = ", ".join(f"#{first}" if first == last else f"#{first}-{last}" for first, last in shown)
    hidden = sum(last - first + 1 for first, last in ranges[limit:])
    return f"{text} and {hidden} more" if hidden else text


def _failures_each(trail: AuditTrail, selection: dict[str, Any], args: argparse.Namespace) -> int:
    shown = 0
    for entry in trail.failures(**selection):
        if shown == 0:
            print(f"failed entries not replayed yet ({_describe_selection(args)}):")
        shown += 1
        print(
            f"\n#{entry.id}  {entry.stream}  key {entry.record_key}  {entry.operation} -> {entry.destination or '-'}"
            f"  attempts {entry.attempts}  run {entry.run_id}  {_time(entry.written_at)}"
        )
        for line in (entry.error or "(no error text recorded)").splitlines() or [""]:
            print(f"    {line}")
    if shown == 0:
        print(f"no failed entries waiting for a replay ({_describe_selection(args)})")
    else:
        print(f"\n{shown} failed entr{'y' if shown == 1 else 'ies'}; `mlc-audit show ID` for one, `mlc-audit replay` to send them again")
    return 0


# --- show ---


def _show(trail: AuditTrail, args: argparse.Namespace) -> int:
    if (args.entry_id is None) == (args.key is None):
        raise AuditError("show needs an ENTRY_ID or --key JSON (with --stream S when streams share key names)")
    if args.stream is not None and args.key is None:
        raise AuditError("--stream goes with --key")
    earlier: list[StoredEntry] = []
    if args.key is not None:
        found = list(trail.entries(stream=args.stream, key=args.key))
        if not found:
            where = f" of stream {args.stream!r}" if args.stream else ""
            raise AuditError(f"no entries{where} with key {dump_json(args.key)} in {trail!r}")
        streams = sorted({entry.stream for entry in found})
        if len(streams) > 1:
            raise AuditError(f"key {dump_json(args.key)} has entries in streams {', '.join(streams)}: add --stream")
        *earlier, entry = found
    else:
        entry = trail.entry(args.entry_id)
    run = trail.run(entry.run_id)
    fields = [
        ("entry", str(entry.id)),
        ("run", f"{entry.run_id} ({run.plugin}, {run.status}{': ' + run.reason if run.reason else ''})"),
        ("flow", entry.flow),
        ("stream", entry.stream),
        ("key", entry.record_key),
        ("version", entry.version or "-"),
        ("operation", entry.operation),
        ("destination", entry.destination or "-"),
        ("outcome", entry.outcome),
        ("attempts", str(entry.attempts)),
        ("written at", _time(entry.written_at)),
    ]
    if entry.replay_of is not None:
        fields.append(("replay of", f"entry {entry.replay_of}"))
    for answer in trail.replays_of(entry.id):
        fields.append(("replayed by", f"entry {answer.id} in run {answer.run_id} at {_time(answer.written_at)}"))
    if earlier:
        fields.append(("earlier entries", _compact_ids(e.id for e in earlier)))
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{name + ':':<{width + 2}}{value}")
    if entry.error:
        print("error:")
        for line in entry.error.splitlines():
            print(f"    {line}")
    payload_json = entry.payload_json
    if payload_json is None and entry.payload_note is not None:
        pointer = _last_written(trail, entry) if entry.payload_held_elsewhere else ""
        print(f"payload: ({entry.payload_note}{pointer})")
    elif payload_json is None:
        print("payload: (none recorded)")
    else:
        # Reformat the stored text itself: no number goes through a float or even a Decimal on the way.
        print("payload:")
        print(msgspec.json.format(payload_json, indent=2))
    source_json = entry.source_json
    if source_json is not None:
        print("record as received:")
        print(msgspec.json.format(source_json, indent=2))
    return 0


def _last_written(trail: AuditTrail, entry: StoredEntry) -> str:
    """For an entry that wrote nothing: which entry wrote the record's payload last before it."""
    written = [e.id for e in trail.entries(stream=entry.stream, key=entry.key, outcome="succeeded")
               if e.id < entry.id and e.operation in ("insert", "update")]
    return f"; the last payload written for this key is entry {written[-1]}" if written else ""


# --- compact ---


def _compact(trail: AuditTrail, args: argparse.Namespace) -> int:
    result = trail.compact()
    print(f"moved {result.moved_rows} entr{'y' if result.moved_rows == 1 else 'ies'} into blocks, merged "
          f"{result.merged_blocks} small block{'' if result.merged_blocks == 1 else 's'}; "
          f"{_size(result.bytes_before)} before, {_size(result.bytes_after)} now")
    return 0


def _size(count: int | None) -> str:
    if count is None:
        return "size unknown"
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


# --- replay ---


def _replay(trail: AuditTrail, args: argparse.Namespace) -> int:
    if not (args.run or args.stream or args.key or args.entries):
        raise AuditError("say what to replay: --run, --stream, --key and/or --entry")
    if not args.dry_run and not args.target_command:
        raise AuditError('replay needs --target-command "CMD ..." (or --dry-run to print the messages)')
    selection = _selection(trail, args)
    if args.entries:
        _warn_about_entries_not_failed(trail, args.entries)
    groups = trail.failure_groups(**selection)
    if not groups:
        print(f"nothing to replay: no failed entries waiting ({_describe_selection(args)})")
        return 0
    _check_replayable(groups)
    total = sum(group.entries for group in groups)
    streams = sorted({group.stream for group in groups})

    if args.dry_run:
        out = sys.stdout.buffer
        for line in _singer_lines(trail, trail.failures(**selection), array("q")):
            out.write(line)
        out.flush()
        return 0

    argv = shlex.split(args.target_command)
    if not argv:
        raise AuditError("--target-command is empty")
    flows = sorted({group.flow for group in groups})
    replay_run = trail.start_run(flow=",".join(flows), plugin=REPLAY_PLUGIN)
    summary: dict[str, Any] = {
        "target_command": redact_text(args.target_command),
        "selection": _describe_selection(args),
        "entries": total,
        "streams": streams,
    }
    sent_ids = array("q")
    try:
        returncode, stderr_tail, complete = _feed_target(argv, _singer_lines(trail, trail.failures(**selection), sent_ids),
                                                         {**os.environ, REPLAY_RUN_ENV: replay_run.run_id})
    except BaseException as exc:
        replay_run.finish(RunStatus.FAILED, {**summary, "error": f"{type(exc).__name__}: {exc}"})
        raise

    # The target may have delivered entries itself (ml-connector's targets redo their flow's failures first and mark
    # them replayed): what is printed and recorded is what the audit trail says now.
    still_failed, done_by_target = [], 0
    for start in range(0, len(sent_ids), ENTRY_IDS_PER_QUERY):
        for entry in trail.entries(entry_ids=sent_ids[start : start + ENTRY_IDS_PER_QUERY]):
            if entry.outcome == "failed":
                still_failed.append(entry.id)
            elif entry.outcome == "replayed":
                done_by_target += 1
    if returncode == 0 and complete:
        marked = trail.mark_replayed(still_failed, replay_run.run_id)
        delivered = marked + done_by_target
        replay_run.finish(RunStatus.SUCCEEDED, {**summary, "replayed": marked, "replayed_by_target": done_by_target})
        by_target = f" ({done_by_target} of them redone and marked by the target itself)" if done_by_target else ""
        print(
            f"replayed {delivered} entr{'y' if delivered == 1 else 'ies'} of {', '.join(streams)} into "
            f"{args.target_command!r}{by_target}; replay run {replay_run.run_id}"
        )
        return 0

    reason = (
        f"the target command exited {returncode}"
        if returncode != 0
        else f"the target command stopped reading after {len(sent_ids)} of {total} records"
    )
    if done_by_target:
        outcome = (f"{done_by_target} of the {total} entries were delivered by it (marked replayed), the other "
                   f"{total - done_by_target} stay failed")
    else:
        outcome = f"the {total} entries stay failed"
    tail = [redact_text(line) for line in stderr_tail]
    replay_run.finish(RunStatus.FAILED, {**summary, "exit_code": returncode, "replayed_by_target": done_by_target,
                                         "stderr_tail": tail[-10:]})
    print(f"mlc-audit: {reason}; {outcome} (replay run {replay_run.run_id}; see mlc-audit failures).", file=sys.stderr)
    if tail:
        print("last lines of its stderr:", file=sys.stderr)
        for line in tail:
            print(f"    {line}", file=sys.stderr)
    return EXIT_TARGET_FAILED


def _warn_about_entries_not_failed(trail: AuditTrail, entry_ids: Iterable[int]) -> None:
    for entry_id in sorted(set(entry_ids)):
        entry = trail.entry(entry_id)  # an unknown id stops here with a clear error
        if entry.outcome != "failed":
            print(f"mlc-audit: entry {entry_id} is {entry.outcome}, not failed: not replayed", file=sys.stderr)


def _check_replayable(groups: list[FailureGroup]) -> None:
    problems = []
    for group in groups:
        if not group.has_schema:
            problems.append(f"run {group.run_id} remembered no SCHEMA for stream {group.stream!r}")
        if group.without_payload:
            problems.append(f"{group.without_payload} entries of stream {group.stream!r} in run {group.run_id} have no payload")
    if problems:
        raise AuditError("cannot replay: " + "; ".join(problems))


def _singer_lines(trail: AuditTrail, entries: Iterator[StoredEntry], sent_ids: array) -> Iterator[bytes]:
    """SCHEMA before a stream's first record and again whenever the next record's run remembered another one;
    then each payload as it is stored (never decoded, so no number changes on the way)."""
    schema_lines: dict[tuple[str, str], bytes] = {}
    last_schema_sent: dict[str, bytes] = {}
    stream_json: dict[str, bytes] = {}
    for entry in entries:
        schema_line = schema_lines.get((entry.run_id, entry.stream))
        if schema_line is None:
            remembered = trail.schema(entry.run_id, entry.stream)
            if remembered is None:
                raise AuditError(f"run {entry.run_id} remembered no SCHEMA for stream {entry.stream!r}")
            message = {
                "type": "SCHEMA",
                "stream": entry.stream,
                "schema": remembered.schema,
                "key_properties": remembered.key_properties,
            }
            schema_line = schema_lines[(entry.run_id, entry.stream)] = dump_json(message).encode("utf-8") + b"\n"
        if last_schema_sent.get(entry.stream) != schema_line:
            last_schema_sent[entry.stream] = schema_line
            yield schema_line
        stream = stream_json.get(entry.stream)
        if stream is None:
            stream = stream_json[entry.stream] = dump_json(entry.stream).encode("utf-8")
        yield b'{"type":"RECORD","stream":' + stream + b',"record":' + entry.replay_json.encode("utf-8") + b"}\n"
        sent_ids.append(entry.id)


def _feed_target(argv: list[str], lines: Iterator[bytes], env: dict[str, str]) -> tuple[int, list[str], bool]:
    """Run the target with the lines on its stdin, written as they are read from the store.

    Returns its exit code, the tail of its stderr, and whether it read every line."""
    try:
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   env=env)
    except OSError as exc:
        raise AuditError(f"cannot start the target command {argv[0]!r}: {exc.strerror or exc}") from None
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    reader = threading.Thread(target=_keep_tail, args=(process.stderr, tail), daemon=True)
    reader.start()
    complete = True
    try:
        for line in lines:
            try:
                process.stdin.write(line)
            except BrokenPipeError:
                complete = False
                break
        try:
            process.stdin.close()
        except BrokenPipeError:
            complete = False
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        if hasattr(lines, "close"):
            lines.close()
    returncode = process.wait()
    reader.join(timeout=10)
    return returncode, list(tail), complete


def _keep_tail(stream: IO[bytes], tail: deque[str]) -> None:
    for raw in stream:
        tail.append(raw.decode("utf-8", errors="replace").rstrip("\n"))
    stream.close()


# --- helpers ---


def _selection(trail: AuditTrail, args: argparse.Namespace) -> dict[str, Any]:
    if args.run:
        trail.run(args.run)  # an unknown run stops here with a clear error
    if args.stream and not trail.knows_stream(args.stream):
        raise AuditError(f"no entries of stream {args.stream!r} in {trail!r}")
    return {"run_id": args.run, "stream": args.stream, "key": args.key, "entry_ids": getattr(args, "entries", None)}


def _describe_selection(args: argparse.Namespace) -> str:
    parts = []
    if args.run:
        parts.append(f"run {args.run}")
    if args.stream:
        parts.append(f"stream {args.stream}")
    if args.key:
        parts.append(f"key {dump_json(args.key)}")
    if getattr(args, "entries", None):
        parts.append("entries " + ", ".join(str(entry_id) for entry_id in args.entries))
    return ", ".join(parts) or "all runs"


def _time(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


if __name__ == "__main__":
    raise SystemExit(main())
