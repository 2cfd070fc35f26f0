"""The Jira Cloud stand-in: REST API v3, v2 and latest from the same data (issues, transitions, comments, JQL search and
approximate count, fields, projects, users) with Basic auth and OAuth 2.0 (3LO) rotating refresh tokens, every request
and response checked against the official OpenAPI document and every ADF document against its schema; rate limits,
faults and an admin interface."""

from .sandbox import JiraSandbox, JiraSandboxProcess
from .settings import JiraSettings

__all__ = ["JiraSandbox", "JiraSandboxProcess", "JiraSettings"]
