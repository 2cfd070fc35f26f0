"""target-jaggaer-check: can target-jaggaer write to this JAGGAER instance as configured? Read-only.

With the client and writer a run uses: the token (client credentials), then for each kind of object the ``streams``
setting writes (suppliers, purchase orders), the lookup by externalId each record starts with, asked for an externalId
no record has. Whether JAGGAER takes a create or an update shows only when one is sent: this check sends none.
"""

from __future__ import annotations

from collections.abc import Iterator

from ml_connector_core.api_checks import JAGGAER, jaggaer_connection, jaggaer_endpoint_fix
from ml_connector_core.check import CheckResult, check_command, failed, passed, setting_ref
from ml_connector_core.jaggaer import JaggaerError
from target_jaggaer.target import TargetJaggaer
from target_jaggaer.writer import RecordError, RecordWriter, parse_routes

PLUGIN = TargetJaggaer.name
#: An externalId no IFS key looks like: the lookup finds nothing, and says whether the endpoint answers.
PROBE_EXTERNAL_ID = "mlc-check-no-such-key"


def checks(config: dict) -> Iterator[CheckResult]:
    try:
        routes = parse_routes(config)
    except RecordError as exc:
        yield failed(JAGGAER, "configuration", str(exc), setting_ref(PLUGIN, "streams"))
        return
    client, results = jaggaer_connection(PLUGIN, config)
    yield from results
    if client is None:
        return
    writer = RecordWriter(client, routes)
    for kind in dict.fromkeys(r.kind for r in routes.values()):
        streams = ", ".join(s for s, r in routes.items() if r.kind is kind)
        check = f"{kind.name} lookup"
        try:
            known = writer.lookup(kind, PROBE_EXTERNAL_ID)
        except JaggaerError as exc:
            yield failed(JAGGAER, check, str(exc), jaggaer_endpoint_fix(PLUGIN, config, kind.collection, exc.status))
            continue
        yield passed(JAGGAER, check, f"GET {known.exchange.path} answers {known.exchange.status} (the lookup each "
                                     f"record of {streams} starts with)")


main = check_command(TargetJaggaer, JAGGAER, checks)
