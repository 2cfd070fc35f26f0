"""Microsoft Graph channel messages with an application token from Entra ID (client credentials).

    POST /<tenant>/oauth2/v2.0/token          grant_type=client_credentials, scope=https://graph.microsoft.com/.default
    GET  /v1.0/teams/<team-id>/channels/<channel-id>               the channel (Channel.ReadBasic.All): does it exist?
    POST /v1.0/teams/<team-id>/channels/<channel-id>/messages      Authorization: Bearer <token>
    {"body": {"contentType": "html", "content": "<attachment id=\"X\"></attachment>"},
     "attachments": [{"id": "X", "contentType": "application/vnd.microsoft.card.adaptive", "content": "<card JSON>"}]}

answers 201 with the chatMessage. (Real Graph takes application tokens on this endpoint only for migration; the
stand-in takes them so the Graph path can be exercised end to end.)

    GET  /v1.0/teams/<team-id>/channels/<channel-id>/messages[?$top=N]  (ChannelMessage.Read.All)

lists the channel's messages newest first, $top a page (default 20, at most 50), the next page behind
@odata.nextLink ($skiptoken); @odata.count counts the messages of the page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from urllib.parse import parse_qs, quote, unquote

from ..http import Request
from .cards import CardValidator, Problem
from .channels import Channel, Channels
from .responses import GRAPH_WWW_AUTHENTICATE, Refused

TOKEN = re.compile(r"^/([^/]+)/oauth2/v2\.0/token/?$")
MESSAGES = re.compile(r"^/(v1\.0|beta)/teams/([^/]+)/channels/([^/]+)/messages/?$")
CHANNEL = re.compile(r"^/(v1\.0|beta)/teams/([^/]+)/channels/([^/]+)/?$")
GRAPH_RESOURCES = ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
# what an app token needs (one of) to read a channel, and to list its messages (application permissions)
CHANNEL_READ_ROLES = ("Channel.ReadBasic.All", "ChannelSettings.Read.All", "ChannelSettings.ReadWrite.All",
                      "Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")
MESSAGE_READ_ROLES = ("ChannelMessage.Read.All", "ChannelMessage.Read.Group", "Group.Read.All", "Group.ReadWrite.All")
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 20, 50  # messages per page of a list
WORKFLOWS_BOT_ID = "7c3f5b1e-0d4a-4e2b-9f6c-2a8d1e3b5c70"  # the stand-in's own id for the bot Workflows posts as
ATTACHMENT_TAG = re.compile(r"<attachment\s+id=\"([^\"]*)\"\s*>\s*</attachment>", re.IGNORECASE)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class TokenRefused(Exception):
    def __init__(self, status: int, error: str, code: int, description: str):
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description


class TokenIssuer:
    """Entra ID's v2.0 token endpoint for one tenant and one app registration; tokens expire after `token_ttl`."""

    def __init__(self, tenant_id: str, tenant_domain: str, client_id: str, client_secret: str, token_ttl: int,
                 roles: tuple[str, ...]):
        self.tenant_id, self.tenant_domain = tenant_id, tenant_domain
        self.client_id, self.client_secret = client_id, client_secret
        self.token_ttl = token_ttl
        self.roles = tuple(roles)  # the application permissions consented for the app: the tokens' `roles`
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[float, tuple[str, ...]]] = {}  # token -> (expiry in epoch seconds, roles)

    def issue(self, tenant: str, method: str, form_body: bytes, authorization: str | None) -> dict:
        if method != "POST":
            raise TokenRefused(400, "invalid_request", 900561,
                               f"The endpoint only accepts POST, OPTIONS requests. Received a {method} request.")
        if tenant not in (self.tenant_id, self.tenant_domain):
            raise TokenRefused(400, "invalid_request", 90002,
                               f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
                               "are signing into the correct cloud.")
        form = {k: v[0] for k, v in parse_qs(form_body.decode("utf-8", "replace")).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode()
            except (ValueError, UnicodeDecodeError):
                raise TokenRefused(401, "invalid_client", 7000215, "Invalid client secret provided.") from None
            basic_id, _, basic_secret = decoded.partition(":")
            client_id, client_secret = unquote(basic_id), unquote(basic_secret)
        for name in ("grant_type", "client_id", "scope"):
            if not (client_id if name == "client_id" else form.get(name)):
                raise TokenRefused(400, "invalid_request", 900144,
                                   f"The request body must contain the following parameter: '{name}'.")
        if form["grant_type"] != "client_credentials":
            raise TokenRefused(400, "unsupported_grant_type", 70003,
                               f"The app requested an unsupported grant type '{form['grant_type']}'.")
        if client_id != self.client_id:
            raise TokenRefused(400, "unauthorized_client", 700016,
                               f"Application with identifier '{client_id}' was not found in the directory "
                               f"'{self.tenant_domain}'.")
        if not client_secret:
            raise TokenRefused(401, "invalid_client", 7000218, "The request body must contain the following "
                                                                "parameter: 'client_assertion' or 'client_secret'.")
        if not hmac.compare_digest(client_secret.encode(), self.client_secret.encode()):
            raise TokenRefused(401, "invalid_client", 7000215,
                               "Invalid client secret provided. Ensure the secret being sent in the request is the "
                               f"client secret value, not the client secret ID, for a secret added to app "
                               f"'{self.client_id}'.")
        scope = form["scope"]
        if not scope.endswith("/.default") or " " in scope.strip():
            raise TokenRefused(400, "invalid_scope", 1002012,
                               f"The provided value for scope {scope} is not valid. Client credential flows must "
                               "have a scope value with /.default suffixed to the resource identifier "
                               "(application ID URI).")
        if scope[: -len("/.default")] not in GRAPH_RESOURCES:
            raise TokenRefused(400, "invalid_resource", 500011,
                               f"The resource principal named {scope[: -len('/.default')]} was not found in the "
                               f"tenant named {self.tenant_domain}.")
        now = time.time()
        ttl = self.token_ttl
        claims = {"aud": "https://graph.microsoft.com", "iss": f"https://sts.windows.net/{self.tenant_id}/",
                  "iat": int(now), "nbf": int(now), "exp": int(now + ttl), "appid": client_id, "idtyp": "app",
                  "roles": list(self.roles), "tid": self.tenant_id,
                  "uti": secrets.token_urlsafe(16), "ver": "1.0"}
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
        payload = _b64(json.dumps(claims).encode())
        signed = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        token = f"{header}.{payload}.{_b64(signed)}"
        with self._lock:
            self._tokens = {t: held for t, held in self._tokens.items() if held[0] > now - 3600}
            self._tokens[token] = (now + ttl, self.roles)  # a token keeps the roles it was issued with
        return {"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl, "access_token": token}

    def check(self, authorization: str | None) -> tuple[str, ...]:
        """The roles of the live token of this issuer presented, or Refused (401 InvalidAuthenticationToken)."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if not authorization or scheme.lower() != "bearer" or not token:
            raise _unauthenticated("Access token is empty.")
        if token.count(".") != 2:
            raise _unauthenticated("IDX14100: JWT is not well formed, there are no dots (.).")
        with self._lock:
            held = self._tokens.get(token)
        if held is None:
            raise _unauthenticated("Access token validation failure. Invalid signature.")
        expiry, roles = held
        if expiry <= time.time():
            raise _unauthenticated("Lifetime validation failed, the token is expired.")
        return roles

    def expire_all(self) -> int:
        with self._lock:
            for token, (_, roles) in self._tokens.items():
                self._tokens[token] = (0.0, roles)
            return len(self._tokens)

    def revoke_all(self) -> int:
        with self._lock:
            revoked = len(self._tokens)
            self._tokens.clear()
        return revoked


def _unauthenticated(message: str) -> Refused:
    return Refused(401, "InvalidAuthenticationToken", message, headers=[("WWW-Authenticate", GRAPH_WWW_AUTHENTICATE)])


def require_role(roles: tuple[str, ...], accepted: tuple[str, ...]) -> None:
    """Refused 403, as Graph refuses an app token without one of the application permissions a read needs."""
    if not set(roles) & set(accepted):
        raise Refused(403, "Forbidden", f"Missing role permissions on the request. API requires one of "
                                        f"'{', '.join(accepted)}'. Roles on the request '{', '.join(roles)}'.")


def list_position(query: str) -> tuple[int, int | None]:
    """(page size, list messages older than this id or None) from a list request's `$top` and `$skiptoken`, or
    Refused 400."""
    options = {k.lstrip("$").lower(): v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    token = options.get("skiptoken")
    if token is not None:
        try:
            page_size, _, before = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().partition(":")
            if not 1 <= int(page_size) <= MAX_PAGE_SIZE:
                raise ValueError(page_size)
            return int(page_size), int(before)
        except (ValueError, UnicodeDecodeError):
            raise Refused(400, "BadRequest", "Invalid skip token.") from None
    top = options.get("top", str(DEFAULT_PAGE_SIZE))
    if not top.isdigit() or int(top) < 1:
        raise Refused(400, "BadRequest", f"Invalid value '{top}' for query option $top.")
    if int(top) > MAX_PAGE_SIZE:
        raise Refused(400, "BadRequest", f"Limit of '{MAX_PAGE_SIZE}' for Top Query has been exceeded.")
    return int(top), None


def skip_token(page_size: int, last_id: int) -> str:
    """An opaque `$skiptoken` for the page after the one that ended with message `last_id`."""
    return _b64(f"{page_size}:{last_id}".encode())


def is_graph_path(path: str) -> bool:
    return bool(MESSAGES.match(path) or CHANNEL.match(path))


def channel_of(path: str, channels: Channels) -> Channel | None:
    match = MESSAGES.match(path) or CHANNEL.match(path)
    return channels.by_graph_id(unquote(match.group(3))) if match else None


def resolve(request: Request, channels: Channels, team_id: str) -> Channel:
    """The channel of a channel or messages URL, or Refused 404 (team, then channel)."""
    match = MESSAGES.match(request.path) or CHANNEL.match(request.path)
    team, channel_key = unquote(match.group(2)), unquote(match.group(3))
    if team != team_id:
        raise Refused(404, "NotFound", f"No team found with Group Id {team}")
    channel = channels.by_graph_id(channel_key)
    if channel is None:
        raise Refused(404, "NotFound", f"Channel {channel_key} was not found in team {team}.")
    allowed = ("POST", "GET") if MESSAGES.match(request.path) else ("GET",)
    if request.method not in allowed:
        raise Refused(405, "UnknownError", f"Method {request.method} is not allowed here.")
    return channel


def is_channel_request(request: Request) -> bool:
    return bool(CHANNEL.match(request.path))


def channel_resource(channel: Channel, team_id: str, tenant_id: str, base_url: str) -> dict:
    """The channel as Graph answers GET /teams/{team-id}/channels/{channel-id}."""
    encoded = quote(channel.graph_id, safe="")
    return {
        "@odata.context": f"{base_url}/v1.0/$metadata#teams('{team_id}')/channels/$entity",
        "id": channel.graph_id, "createdDateTime": channel.created_at, "displayName": channel.name,
        "description": None, "isFavoriteByDefault": None, "email": "", "tenantId": tenant_id,
        "webUrl": f"https://teams.microsoft.com/l/channel/{encoded}/{quote(channel.name)}?groupId={team_id}"
                  f"&tenantId={tenant_id}",
        "membershipType": "standard",
    }


def read_message(request: Request, validator: CardValidator, max_bytes: int) -> tuple[dict, list[dict]]:
    """(the chatMessage as sent, its cards parsed) or Refused: size (413), JSON, body, attachments, cards (400)."""
    body = request.body
    if len(body) > max_bytes:
        raise Refused(413, "RequestEntityTooLarge",
                      f"The message is {len(body):,} bytes; Teams takes messages of at most {max_bytes:,} bytes "
                      "(about 28 KB).", path="$")
    try:
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is "
                                         "set and payload is of valid JSON format.", path="$") from None
    problems, cards = _message_problems(document, validator)
    if problems:
        raise Refused.invalid(400, problems, "BadRequest", code="BadRequest")
    return document, cards


def _message_problems(document: dict, validator: CardValidator) -> tuple[list[dict], list[dict]]:
    found: list[dict] = []
    cards: list[dict] = []

    def problem(path: str, message: str, code: str = "BadRequest") -> None:
        found.append(Problem(path, message, code).as_json())

    body = document.get("body")
    if not isinstance(body, dict):
        problem("$.body", "'body' must be an object {\"contentType\": \"html\", \"content\": ...}")
        return found, cards
    if body.get("contentType", "text") not in ("html", "text"):
        problem("$.body.contentType", f"'contentType' must be \"html\" or \"text\", not "
                                      f"{json.dumps(body.get('contentType'))}")
    content = body.get("content")
    if not isinstance(content, str):
        problem("$.body.content", "'content' must be a string")
        content = ""
    attachments = document.get("attachments", [])
    if not isinstance(attachments, list):
        problem("$.attachments", "'attachments' must be an array")
        return found, cards
    if not content.strip() and not attachments:
        problem("$.body.content", "a message needs content or attachments")
    referenced = ATTACHMENT_TAG.findall(content)
    ids = []
    for i, attachment in enumerate(attachments):
        where = f"$.attachments[{i}]"
        if not isinstance(attachment, dict):
            problem(where, "an attachment must be an object")
            continue
        attachment_id = attachment.get("id")
        if not isinstance(attachment_id, str) or not attachment_id:
            problem(f"{where}.id", "an attachment needs an 'id' (the id its <attachment> tag in body.content names)")
        elif attachment_id in ids:
            problem(f"{where}.id", f"attachment id '{attachment_id}' is used twice")
        else:
            ids.append(attachment_id)
            if attachment_id not in referenced:
                problem(f"{where}.id", f"attachment '{attachment_id}' is not referenced in body.content: add "
                                       f"<attachment id=\"{attachment_id}\"></attachment>")
        if attachment.get("contentType") != ADAPTIVE_CARD:
            problem(f"{where}.contentType", f"'contentType' must be \"{ADAPTIVE_CARD}\" (the stand-in takes Adaptive "
                                            f"Cards only), not {json.dumps(attachment.get('contentType'))}")
            continue
        card_text = attachment.get("content")
        if not isinstance(card_text, str):
            problem(f"{where}.content", "'content' must be the card serialized as a JSON string")
            continue
        try:
            card = json.loads(card_text)
        except ValueError as exc:
            problem(f"{where}.content", f"'content' is not valid JSON: {exc}")
            continue
        card_problems = validator.problems(card)
        found += [p.as_json(f"{where}.content") for p in card_problems]
        if not card_problems:
            cards.append(card)
    for reference in referenced:
        if reference not in ids:
            problem("$.body.content", f"<attachment id=\"{reference}\"> names no attachment of this message")
    return found, cards


def chat_message(stored: dict, channel: Channel, team_id: str, tenant_id: str, client_id: str,
                 base_url: str) -> dict:
    """The chatMessage Graph answers with (and lists). A card a Workflows flow posted is listed as the flow's bot
    posts it: an html body referencing the card, which is an attachment holding the card as a JSON string."""
    request = stored["request"] if stored["api"] == "graph" else _as_posted_by_workflows(stored)
    message_id = stored["id"]
    encoded_channel = quote(channel.graph_id, safe="")
    return {
        "@odata.context": f"{base_url}/v1.0/$metadata#teams('{team_id}')/channels('{encoded_channel}')/messages"
                          "/$entity",
        "id": message_id, "replyToId": None, "etag": message_id, "messageType": "message",
        "createdDateTime": stored["received_at"], "lastModifiedDateTime": stored["received_at"],
        "lastEditedDateTime": None, "deletedDateTime": None, "subject": request.get("subject"),
        "summary": request.get("summary"), "chatId": None, "importance": request.get("importance", "normal"),
        "locale": "en-us",
        "webUrl": f"https://teams.microsoft.com/l/message/{encoded_channel}/{message_id}?groupId={team_id}"
                  f"&tenantId={tenant_id}&createdTime={message_id}&parentMessageId={message_id}",
        "policyViolation": None, "eventDetail": None,
        "from": {"application": {"@odata.type": "#microsoft.graph.teamworkApplicationIdentity",
                                 "id": client_id if stored["api"] == "graph" else WORKFLOWS_BOT_ID,
                                 "displayName": "ml-connector" if stored["api"] == "graph" else "Workflows",
                                 "applicationIdentityType": "aadApplication" if stored["api"] == "graph" else "bot"},
                 "device": None, "user": None},
        "body": {"contentType": request["body"].get("contentType", "text"), "content": request["body"]["content"]},
        "channelIdentity": {"teamId": team_id, "channelId": channel.graph_id},
        "attachments": [{"id": a["id"], "contentType": a["contentType"], "contentUrl": a.get("contentUrl"),
                         "content": a["content"], "name": a.get("name"), "thumbnailUrl": a.get("thumbnailUrl"),
                         "teamsAppId": None} for a in request.get("attachments", [])],
        "mentions": request.get("mentions", []), "reactions": [],
    }


def _as_posted_by_workflows(stored: dict) -> dict:
    attachment_id = uuid.uuid5(uuid.NAMESPACE_URL, f"workflows-message:{stored['id']}").hex
    return {"body": {"contentType": "html", "content": f'<attachment id="{attachment_id}"></attachment>'},
            "attachments": [{"id": attachment_id, "contentType": ADAPTIVE_CARD, "contentUrl": None,
                             "content": json.dumps(card, separators=(",", ":"))} for card in stored["cards"][:1]]}
