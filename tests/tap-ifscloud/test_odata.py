"""The OData pieces the tap builds: literals, seek conditions, RFC 3986 encoding and nextLink resolution."""

from decimal import Decimal

from ml_connector_core import ifs_odata as odata


def test_string_literals_double_single_quotes():
    assert odata.literal("O'Brien & Sons") == "'O''Brien & Sons'"


def test_decimal_and_datetime_literals_are_exact_and_utc():
    assert odata.literal(Decimal("12345678901234567890.123456789"), "Edm.Decimal") == "12345678901234567890.123456789"
    assert odata.literal("2024-03-01T12:00:00+02:00", "Edm.DateTimeOffset") == "2024-03-01T10:00:00Z"


def test_seek_condition_orders_by_timestamp_then_each_key():
    order = [("Rowversion", "Edm.DateTimeOffset"), ("Company", "Edm.String"), ("InvoiceNo", "Edm.String")]
    row = {"Rowversion": "2024-01-01T00:00:00Z", "Company": "10", "InvoiceNo": "INV'1"}
    assert odata.seek_after(order, row) == (
        "(Rowversion gt 2024-01-01T00:00:00Z or (Rowversion eq 2024-01-01T00:00:00Z and "
        "(Company gt '10' or (Company eq '10' and InvoiceNo gt 'INV''1'))))"
    )


def test_query_encoding_uses_percent_20_never_plus():
    url = odata.with_query("http://h/PurchaseOrderSet", {"$filter": "Company eq '10' and Amount gt 1.5", "$top": 10})
    assert "+" not in url
    assert url == "http://h/PurchaseOrderSet?$filter=Company%20eq%20'10'%20and%20Amount%20gt%201.5&$top=10"


def test_literal_plus_in_a_value_is_percent_encoded():
    url = odata.with_query("http://h/S", {"$filter": "ChangedDate ge 2024-01-01T00:00:00+01:00"})
    assert "%2B01:00" in url


def test_next_link_relative_and_absolute():
    request = "http://h/main/ifsapplications/projection/v1/PurchaseOrderHandling.svc/PurchaseOrderSet?$top=5"
    assert odata.resolve_next_link(request, "PurchaseOrderSet?$skiptoken=5") == (
        "http://h/main/ifsapplications/projection/v1/PurchaseOrderHandling.svc/PurchaseOrderSet?$skiptoken=5"
    )
    assert odata.resolve_next_link(request, "https://other/x?$skiptoken=1") == "https://other/x?$skiptoken=1"


def test_bookmarks_normalise_to_utc_text():
    assert odata.normalize_utc("2024-06-30T23:30:00-01:00") == "2024-07-01T00:30:00Z"
    assert odata.normalize_utc("2024-07-01T00:30:00Z") == "2024-07-01T00:30:00Z"
