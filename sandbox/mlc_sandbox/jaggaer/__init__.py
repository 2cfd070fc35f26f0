"""The JAGGAER stand-in: a JAGGAER One customer instance's REST API (client-credentials tokens, suppliers and
purchase orders written by externalId, invoices and receipts read by modifiedSince with stable paging, exact
decimals, validation errors with field paths, 429 throttling), faults and an admin interface that plays the supplier
network and the warehouse."""

from .sandbox import JaggaerSandbox, JaggaerSandboxProcess
from .settings import JaggaerSettings

__all__ = ["JaggaerSandbox", "JaggaerSandboxProcess", "JaggaerSettings"]
