"""Run a Singer tap as its own process, exactly as Meltano or a shell would, and read what it emitted."""

from __future__ import annotations

import json

import msgspec
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

BIN = Path(sys.executable).parent


@dataclass
class TapRun:
    returncode: int
    stdout: str
    stderr: str
    messages: list[dict] = field(default_factory=list)

    def records(self, stream: str) -> list[dict]:
        return [m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream]

    def schema(self, stream: str) -> dict:
        return next(m for m in self.messages if m["type"] == "SCHEMA" and m["stream"] == stream)

    @property
    def states(self) -> list[dict]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> dict:
        return self.states[-1] if self.states else {}

    def bookmark(self, stream: str) -> str | None:
        return self.final_state.get("bookmarks", {}).get(stream, {}).get("replication_key_value")


def run_tap(
    tmp_path: Path,
    config: dict,
    *,
    streams: list[str] | None = None,
    state: dict | None = None,
    executable: str = "tap-ifscloud",
    env: dict | None = None,
    timeout: float = 300,
    check: bool = True,
) -> TapRun:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    args = [str(BIN / executable), "--config", str(config_path)]
    if streams is not None:
        catalog_path = tmp_path / "catalog.json"
        catalog_path.write_text(json.dumps(select_streams(discover(tmp_path, config, executable=executable, env=env), streams)))
        args += ["--catalog", str(catalog_path)]
    if state is not None:
        state_path = tmp_path / "state.json"
        state_path.write_text(json.dumps(state))
        args += ["--state", str(state_path)]
    completed = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    run = TapRun(completed.returncode, completed.stdout, completed.stderr)
    run.messages = [json.loads(line, parse_float=Decimal) for line in completed.stdout.splitlines() if line.strip()]
    if check and completed.returncode != 0:
        raise AssertionError(f"{executable} exited {completed.returncode}:\n{completed.stderr[-4000:]}")
    return run


def discover(tmp_path: Path, config: dict, *, executable: str = "tap-ifscloud", env: dict | None = None) -> dict:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    completed = subprocess.run(
        [str(BIN / executable), "--config", str(config_path), "--discover"],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )
    if completed.returncode != 0:
        raise AssertionError(f"{executable} --discover exited {completed.returncode}:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout)


def select_streams(catalog: dict, names: list[str]) -> dict:
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] in names
    return catalog


@dataclass
class TargetRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def states(self) -> list[dict]:
        return [json.loads(line, parse_float=Decimal) for line in self.stdout.splitlines() if line.strip()]


def run_target(tmp_path: Path, config: dict, messages: list[dict] | str, *, executable: str = "target-databricks",
               env: dict | None = None, check: bool = True, expected_exit: int = 0, timeout: float = 300) -> TargetRun:
    """Feed Singer messages (dicts, or ready JSON lines) to a target process; its stdout lines are STATE values.
    With ``check``, an exit status other than ``expected_exit`` fails the test (3: records not delivered)."""
    config_path = tmp_path / f"{executable}-config.json"
    config_path.write_text(json.dumps(config))
    stdin = messages if isinstance(messages, str) else "".join(_encode(m) + "\n" for m in messages)
    completed = subprocess.run(
        [str(BIN / executable), "--config", str(config_path)], input=stdin, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})},
    )
    run = TargetRun(completed.returncode, completed.stdout, completed.stderr)
    if check and completed.returncode != expected_exit:
        raise AssertionError(f"{executable} exited {completed.returncode}:\n{completed.stderr[-4000:]}")
    return run


def run_target_watching_states(tmp_path: Path, config: dict, messages: list[dict], *, executable: str,
                               on_state, env: dict | None = None, timeout: float = 300) -> TargetRun:
    """Feed Singer messages to a target process and call ``on_state(state)`` for each STATE line the moment the
    target writes it, while the target goes on. When ``on_state`` returns True the target is killed there (SIGKILL),
    as a crash would stop it; the run's stdout then holds the STATE lines written until then."""
    config_path = tmp_path / f"{executable}-config.json"
    config_path.write_text(json.dumps(config))
    stderr_path = tmp_path / f"{executable}-stderr.log"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen([str(BIN / executable), "--config", str(config_path)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=stderr, text=True, env={**os.environ, **(env or {})})

    def feed() -> None:
        try:
            for message in messages:
                process.stdin.write(_encode(message) + "\n")
            process.stdin.close()
        except (BrokenPipeError, ValueError):  # the target was killed
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.strip() and on_state(json.loads(line, parse_float=Decimal)):
                process.kill()
                break
        process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
    feeder.join(timeout=10)
    return TargetRun(process.returncode, "".join(lines), stderr_path.read_text())


def schema_message(stream: str, properties: dict, keys: list[str], bookmark: str | None = None) -> dict:
    message = {"type": "SCHEMA", "stream": stream, "schema": {"type": "object", "properties": properties},
               "key_properties": keys}
    if bookmark:
        message["bookmark_properties"] = [bookmark]
    return message


def record_message(stream: str, record: dict) -> dict:
    return {"type": "RECORD", "stream": stream, "record": record}


def state_message(value: dict) -> dict:
    return {"type": "STATE", "value": value}


_encoder = msgspec.json.Encoder(decimal_format="number")


def _encode(message: dict) -> str:
    """Decimals as JSON numbers with every digit, as a Singer tap writes them."""
    return _encoder.encode(message).decode()


def assert_a_state_every(run: TapRun, stream: str, interval: int, replication_key: str) -> int:
    """A tap's mid-stream checkpoints: right after every ``interval``-th record of the stream (before the next one) a
    STATE whose bookmark for the stream is that record's replication key. Returns how many were found."""
    records_seen, last_value, found = 0, None, 0
    awaiting = False
    for message in run.messages:
        if message["type"] == "RECORD" and message["stream"] == stream:
            assert not awaiting, f"no STATE after record {records_seen} of {stream}"
            records_seen += 1
            last_value = message["record"][replication_key]
            awaiting = records_seen % interval == 0
        elif message["type"] == "STATE" and awaiting:
            bookmark = message["value"]["bookmarks"][stream]["replication_key_value"]
            assert bookmark == last_value, (records_seen, bookmark, last_value)
            awaiting, found = False, found + 1
    return found
