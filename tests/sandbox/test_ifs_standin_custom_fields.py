"""The generated Cf_ custom fields point at records that exist, and suppliers carry tiers."""

from collections import Counter

from mlc_sandbox.ifs import generate

from ifs_standin_client import query

TIERS = {"STRATEGIC", "PREFERRED", "STANDARD", "SPOT"}


def test_supplier_categories_are_tiers_and_orders_repeat_their_suppliers(client):
    suppliers = {s["SupplierId"]: s["SupplierCategory"]
                 for s in client.all_rows("SupplierHandling", "SupplierInfoGeneralSet",
                                          query(select="SupplierId,SupplierCategory"))}
    assert set(suppliers.values()) <= TIERS and len(set(suppliers.values())) >= 3
    orders = client.all_rows("PurchaseOrderHandling", "PurchaseOrderSet",
                             query(select="VendorNo,Cf_Supplier_Tier"))
    assert orders and all(o["Cf_Supplier_Tier"] == suppliers[o["VendorNo"]] for o in orders)


def test_tier_weights():
    counts = Counter(generate.supplier_tiers(42, 20000))
    shares = {tier: counts[tier] / 20000 for tier in TIERS}
    assert 0.08 < shares["STRATEGIC"] < 0.12 and 0.22 < shares["PREFERRED"] < 0.28
    assert 0.46 < shares["STANDARD"] < 0.54 and 0.12 < shares["SPOT"] < 0.18


def test_orders_post_to_existing_cost_accounts_and_cost_centres(client):
    accounts = {(a["Company"], a["Account"]): a["LogicalAccountType"]
                for a in client.all_rows("AccountsHandling", "AccountSet",
                                         query(select="Company,Account,LogicalAccountType"))}
    centres = {(v["Company"], v["CodePartValue"])
               for v in client.all_rows("CodePartValuesHandling", "CodePartValueSet",
                                        query(filter="CodePart eq 'B'", select="Company,CodePartValue"))}
    orders = client.all_rows("PurchaseOrderHandling", "PurchaseOrderSet",
                             query(select="Company,Cf_Gl_Account,Cf_Cost_Center,Cf_Jira_Key,Cf_Jira_Status"))
    for order in orders:
        assert accounts[(order["Company"], order["Cf_Gl_Account"])] == "C"
        assert (order["Company"], order["Cf_Cost_Center"]) in centres
        assert order["Cf_Jira_Key"] is None and order["Cf_Jira_Status"] is None
    assert len({o["Cf_Gl_Account"] for o in orders}) > 1 and len({o["Cf_Cost_Center"] for o in orders}) > 1

    work_orders = client.all_rows("ActiveWorkOrdersHandling", "ActiveSeparateSet",
                                  query(select="Company,Cf_Gl_Account,Cf_Jira_Key"))
    assert work_orders
    for work_order in work_orders:
        assert accounts[(work_order["Company"], work_order["Cf_Gl_Account"])] == "C"
        assert work_order["Cf_Jira_Key"] is None


def test_custom_fields_filter_like_any_field(client):
    strategic = client.json("PurchaseOrderHandling", "PurchaseOrderSet",
                            query(filter="Cf_Supplier_Tier eq 'STRATEGIC'", select="Cf_Supplier_Tier"))["value"]
    assert strategic and {o["Cf_Supplier_Tier"] for o in strategic} == {"STRATEGIC"}
    untracked = client.json("PurchaseOrderHandling", "PurchaseOrderSet",
                            query(filter="Cf_Jira_Key eq null", count="true", top=1))
    assert untracked["@odata.count"] == 200
