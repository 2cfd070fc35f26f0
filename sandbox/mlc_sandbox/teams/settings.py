"""Everything a Teams stand-in run is configured with; the live values can be changed via /_admin/settings."""

from __future__ import annotations

from dataclasses import dataclass

# Teams refuses messages above about 28 KB (the whole message: card, envelope and all)
MAX_MESSAGE_BYTES = 28 * 1024

VALIDATION_MODES = ("sync", "flow")


@dataclass
class TeamsSettings:
    # signs the Workflows webhook URLs (`sig=`); a fixed default keeps the URLs the same from one run to the next
    signing_key: str = "mlc-sandbox-teams-signing-key"
    # Microsoft Entra ID (the tenant that issues Graph tokens) and the app registration allowed to post
    tenant_id: str = "8f5b1e2a-4c3d-4e6f-9a7b-1c2d3e4f5a6b"
    tenant_domain: str = "mlcsandbox.onmicrosoft.com"
    client_id: str = "5a8c2d1e-7b3f-4a6e-8d9c-0e1f2a3b4c5d"
    client_secret: str = "mlc-sandbox-graph-secret"
    token_ttl: int = 3599  # seconds a Graph access token lives (Entra ID: about one hour)
    # the team every stand-in channel belongs to (a Microsoft 365 group id)
    team_id: str = "3c9e6b1a-2f4d-4b8e-a1c7-5d6e7f8a9b0c"
    team_name: str = "IFS Operations"
    # the application permissions consented for the app registration, as its tokens' `roles` carry them: posting
    # (migration), reading channels and listing their messages. A tenant whose admin did not consent to
    # ChannelMessage.Read.All gets 403 on listing messages.
    graph_roles: tuple[str, ...] = ("Teamwork.Migrate.All", "ChannelMessage.Read.All", "Channel.ReadBasic.All")
    max_message_bytes: int = MAX_MESSAGE_BYTES
    # sync: invalid cards are refused at the request (400/413) so tests see why. flow: what Workflows really does, a
    # 202 for anything signed, then the flow run fails posting the card (visible only in /_admin/rejections).
    validation: str = "sync"
