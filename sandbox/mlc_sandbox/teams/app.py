"""The Teams stand-in as one request handler: classify the request (Workflows webhook, Graph message, token), apply
injected faults, then answer; refusals are answered in the service's error shape and recorded."""

from __future__ import annotations

import time
import uuid
from urllib.parse import quote

from ..admin import is_admin_path
from ..faults import new_entry
from ..http import Request, Response
from . import admin, graph, workflows
from .cards import CardValidator
from .channels import Channels
from .guards import FaultQueue, RequestLog
from .responses import Refused, aad_error, graph_error, logic_apps_error, to_json
from .settings import TeamsSettings
from .store import MessageStore

LOGGED_HEADERS = ("Content-Type", "User-Agent")


class TeamsApp:
    def __init__(self, settings: TeamsSettings, channels: Channels, validator: CardValidator | None = None):
        self.settings = settings
        self.channels = channels
        self.validator = validator or CardValidator()
        self.tokens = graph.TokenIssuer(settings.tenant_id, settings.tenant_domain, settings.client_id,
                                        settings.client_secret, settings.token_ttl, settings.graph_roles)
        self.store = MessageStore()
        self.faults = FaultQueue()
        self.log = RequestLog()
        self.host_port = "127.0.0.1"
        self.scheme = "http"  # "https" once served over TLS (http.Server sets both)

    def base_url(self, request: Request | None = None) -> str:
        host = request.headers.get("Host") if request is not None else None
        return f"{self.scheme}://{host or self.host_port}"

    def apply_settings(self, changes: dict) -> None:
        if "token_ttl" in changes:
            self.settings.token_ttl = self.tokens.token_ttl = int(changes["token_ttl"])
        if "max_message_bytes" in changes:
            self.settings.max_message_bytes = int(changes["max_message_bytes"])
        if "graph_roles" in changes:
            roles = changes["graph_roles"]
            if not isinstance(roles, list) or not all(isinstance(role, str) and role for role in roles):
                raise ValueError("'graph_roles' must be a list of application permissions, e.g. "
                                 "[\"Teamwork.Migrate.All\", \"ChannelMessage.Read.All\"]")
            self.settings.graph_roles = self.tokens.roles = tuple(roles)
        if "validation" in changes:
            if changes["validation"] not in ("sync", "flow"):
                raise ValueError("'validation' must be 'sync' or 'flow'")
            self.settings.validation = changes["validation"]

    def __call__(self, request: Request) -> Response:
        if is_admin_path(request.path):
            return admin.handle(self, request)
        started = time.monotonic()
        api, channel = self._classify(request)
        entry = new_entry(request.method, request.path, api=api, channel_id=channel.id if channel else None,
                          size_bytes=len(request.body),
                          headers={h: request.headers.get(h) for h in LOGGED_HEADERS if request.headers.get(h)})
        fault = self.faults.next_for(api, channel.id if channel else None, request.method) if api else None
        entry["fault"] = fault.kind if fault else None
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay_seconds)
        if fault is not None and fault.kind not in ("delay", "lost_answer", "late_answer"):
            response = self._fault(api, fault)
        elif api == "workflows":
            response = self._workflows(request)
        elif api == "graph":
            response = self._graph(request)
        elif api == "token":
            response = self._token(request)
        else:
            response = Response(404, to_json({"error": {"code": "NotFound",
                                                        "message": f"No route for {request.method} {request.path}"}}))
        if fault is not None and fault.kind == "lost_answer":  # carried out, but the client never hears of it
            response = Response(response.status, drop=True)
        if fault is not None and fault.kind == "late_answer":  # carried out, answered only after a while
            time.sleep(fault.delay_seconds)
        self.log.finish(entry, response, started)
        return response

    def _classify(self, request: Request):
        path = request.path
        if workflows.TRIGGER.match(path):
            return "workflows", workflows.channel_of(path, self.channels)
        if graph.is_graph_path(path):
            return "graph", graph.channel_of(path, self.channels)
        if graph.TOKEN.match(path):
            return "token", None
        return None, None

    def _fault(self, api: str, fault) -> Response:
        if fault.kind == "drop":
            return Response(0, drop=True)
        status = 429 if fault.kind == "rate_limit" else fault.status
        headers = [("Retry-After", str(fault.retry_after))] if status in (429, 503) else []
        if status == 429:
            code, message = "TooManyRequests", f"Rate limit is exceeded. Try again in {fault.retry_after} seconds."
        else:
            code, message = ("ServiceUnavailable" if status == 503 else "InternalServerError" if status >= 500
                             else "BadRequest"), f"Injected HTTP {status} from the Teams stand-in."
        if api == "graph":
            return graph_error(status, code, message, headers)
        if api == "token":
            response = aad_error(status, "temporarily_unavailable" if status >= 500 else "invalid_request", 90033,
                                 message)
            response.headers += headers
            return response
        return logic_apps_error(status, code, message, headers)

    # Workflows

    def _workflows(self, request: Request) -> Response:
        try:
            channel = workflows.authorize(request, self.channels, self.settings.signing_key)
        except Refused as refused:
            return self._refuse("workflows", workflows.channel_of(request.path, self.channels), request, refused)
        run_id = f"08584{time.time_ns() % 10**15:015d}{uuid.uuid4().int % 10**6:06d}CU{uuid.uuid4().int % 100:02d}"
        headers = [("x-ms-workflow-run-id", run_id), ("x-ms-correlation-id", str(uuid.uuid4())),
                   ("x-ms-workflow-id", channel.workflow_id), ("x-ms-workflow-version", "08584000000000000000"),
                   ("x-ms-trigger-history-name", run_id), ("x-ms-workflow-name", channel.workflow_id)]
        try:
            document, cards = workflows.read_message(request, self.validator, self.settings.max_message_bytes)
        except Refused as refused:
            if self.settings.validation == "flow":  # the trigger takes it; the flow run fails to post the card
                self._record_refusal("workflows", channel, request, refused, flow_run="Failed", run_id=run_id)
                return Response(202, b"", headers=headers)
            return self._refuse("workflows", channel, request, refused)
        self.store.accept(channel, "workflows", cards, document, len(request.body), run_id=run_id)
        return Response(202, b"", headers=headers)

    # Graph

    def _graph(self, request: Request) -> Response:
        channel = graph.channel_of(request.path, self.channels)
        try:
            roles = self.tokens.check(request.headers.get("Authorization"))
            channel = graph.resolve(request, self.channels, self.settings.team_id)
            if graph.is_channel_request(request):
                graph.require_role(roles, graph.CHANNEL_READ_ROLES)
                return Response(200, to_json(graph.channel_resource(channel, self.settings.team_id,
                                                                    self.settings.tenant_id, self.base_url(request))))
            if request.method == "GET":
                graph.require_role(roles, graph.MESSAGE_READ_ROLES)
                return self._graph_list(request, channel)
            document, cards = graph.read_message(request, self.validator, self.settings.max_message_bytes)
        except Refused as refused:
            return self._refuse("graph", channel, request, refused)
        stored = self.store.accept(channel, "graph", cards, document, len(request.body))
        message = graph.chat_message(stored, channel, self.settings.team_id, self.settings.tenant_id,
                                     self.settings.client_id, self.base_url(request))
        return Response(201, to_json(message))

    def _graph_list(self, request: Request, channel) -> Response:
        """The channel's messages as Graph lists them: newest first, `$top` a page (20 unless asked, at most 50), the
        next page behind `@odata.nextLink`; `@odata.count` counts the page."""
        base_url = self.base_url(request)
        page_size, before = graph.list_position(request.query)
        older = [m for m in reversed(self.store.messages(channel.id)) if before is None or int(m["id"]) < before]
        page = older[:page_size]
        messages = [graph.chat_message(m, channel, self.settings.team_id, self.settings.tenant_id,
                                       self.settings.client_id, base_url) for m in page]
        for message in messages:
            message.pop("@odata.context")
        encoded_channel = quote(channel.graph_id, safe="")
        context = f"{base_url}/v1.0/$metadata#teams('{self.settings.team_id}')/channels('{encoded_channel}')/messages"
        document = {"@odata.context": context, "@odata.count": len(messages)}
        if len(older) > len(page):
            document["@odata.nextLink"] = (f"{base_url}/v1.0/teams/{self.settings.team_id}/channels/{encoded_channel}"
                                           f"/messages?$skiptoken={graph.skip_token(page_size, int(page[-1]['id']))}")
        return Response(200, to_json({**document, "value": messages}))

    def _token(self, request: Request) -> Response:
        tenant = graph.TOKEN.match(request.path).group(1)
        try:
            answer = self.tokens.issue(tenant, request.method, request.body, request.headers.get("Authorization"))
        except graph.TokenRefused as refused:
            self.store.reject("token", None, refused.status, refused.error, refused.description,
                              request_text=f"tenant {tenant}")
            return aad_error(refused.status, refused.error, refused.code, refused.description)
        return Response(200, to_json(answer), headers=[("Cache-Control", "no-store, no-cache")])

    # refusals

    def _record_refusal(self, api: str, channel, request: Request, refused: Refused, **extra) -> None:
        self.store.reject(api, channel.id if channel else None, refused.status, refused.code, refused.message,
                          path=refused.path, problems=refused.problems, size_bytes=len(request.body),
                          request_text=request.body[:4000].decode("utf-8", "replace"), **extra)

    def _refuse(self, api: str, channel, request: Request, refused: Refused) -> Response:
        self._record_refusal(api, channel, request, refused)
        extra = {}
        if refused.path is not None:
            extra["path"] = refused.path
        if refused.problems:
            extra["details"] = refused.problems
        if api == "graph":
            return graph_error(refused.status, refused.code, refused.message, refused.headers, **extra)
        return logic_apps_error(refused.status, refused.code, refused.message, refused.headers, **extra)
