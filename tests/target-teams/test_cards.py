"""Card rendering: templates filled safely, amounts formatted for finance, updates that say what changed, digests."""

from __future__ import annotations

from decimal import Decimal

from target_teams import cards

INVOICE = {"Company": "10", "InvoiceNo": "INV-7", "Identity": "S10001", "SupplierName": None, "PurchaseOrderNo": "P1000001",
           "GrossAmount": Decimal("1234567.5"), "CurrencyCode": "SEK", "Objstate": "AwaitingAuthorization",
           "AuthorizerId": None, "InvoiceDate": "2026-11-02", "DueDate": "2026-12-02"}


def test_money_is_grouped_with_two_decimals_and_never_through_float():
    assert cards.money(Decimal("1234567.5"), "SEK") == "1,234,567.50 SEK"
    assert cards.money(Decimal("0.1234"), "EUR") == "0.1234 EUR"
    assert cards.money(Decimal("1234567.5000"), "SEK") == "1,234,567.50 SEK"  # trailing zeros are not precision
    assert cards.money(Decimal("12345678901234567.01"), None) == "12,345,678,901,234,567.01"


def test_posting_proposal_card_has_the_facts_a_person_needs():
    card = cards.render(cards.load_template("posting_proposals", None), INVOICE, {"ifs_url": "https://t.ifs.cloud/x"})
    facts = cards.facts(card)
    assert facts["Supplier"] == "S10001"  # no name known: the id alone
    named = cards.render(cards.load_template("posting_proposals", None), {**INVOICE, "SupplierName": "Acme AB"}, {})
    assert cards.facts(named)["Supplier"] == "S10001 (Acme AB)"
    assert facts["PO number"] == "P1000001" and facts["Status"] == "AwaitingAuthorization"
    assert facts["Authorizer"] == "not assigned" and facts["Due date"] == "2026-12-02"
    assert card["body"][1]["text"] == "1,234,567.50 SEK"
    assert card["actions"][0] == {"type": "Action.OpenUrl", "title": "Open in IFS", "url": "https://t.ifs.cloud/x"}


def test_values_cannot_break_the_card_structure():
    hostile = {**INVOICE, "InvoiceNo": '"}]}, {"type": "Action.Submit"'}
    card = cards.render(cards.load_template("posting_proposals", None), hostile, {"ifs_url": "u"})
    assert card["body"][0]["text"].startswith('Supplier invoice "}]}')
    assert [a["type"] for a in card["actions"]] == ["Action.OpenUrl"]


def test_an_update_names_each_changed_fact():
    template = cards.load_template("posting_proposals", None)
    before = cards.render(template, INVOICE, {"ifs_url": "u"})
    after = cards.render(template, {**INVOICE, "Objstate": "Authorized", "GrossAmount": Decimal("1300000")}, {"ifs_url": "u"})
    changed = cards.changes(cards.facts(before), cards.facts(after))
    assert changed == ["Amount: 1,234,567.50 SEK → 1,300,000.00 SEK", "Status: AwaitingAuthorization → Authorized"]
    updated = cards.with_update_banner(after, changed)
    assert [i["text"] for i in updated["body"][0]["items"][1:]] == changed


def test_a_digest_stays_small_whatever_the_surge():
    lines = [{"text": f"Supplier invoice INV-{n}: AwaitingAuthorization", "url": f"https://t/x/{n}"} for n in range(5000)]
    message = cards.workflows_message(cards.digest_card("Posting Proposals: 5000 to review", lines))
    assert cards.size_of(message) < cards.MAX_MESSAGE_BYTES
    assert message["attachments"][0]["content"]["body"][-1]["text"] == "… and 4960 more"


def test_a_users_template_folder_overrides_the_packaged_one(tmp_path):
    (tmp_path / "posting_proposals.json").write_text(
        '{"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "Pay {{ InvoiceNo }}"}]}')
    card = cards.render(cards.load_template("posting_proposals", str(tmp_path)), INVOICE)
    assert card["body"][0]["text"] == "Pay INV-7"
