"""GET /services/data/vNN.N/limits: the org's limits as Salesforce lists them, each {"Max", "Remaining"}.

The names and maxima are those of Salesforce's documented example answer ("List Org Limits", REST API Developer Guide,
and the Limits resource's list of limits); storage is an Enterprise Edition org's base allocation (10 GB data, 10 GB
files). Only two of them move here: DailyApiRequests counts the stand-in's own API requests (its Max is the
`daily_api_limit` setting), and DataStorageMB shrinks with the records stored (Salesforce counts most records as 2 KB).
Every other limit is reported untouched (Remaining = Max): the stand-in has no reports, e-mail, events or Apex."""

from __future__ import annotations

import math

RECORD_SIZE_KB = 2  # Salesforce counts most records as 2 KB of data storage
DATA_STORAGE_MB = 10240
FILE_STORAGE_MB = 10240

# name -> Max, as in Salesforce's example answer
UNUSED_LIMITS = {
    "AnalyticsExternalDataSizeMB": 40960,
    "ConcurrentAsyncGetReportInstances": 200,
    "ConcurrentEinsteinDataInsightsStoryCreation": 5,
    "ConcurrentEinsteinDiscoveryStoryCreation": 2,
    "ConcurrentSyncReportRuns": 20,
    "DailyAnalyticsDataflowJobExecutions": 60,
    "DailyAnalyticsUploadedFilesSizeMB": 51200,
    "DailyAsyncApexExecutions": 250000,
    "DailyAsyncApexTests": 500,
    "DailyBulkApiBatches": 15000,
    "DailyBulkV2QueryFileStorageMB": 976562,
    "DailyBulkV2QueryJobs": 10000,
    "DailyDurableGenericStreamingApiEvents": 10000,
    "DailyDurableStreamingApiEvents": 10000,
    "DailyEinsteinDataInsightsStoryCreation": 1000,
    "DailyEinsteinDiscoveryPredictAPICalls": 50000,
    "DailyEinsteinDiscoveryPredictionsByCDC": 500000,
    "DailyEinsteinDiscoveryStoryCreation": 20,
    "DailyFunctionsApiCallLimit": 235000,
    "DailyGenericStreamingApiEvents": 10000,
    "DailyStandardVolumePlatformEvents": 10000,
    "DailyStreamingApiEvents": 10000,
    "DailyWorkflowEmails": 390,
    "DurableStreamingApiConcurrentClients": 20,
    "HourlyAsyncReportRuns": 1200,
    "HourlyDashboardRefreshes": 200,
    "HourlyDashboardResults": 5000,
    "HourlyDashboardStatuses": 999999999,
    "HourlyLongTermIdMapping": 100000,
    "HourlyManagedContentPublicRequests": 50000,
    "HourlyODataCallout": 10000,
    "HourlyPublishedPlatformEvents": 50000,
    "HourlyPublishedStandardVolumePlatformEvents": 1000,
    "HourlyShortTermIdMapping": 100000,
    "HourlySyncReportRuns": 500,
    "HourlyTimeBasedWorkflow": 50,
    "MassEmail": 10,
    "MonthlyEinsteinDiscoveryStoryCreation": 500,
    "MonthlyPlatformEventsUsageEntitlement": 300000,
    "SingleEmail": 15,
    "StreamingApiConcurrentClients": 20,
}


def org_limits(daily_api_limit: int, api_used: int, records_stored: int) -> dict:
    limits = {name: {"Max": value, "Remaining": value} for name, value in UNUSED_LIMITS.items()}
    limits["DailyApiRequests"] = {"Max": daily_api_limit, "Remaining": max(0, daily_api_limit - api_used)}
    used_mb = math.ceil(records_stored * RECORD_SIZE_KB / 1024)
    limits["DataStorageMB"] = {"Max": DATA_STORAGE_MB, "Remaining": max(0, DATA_STORAGE_MB - used_mb)}
    limits["FileStorageMB"] = {"Max": FILE_STORAGE_MB, "Remaining": FILE_STORAGE_MB}
    limits["PermissionSets"] = {"Max": 1500, "Remaining": 1500, "CreateCustom": {"Max": 1000, "Remaining": 1000}}
    return dict(sorted(limits.items()))  # Salesforce lists them alphabetically
