"""The REST API versions Jira Cloud serves side by side, `/rest/api/3`, `/rest/api/2` and `/rest/api/latest`: the same
operations on the same data. They differ in how rich text (descriptions, environments, comment bodies) travels: v3 as
Atlassian Document Format documents, v2 as wiki markup strings. `latest` is v2 on Cloud (see docs/jira-sandbox.md for
the sources), and the links it answers with point at v2 except the requested issue's own `self`."""

from __future__ import annotations

import re
from dataclasses import dataclass

VERSIONS = ("3", "2", "latest")
_VERSIONED = re.compile(r"^/rest/api/(?P<version>3|2|latest)(?P<rest>/.*|)$")


def split(api_path: str) -> tuple[str, str] | None:
    """(version, the same path under /rest/api/3) for a REST API path, or None when it is not one."""
    found = _VERSIONED.match(api_path)
    if found is None:
        return None
    return found.group("version"), "/rest/api/3" + found.group("rest")


@dataclass(frozen=True)
class View:
    """How one request sees the site: where its links start (the site URL or the /ex/jira/<cloudid> gateway) and the
    API version it came through."""

    base: str
    version: str = "3"

    @property
    def api(self) -> str:
        """The root of `self` links to other resources."""
        return f"{self.base}/rest/api/{'3' if self.version == '3' else '2'}"

    @property
    def requested(self) -> str:
        """The root of the `self` link of the resource the request names (keeps `latest`)."""
        return f"{self.base}/rest/api/{self.version}"

    @property
    def adf(self) -> bool:
        """Rich text as Atlassian Document Format documents (v3) rather than wiki markup strings (v2, latest)."""
        return self.version == "3"
