"""The Salesforce stand-in: REST API v31.0-v68.0 (client-credentials tokens with sessions that expire, sObject rows,
upsert by external id, sObject Collections, the Composite resource, describe, SOQL with paging and COUNT,
updated/deleted, limits) for Account, Contact, Order, OrderItem and the price book objects, with Salesforce's error
codes and texts, the daily API limit, faults and an admin interface."""

from .sandbox import SalesforceSandbox, SalesforceSandboxProcess
from .settings import SalesforceSettings

__all__ = ["SalesforceSandbox", "SalesforceSandboxProcess", "SalesforceSettings"]
