"""The IFS Cloud stand-in: OData v4 projection services, IAM tokens, rate limit, faults, admin interface."""

from .sandbox import IfsSandbox, IfsSandboxProcess

__all__ = ["IfsSandbox", "IfsSandboxProcess"]
