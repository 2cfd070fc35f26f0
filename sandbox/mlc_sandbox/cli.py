"""`mlc-sandbox`: serve or pre-build a stand-in.

Without --port, a stand-in listens on MLC_SANDBOX_PORT_BASE (default 8600) plus its offset (see ports.py): the ports
below are the defaults.

    mlc-sandbox env                      # export MLC_SANDBOX_IFS_URL=... lines: eval "$(mlc-sandbox env)"
    mlc-sandbox wait ifs jira [--timeout 300]   # until those stand-ins answer on their default ports
    mlc-sandbox serve ifs --port 8600 --scale 1000 --seed 42 [--ready-file PATH] ...
    mlc-sandbox serve databricks --port 8700 [--data-dir D] [--token T] [--client-id ID --client-secret S] ...
    mlc-sandbox serve teams --port 8800 [--channel finance-10=Finance%20SE ...] [--channels FILE_OR_SPEC] ...
    mlc-sandbox serve jira --port 8900 [--rate-limit 600] [--user-time-zone Europe/Stockholm] [--field-id-base 10050] ...
    mlc-sandbox serve salesforce --port 9000 [--session-ttl 7200] [--daily-api-limit 15000] [--query-batch-size 2000]
    mlc-sandbox serve jaggaer --port 9100 [--token-ttl 3600] [--rate-limit 300]
    mlc-sandbox generate ifs --scale 1000000 --seed 42

Every `serve` takes --tls-cert CERT.pem --tls-key KEY.pem (default $MLC_SANDBOX_TLS_CERT/_KEY) to serve HTTPS
(TLS 1.2+); clients then trust the CA that signed CERT (REQUESTS_CA_BUNDLE, or the plugins' ca_bundle setting).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import ports


def _listen_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--host", default=ports.HOST)
    parser.add_argument("--port", type=int, default=ports.default_port(name),
                        help=f"0 picks a free port (see --ready-file); default {ports.PORT_BASE_ENV} "
                             f"(default {ports.DEFAULT_PORT_BASE}) + {ports.OFFSETS[name]}")
    tls_cert, tls_key = ports.tls_files()
    parser.add_argument("--tls-cert", type=Path, default=tls_cert,
                        help="serve HTTPS (TLS 1.2+) with this PEM certificate chain (server certificate first); "
                             f"needs --tls-key (default ${ports.TLS_CERT_ENV})")
    parser.add_argument("--tls-key", type=Path, default=tls_key,
                        help=f"the certificate's unencrypted PEM private key (default ${ports.TLS_KEY_ENV})")


def _ready_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ready-file", type=Path, default=None,
                        help="write {\"base_url\", \"port\", \"pid\"} here once serving")


def _ifs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=int, default=1000, help="number of purchase orders; other sets follow")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where generated data is cached (default $MLC_SANDBOX_DATA_DIR or ./.sandbox-data)")


def _databricks_arguments(parser: argparse.ArgumentParser) -> None:
    from .databricks.settings import DatabricksSettings as defaults

    _listen_arguments(parser, "databricks")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the catalogs' DuckDB files live (default $MLC_SANDBOX_DATA_DIR/databricks or "
                             "./.sandbox-data/databricks); tables persist across runs")
    parser.add_argument("--token", default=defaults.token, help="the personal access token accepted")
    parser.add_argument("--client-id", default=defaults.client_id, help="OAuth M2M service principal id")
    parser.add_argument("--client-secret", default=defaults.client_secret)
    parser.add_argument("--token-ttl", type=int, default=defaults.token_ttl, help="OAuth token lifetime, seconds")
    parser.add_argument("--warehouse-id", action="append", default=None,
                        help=f"a SQL warehouse id (repeatable; default {defaults.warehouse_ids[0]})")
    parser.add_argument("--catalog", action="append", default=None,
                        help=f"a catalog to create at start (repeatable; default {defaults.catalogs[0]})")
    parser.add_argument("--default-catalog", default=defaults.default_catalog)
    parser.add_argument("--volume", action="append", default=None,
                        help="a Unity Catalog volume catalog.schema.volume to create at start, with its schema "
                             "(repeatable)")
    parser.add_argument("--workspace-id", default=defaults.workspace_id)
    parser.add_argument("--chunk-rows", type=int, default=defaults.chunk_rows, help="rows per result chunk")
    parser.add_argument("--execution-delay", type=float, default=0.0,
                        help="seconds every statement takes before it runs (clients must poll)")
    parser.add_argument("--statement-size-limit", type=int, default=defaults.statement_size_limit, help="bytes")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="statements executing at once")
    parser.add_argument("--expired-token-status", type=int, choices=(401, 403), default=defaults.expired_token_status,
                        help="how expired OAuth tokens are refused: 403 'JWT has expired' or 401 'Token is expired'")
    parser.add_argument("--fault-rate-5xx", type=float, default=0.0, help="share of API requests answered 500/502/503")
    parser.add_argument("--fault-rate-429", type=float, default=0.0, help="share answered 429 (Retry-After: 1)")
    parser.add_argument("--fault-rate-drop", type=float, default=0.0,
                        help="share whose connection is dropped before they are carried out")
    parser.add_argument("--fault-rate-drop-response", type=float, default=0.0,
                        help="share carried out, then their connection dropped before the answer")
    parser.add_argument("--fault-rate-delay", type=float, default=0.0, help="share delayed by one second")
    parser.add_argument("--fault-rate-statement-failed", type=float, default=0.0,
                        help="share of statements that end FAILED for a transient reason (ABORTED concurrent write, "
                             "TEMPORARILY_UNAVAILABLE), nothing written")
    parser.add_argument("--fault-rate-slow-statement", type=float, default=0.0,
                        help="share of statements that take three seconds longer")
    parser.add_argument("--fault-rate-token-expired", type=float, default=0.0,
                        help="share of requests with an OAuth token whose token expires there")
    parser.add_argument("--fault-seed", type=int, default=defaults.fault_seed, help="seed of the random faults")
    _ready_file_argument(parser)


def _teams_arguments(parser: argparse.ArgumentParser) -> None:
    from .teams.settings import TeamsSettings as defaults

    _listen_arguments(parser, "teams")
    parser.add_argument("--channel", action="append", default=None, metavar="ID=NAME",
                        help="a channel (repeatable; NAME percent-decoded, optional). Default: company-10, "
                             "company-20, company-30 and general")
    parser.add_argument("--channels", action="append", default=None, metavar="FILE_OR_SPEC",
                        help="channels from a JSON file ([{\"id\", \"name\"}] or {id: name}) or a spec "
                             "'a=Name%%20A,b=Name%%20B' (repeatable)")
    parser.add_argument("--schema", type=Path, default=None,
                        help="the Adaptive Card 1.5 JSON schema to validate against (default: the packaged copy)")
    parser.add_argument("--signing-key", default=defaults.signing_key,
                        help="key of the webhook URLs' signatures (same key, same URLs across runs)")
    parser.add_argument("--tenant-id", default=defaults.tenant_id)
    parser.add_argument("--tenant-domain", default=defaults.tenant_domain)
    parser.add_argument("--client-id", default=defaults.client_id, help="the app registration allowed Graph tokens")
    parser.add_argument("--client-secret", default=defaults.client_secret)
    parser.add_argument("--token-ttl", type=int, default=defaults.token_ttl, help="Graph token lifetime, seconds")
    parser.add_argument("--team-id", default=defaults.team_id)
    parser.add_argument("--max-message-bytes", type=int, default=defaults.max_message_bytes,
                        help="larger messages are refused with 413 (Teams: about 28 KB)")
    parser.add_argument("--validation", choices=("sync", "flow"), default=defaults.validation,
                        help="sync: refuse invalid cards with 400/413; flow: answer 202 as Workflows does and record "
                             "the failed flow run in /_admin/rejections")
    _ready_file_argument(parser)


def _jira_arguments(parser: argparse.ArgumentParser) -> None:
    from .jira.settings import JiraSettings as defaults

    _listen_arguments(parser, "jira")
    parser.add_argument("--rate-limit", type=int, default=defaults.rate_limit,
                        help="requests per minute per user (sliding window); 0 disables")
    parser.add_argument("--user-time-zone", default=defaults.user_time_zone,
                        help="the API user's time zone: rendered times and JQL date literals use it")
    parser.add_argument("--field-id-base", type=int, default=defaults.field_id_base,
                        help="custom fields get ids customfield_<base>, <base+1>, ... (clients resolve them by name)")
    parser.add_argument("--token-ttl", type=int, default=defaults.token_ttl, help="OAuth access token lifetime, seconds")
    parser.add_argument("--api-token", default=defaults.api_token, help=f"the API token of {defaults.email}")
    _ready_file_argument(parser)


def _salesforce_arguments(parser: argparse.ArgumentParser) -> None:
    from .salesforce.settings import SalesforceSettings as defaults

    _listen_arguments(parser, "salesforce")
    parser.add_argument("--session-ttl", type=int, default=defaults.session_ttl,
                        help="seconds of inactivity after which a session (access token) ends")
    parser.add_argument("--daily-api-limit", type=int, default=defaults.daily_api_limit,
                        help="API requests allowed before calls are refused with 403 REQUEST_LIMIT_EXCEEDED")
    parser.add_argument("--query-batch-size", type=int, default=defaults.query_batch_size,
                        help="records per SOQL result page (nextRecordsUrl leads to the next)")
    parser.add_argument("--client-secret", default=defaults.client_secret,
                        help=f"the secret of the connected app {defaults.client_id}")
    _ready_file_argument(parser)


def _jaggaer_arguments(parser: argparse.ArgumentParser) -> None:
    from .jaggaer.settings import JaggaerSettings as defaults

    _listen_arguments(parser, "jaggaer")
    parser.add_argument("--token-ttl", type=int, default=defaults.token_ttl,
                        help="access token lifetime in seconds from issue")
    parser.add_argument("--rate-limit", type=int, default=defaults.rate_limit,
                        help="API requests per minute (all clients together) before 429; 0 disables")
    parser.add_argument("--client-secret", default=defaults.client_secret,
                        help=f"the secret of the API client {defaults.client_id}")
    _ready_file_argument(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlc-sandbox", description="Local stand-ins of the systems ml-connector uses")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve a stand-in on loopback")
    serve_targets = serve.add_subparsers(dest="target", required=True)
    ifs = serve_targets.add_parser("ifs", help="IFS Cloud (OData v4 projections + IAM tokens)")
    _ifs_arguments(ifs)
    _listen_arguments(ifs, "ifs")
    ifs.add_argument("--token-ttl", type=int, default=180, help="access token lifetime in seconds")
    ifs.add_argument("--rate-limit", type=int, default=1000, help="requests per minute per tenant; 0 disables")
    ifs.add_argument("--page-size", type=int, default=None,
                     help="rows per page at most (default: the profile's page_size, else 1000)")
    ifs.add_argument("--profile", default="default",
                     help="the tenant variant played: a built-in profile (default, restricted, integration-host) or "
                          "the path of a profile JSON file (see docs/ifs-sandbox.md, Tenant profiles)")
    ifs.add_argument("--time-zone", default="Europe/Stockholm", help="the tenant's local time zone")
    ifs.add_argument("--realm", default="mlc")
    ifs.add_argument("--client-id", default="mlc-sandbox-client")
    ifs.add_argument("--client-secret", default="mlc-sandbox-secret")
    ifs.add_argument("--fault-rate-5xx", type=float, default=0.0, help="share of data requests answered 500/502/503")
    ifs.add_argument("--fault-rate-429", type=float, default=0.0, help="share answered 429 (Retry-After: 1)")
    ifs.add_argument("--fault-rate-drop", type=float, default=0.0, help="share whose connection is dropped")
    ifs.add_argument("--fault-rate-malformed", type=float, default=0.0, help="share answered with a truncated body")
    ifs.add_argument("--fault-rate-delay", type=float, default=0.0, help="share delayed by one second")
    ifs.add_argument("--fault-seed", type=int, default=None, help="seed of the random faults (default: --seed)")
    _ready_file_argument(ifs)

    _databricks_arguments(serve_targets.add_parser(
        "databricks", help="Databricks workspace (SQL Statement Execution API on DuckDB, Jobs API, OAuth M2M)"))

    _teams_arguments(serve_targets.add_parser(
        "teams", help="Microsoft Teams (Workflows webhooks and Graph channel messages, Adaptive Card 1.5 checks)"))

    _jira_arguments(serve_targets.add_parser(
        "jira", help="Jira Cloud (REST API v3, v2 and latest checked against the official OpenAPI document, JQL search, "
                     "OAuth 3LO)"))

    _salesforce_arguments(serve_targets.add_parser(
        "salesforce", help="Salesforce (REST API v31.0-v68.0: client-credentials tokens, upsert by external id, "
                           "sObject Collections, Composite, SOQL with paging and COUNT, updated/deleted, limits)"))

    _jaggaer_arguments(serve_targets.add_parser(
        "jaggaer", help="JAGGAER One (customer-instance REST API: client-credentials tokens, suppliers and purchase "
                        "orders by externalId, invoices and receipts by modifiedSince, 429 throttling)"))

    env = commands.add_parser("env", help="print `export MLC_SANDBOX_<NAME>_URL=...` lines (the stand-ins' default "
                                          f"URLs from {ports.PORT_BASE_ENV}) for eval, as meltano.yml's sandbox "
                                          "environment reads them")
    env.set_defaults(target=None)

    wait = commands.add_parser("wait", help="wait until the named stand-ins answer on their default ports")
    wait.add_argument("names", nargs="+", choices=sorted(ports.OFFSETS), metavar="NAME",
                      help=f"one of {', '.join(ports.OFFSETS)}")
    wait.add_argument("--timeout", type=float, default=300, help="seconds (the IFS stand-in builds its data first)")
    wait.set_defaults(target=None)

    generate = commands.add_parser("generate", help="build the cached data set without serving")
    generate_targets = generate.add_subparsers(dest="target", required=True)
    _ifs_arguments(generate_targets.add_parser("ifs"))
    for targets in (serve_targets, generate_targets):
        for name, target_parser in targets.choices.items():
            _defaults_from_environment(name, target_parser)
    return parser


# Not from the environment: where a stand-in listens follows MLC_SANDBOX_PORT_BASE only, so that `mlc-sandbox env`
# (and so meltano.yml) always agrees with it.
# TLS follows the shared MLC_SANDBOX_TLS_CERT/_KEY for the same reason (`env` prints https:// URLs then).
_NOT_FROM_ENVIRONMENT = {"help", "host", "port", "ready_file", "tls_cert", "tls_key"}


class OptionEnvironmentError(ValueError):
    pass


def _option_variable(target: str, dest: str) -> str:
    return f"MLC_SANDBOX_{target.upper()}_{dest.upper()}"


def _defaults_from_environment(target: str, parser: argparse.ArgumentParser) -> None:
    """Every single-valued option of `serve <target>` may also come from MLC_SANDBOX_<TARGET>_<OPTION> (e.g.
    MLC_SANDBOX_JAGGAER_RATE_LIMIT=0, MLC_SANDBOX_IFS_SCALE=200); the command line still wins."""
    for action in parser._actions:
        if (type(action) is not argparse._StoreAction or action.dest in _NOT_FROM_ENVIRONMENT
                or not action.option_strings):
            continue
        variable = _option_variable(target, action.dest)
        action.help = f"{action.help or ''} (env {variable})".strip()
        raw = os.environ.get(variable)
        if raw is None or raw == "":
            continue
        try:
            value = action.type(raw) if action.type else raw
        except (TypeError, ValueError):
            value = None
        if value is None or (action.choices and value not in action.choices):
            wanted = (f"one of {', '.join(map(str, action.choices))}" if action.choices
                      else {int: "a whole number", float: "a number"}.get(action.type, "a value"))
            raise OptionEnvironmentError(f"{variable} (as {action.option_strings[0]}) must be {wanted}, not {raw!r}")
        action.default = value


def _serve(app, args: argparse.Namespace, ready_message: Callable[[str], str],
           on_stop: Callable[[], None] | None = None) -> None:
    """Serve `app` on --host/--port until SIGTERM or Ctrl-C: write --ready-file (atomically, so a waiting parent never
    reads half of it) and print `ready_message(base_url)` once listening; `on_stop` releases what the app holds."""
    from .http import Server

    try:
        server = Server(app, args.host, args.port, tls_cert=args.tls_cert, tls_key=args.tls_key)
    except OSError as exc:  # taken since _check_port (a race)
        sys.exit(_port_taken(args, exc))
    base_url = server.base_url

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    if args.ready_file:
        tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
        tmp.write_text(json.dumps({"base_url": base_url, "port": server.port, "pid": os.getpid()}))
        os.replace(tmp, args.ready_file)
    print(ready_message(base_url), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if on_stop is not None:
            on_stop()


def _check_port(args: argparse.Namespace) -> None:
    """Fail fast on a taken port, before anything slow (the IFS stand-in builds its data first). The port is only
    bound for good once the stand-in can answer, so clients waiting for it see a refused connection until then."""
    import socket

    try:
        with socket.create_server((args.host, args.port)):  # SO_REUSEADDR, as the server itself
            pass
    except OSError as exc:
        sys.exit(_port_taken(args, exc))


def _check_tls(args: argparse.Namespace) -> None:
    """A certificate/key problem is said before anything slow, naming the options."""
    from .http import TlsConfigError, server_tls_context

    if args.tls_cert is None and args.tls_key is None:
        return
    if args.tls_cert is None or args.tls_key is None:
        sys.exit(f"mlc-sandbox {args.target}: --tls-cert and --tls-key go together (${ports.TLS_CERT_ENV} and "
                 f"${ports.TLS_KEY_ENV} likewise)")
    try:
        server_tls_context(args.tls_cert, args.tls_key)
    except TlsConfigError as exc:
        sys.exit(f"mlc-sandbox {args.target}: --tls-cert/--tls-key: {exc}")


def _port_taken(args: argparse.Namespace, exc: OSError) -> str:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return (f"mlc-sandbox {args.target}: cannot listen on {args.host}:{args.port} ({reason}): "
            f"choose another port with --port, or move every stand-in with {ports.PORT_BASE_ENV} "
            f"(now {ports.port_base()}: {ports.layout(ports.port_base())})")


def _print_env() -> None:
    for name, url in ports.urls().items():
        print(f"export {name}={url}")


def _wait(args: argparse.Namespace) -> None:
    import urllib.error
    import urllib.request

    from .http import trusting_certificate

    tls_cert, _ = ports.tls_files()
    try:
        context = trusting_certificate(tls_cert) if tls_cert else None  # the stand-ins serve that very certificate
    except OSError as exc:  # ssl.SSLError too
        sys.exit(f"mlc-sandbox wait: {ports.TLS_CERT_ENV} {tls_cert!r} cannot be read as a PEM certificate: "
                 f"{exc.strerror or exc}")
    deadline = time.monotonic() + args.timeout
    for name in args.names:
        url = f"{ports.scheme()}://{ports.HOST}:{ports.default_port(name)}/_admin/health"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                sys.exit(f"mlc-sandbox wait: the {name} stand-in did not answer on {url} within {args.timeout:g}s "
                         f"(is `mlc-sandbox serve {name}` running with the same {ports.PORT_BASE_ENV}?)")
            time.sleep(0.2)


def _serve_ifs(args: argparse.Namespace) -> None:
    from .ifs.app import IfsApp, IfsSettings
    from .ifs.guards import FaultRates
    from .ifs.sandbox import default_data_dir, page_size_for
    from .ifs.cache import open_store
    from .ifs.profile import ProfileError
    from .ifs.profile import load as load_profile

    try:
        profile = load_profile(args.profile)
    except ProfileError as exc:
        sys.exit(f"mlc-sandbox ifs: {exc}")
    settings = IfsSettings(
        scale=args.scale, seed=args.seed, token_ttl=args.token_ttl, rate_limit=args.rate_limit,
        page_size=page_size_for(args.page_size, profile), time_zone=args.time_zone, realm=args.realm,
        client_id=args.client_id, client_secret=args.client_secret, fault_seed=args.fault_seed,
        fault_rates=FaultRates(status_5xx=args.fault_rate_5xx, rate_limit=args.fault_rate_429,
                               drop=args.fault_rate_drop, malformed=args.fault_rate_malformed,
                               delay=args.fault_rate_delay),
        profile=profile,
    )
    started = time.monotonic()
    store = open_store(args.data_dir or default_data_dir(), args.seed, args.scale)
    data_seconds = time.monotonic() - started
    _serve(IfsApp(settings, store), args,
           lambda base_url: f"mlc-sandbox ifs ready on {base_url} (scale {args.scale}, seed {args.seed}, "
                            f"profile {profile.name}, data ready in {data_seconds:.1f}s)",
           on_stop=store.close)


def _serve_databricks(args: argparse.Namespace) -> None:
    from .databricks.app import DatabricksApp
    from .databricks.guards import FaultRates
    from .databricks.sandbox import default_data_dir
    from .databricks.settings import DatabricksSettings
    from .databricks.sql_errors import SqlError
    from .databricks.warehouse import Warehouse

    catalogs = tuple(args.catalog or DatabricksSettings.catalogs)
    settings = DatabricksSettings(
        token=args.token, client_id=args.client_id, client_secret=args.client_secret, token_ttl=args.token_ttl,
        workspace_id=args.workspace_id, warehouse_ids=tuple(args.warehouse_id or DatabricksSettings.warehouse_ids),
        catalogs=catalogs, volumes=tuple(args.volume or ()), default_catalog=args.default_catalog,
        chunk_rows=args.chunk_rows,
        execution_delay=args.execution_delay, statement_size_limit=args.statement_size_limit, workers=args.workers,
        expired_token_status=args.expired_token_status, fault_seed=args.fault_seed)
    try:
        settings.fault_rates = FaultRates.from_json({
            "status_5xx": args.fault_rate_5xx, "rate_limit": args.fault_rate_429, "drop": args.fault_rate_drop,
            "drop_response": args.fault_rate_drop_response, "delay": args.fault_rate_delay,
            "statement_failed": args.fault_rate_statement_failed, "slow_statement": args.fault_rate_slow_statement,
            "token_expired": args.fault_rate_token_expired})
    except ValueError as exc:
        sys.exit(f"mlc-sandbox databricks: {exc}")
    data_dir = args.data_dir or default_data_dir()
    try:
        warehouse = Warehouse(data_dir, settings.catalogs, settings.default_schema, settings.volumes)
    except (ValueError, SqlError) as exc:
        sys.exit(f"mlc-sandbox databricks: {exc}")
    app = DatabricksApp(settings, warehouse)
    _serve(app, args,
           lambda base_url: f"mlc-sandbox databricks ready on {base_url} (warehouse {settings.warehouse_ids[0]}, "
                            f"data in {data_dir})",
           on_stop=app.close)


def _serve_teams(args: argparse.Namespace) -> None:
    from .teams import channels
    from .teams.app import TeamsApp
    from .teams.cards import CardValidator, load_schema
    from .teams.settings import TeamsSettings

    settings = TeamsSettings(
        signing_key=args.signing_key, tenant_id=args.tenant_id, tenant_domain=args.tenant_domain,
        client_id=args.client_id, client_secret=args.client_secret, token_ttl=args.token_ttl, team_id=args.team_id,
        max_message_bytes=args.max_message_bytes, validation=args.validation)
    sources = list(args.channels or []) + list(args.channel or [])
    try:
        team = channels.Channels(channels.load(sources))
        validator = CardValidator(load_schema(args.schema))
    except (ValueError, OSError, KeyError) as exc:
        sys.exit(f"mlc-sandbox teams: {exc}")
    _serve(TeamsApp(settings, team, validator), args,
           lambda base_url: f"mlc-sandbox teams ready on {base_url} (channels {', '.join(c.id for c in team.all())}; "
                            f"webhook URLs at {base_url}/_admin/channels)")


def _serve_jira(args: argparse.Namespace) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from .jira.app import JiraApp
    from .jira.settings import JiraSettings

    try:
        ZoneInfo(args.user_time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        sys.exit(f"mlc-sandbox jira: unknown time zone {args.user_time_zone!r}")
    settings = JiraSettings(rate_limit=args.rate_limit, user_time_zone=args.user_time_zone,
                            field_id_base=args.field_id_base, token_ttl=args.token_ttl, api_token=args.api_token)
    _serve(JiraApp(settings), args,
           lambda base_url: f"mlc-sandbox jira ready on {base_url} (user {settings.email}, time zone "
                            f"{settings.user_time_zone}, rate limit {settings.rate_limit}/min)")


def _serve_salesforce(args: argparse.Namespace) -> None:
    from .salesforce.app import SalesforceApp
    from .salesforce.settings import SalesforceSettings

    _require_at_least(args, "salesforce", 1, ("session_ttl", "daily_api_limit", "query_batch_size"))
    settings = SalesforceSettings(session_ttl=args.session_ttl, daily_api_limit=args.daily_api_limit,
                                  query_batch_size=args.query_batch_size, client_secret=args.client_secret)
    _serve(SalesforceApp(settings), args,
           lambda base_url: f"mlc-sandbox salesforce ready on {base_url} (client {settings.client_id}, session ttl "
                            f"{settings.session_ttl}s, daily API limit {settings.daily_api_limit})")


def _serve_jaggaer(args: argparse.Namespace) -> None:
    from .jaggaer.app import JaggaerApp
    from .jaggaer.settings import JaggaerSettings

    _require_at_least(args, "jaggaer", 0, ("token_ttl", "rate_limit"))
    settings = JaggaerSettings(token_ttl=args.token_ttl, rate_limit=args.rate_limit, client_secret=args.client_secret)
    _serve(JaggaerApp(settings), args,
           lambda base_url: f"mlc-sandbox jaggaer ready on {base_url} (client {settings.client_id}, token ttl "
                            f"{settings.token_ttl}s, rate limit {settings.rate_limit or 'off'}/min)")


def _require_at_least(args: argparse.Namespace, target: str, minimum: int, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(args, name) < minimum:
            sys.exit(f"mlc-sandbox {target}: --{name.replace('_', '-')} must be at least {minimum}")


def _generate_ifs(args: argparse.Namespace) -> None:
    from .ifs.sandbox import default_data_dir
    from .ifs.cache import ensure_cache

    started = time.monotonic()
    path = ensure_cache(args.data_dir or default_data_dir(), args.seed, args.scale)
    print(f"{path} ready in {time.monotonic() - started:.1f}s", flush=True)


def main(argv: list[str] | None = None) -> None:
    try:
        parser = build_parser()
    except (ports.PortBaseError, OptionEnvironmentError) as exc:
        sys.exit(f"mlc-sandbox: {exc}")
    args = parser.parse_args(argv)
    if args.command == "serve":
        _check_tls(args)
    if args.command == "serve" and args.port != 0:
        _check_port(args)
    if args.command == "env":
        _print_env()
    elif args.command == "wait":
        _wait(args)
    elif args.command == "serve" and args.target == "ifs":
        _serve_ifs(args)
    elif args.command == "serve" and args.target == "databricks":
        _serve_databricks(args)
    elif args.command == "serve" and args.target == "teams":
        _serve_teams(args)
    elif args.command == "serve" and args.target == "jira":
        _serve_jira(args)
    elif args.command == "serve" and args.target == "salesforce":
        _serve_salesforce(args)
    elif args.command == "serve" and args.target == "jaggaer":
        _serve_jaggaer(args)
    elif args.command == "generate" and args.target == "ifs":
        _generate_ifs(args)
    else:  # pragma: no cover - argparse already refuses unknown targets
        sys.exit(f"unknown command {args.command} {args.target}")


if __name__ == "__main__":
    main()
