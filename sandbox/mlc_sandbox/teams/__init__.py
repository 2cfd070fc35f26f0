"""The Microsoft Teams stand-in: Workflows (Power Automate) webhooks per channel and Microsoft Graph channel messages,
each card checked against the Adaptive Card 1.5 schema and Teams' own rules; throttling, faults and an admin
interface."""

from .cards import CardValidator
from .sandbox import TeamsSandbox, TeamsSandboxProcess
from .settings import TeamsSettings

__all__ = ["CardValidator", "TeamsSandbox", "TeamsSandboxProcess", "TeamsSettings"]
