"""The note on IFS supplier invoices (PostingProposalHead.NoteText, String(2000), nullable): declared in $metadata,
present in the generated data, and written by creates and PATCHes over real HTTP; invoices from JAGGAER put their
invoice/PO discrepancies there."""

from __future__ import annotations

import json

from ifs_standin_client import Client

PROPOSALS = "ManSuppInvoiceHandling"
HEADS = "PostingProposalHeadSet"
DISCREPANCIES = ("net amount 1 250.00 differs from the PO's 1 200.00 by 50.00;\n"
                 "line 2: quantity 12 above the PO line's 10; supplier 'S10009' is not the PO's 'S10002'")


def send(client: Client, method: str, path: str, body, if_match: str | None = None):
    headers = {"Authorization": f"Bearer {client.token}", "X-Ifs-Time-Zone-Aware-Request": "true",
               "Content-Type": "application/json"}
    if if_match is not None:
        headers["If-Match"] = if_match
    return client.http.request(method, client.url(PROPOSALS, path), data=json.dumps(body), headers=headers)


def head_body(invoice_no: str, **fields) -> dict:
    return {"Company": "10", "InvoiceNo": invoice_no, "Identity": "S10002", "PartyType": "Supplier",
            "PurchaseOrderNo": "P1000003", "InvoiceDate": "2026-11-20", "DueDate": "2026-12-20",
            "CurrencyCode": "SEK", "CurrRate": "1", "NetAmount": "1250.00", "VatAmount": "312.50",
            "GrossAmount": "1562.50", **fields}


def error_text(response) -> str:
    error = response.json()["error"]
    return " ".join([error["message"]] + [d["message"] for d in error.get("details", [])])


def test_note_text_is_declared_on_the_invoice_head(sandbox):
    metadata = Client(sandbox).get(PROPOSALS, "$metadata").text
    head_type = metadata[metadata.index('<EntityType Name="PostingProposalHead"'):]
    head_type = head_type[:head_type.index("</EntityType>")]
    assert '<Property Name="NoteText" Type="Edm.String" Nullable="true" MaxLength="2000"/>' in head_type


def test_generated_invoices_carry_a_note_now_and_then(sandbox):
    heads = Client(sandbox).all_rows(PROPOSALS, HEADS)
    notes = [head["NoteText"] for head in heads]
    assert None in notes and any(note for note in notes)
    assert all(note is None or 0 < len(note) <= 2000 for note in notes)


def test_invoice_created_with_its_discrepancies_in_the_note(fresh):
    client = Client(fresh())
    created = send(client, "POST", HEADS, head_body("JAG-INV-1", NoteText=DISCREPANCIES))
    assert created.status_code == 201, created.text
    assert created.json()["NoteText"] == DISCREPANCIES
    path = f"{HEADS}(Company='10',InvoiceNo='JAG-INV-1')"
    assert client.json(PROPOSALS, path)["NoteText"] == DISCREPANCIES
    found = client.json(PROPOSALS, HEADS, "$filter=contains(NoteText,'above the PO line')&$select=InvoiceNo")
    assert [row["InvoiceNo"] for row in found["value"]] == ["JAG-INV-1"]
    matching = send(client, "POST", HEADS, head_body("JAG-INV-2"))
    assert matching.status_code == 201 and matching.json()["NoteText"] is None


def test_note_is_changed_with_its_etag_and_limited_to_2000_characters(fresh):
    client = Client(fresh())
    created = send(client, "POST", HEADS, head_body("JAG-INV-3"))
    assert created.status_code == 201, created.text
    path = f"{HEADS}(Company='10',InvoiceNo='JAG-INV-3')"
    etag = created.headers["ETag"]
    too_long = send(client, "PATCH", path, {"NoteText": "x" * 2001}, etag)
    assert too_long.status_code == 400 and "NoteText" in error_text(too_long)
    changed = send(client, "PATCH", path, {"NoteText": "y" * 2000}, etag)
    assert changed.status_code in (200, 204), changed.text
    assert client.json(PROPOSALS, path)["NoteText"] == "y" * 2000
    refused = send(client, "POST", HEADS, head_body("JAG-INV-4", NoteText="z" * 2001))
    assert refused.status_code == 400 and "NoteText" in error_text(refused)
    assert client.json(PROPOSALS, HEADS, "$filter=InvoiceNo eq 'JAG-INV-4'")["value"] == []
