"""Write the support-desk dataset of docs/fine-tuning.md: questions to knowledge-base articles.

The knowledge base of "Ledgerly", an invoicing and bookkeeping service, has one article per
(product area, kind of question). Training questions are worded like past tickets, often
with the article's own terms; held-out questions use customers' words and new phrasings, and
share no key word with their article (checked here, and again by the test suite).

    python docs/fine-tuning/make_support_dataset.py   # rewrites the three .jsonl files beside it
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

HERE = Path(__file__).parent
SEED = 7
TRAIN_PER_ARTICLE = 5
HELDOUT_PER_ARTICLE = 2

# Each area: the article's own terms, then how customers name it without those terms.
AREAS: list[dict[str, object]] = [
    {
        "noun": "invoice",
        "plural": "invoices",
        "path": "Sales > Invoices",
        "error": "Invoice number already used",
        "cause": "the numbering sequence was reset",
        "limit": "50 invoices a month on Starter, unlimited on Growth",
        "source": "a CSV with one row per invoice line",
        "lingo": [
            "the bills I send my clients",
            "what I charge customers for a job",
            "paperwork asking a customer to pay me",
        ],
    },
    {
        "noun": "recurring invoice",
        "plural": "recurring invoices",
        "path": "Sales > Recurring",
        "error": "Schedule could not be saved",
        "cause": "the next run date lies in the past",
        "limit": "20 schedules on Starter, 500 on Growth",
        "source": "a CSV of schedules with frequency and next date",
        "lingo": [
            "bills that go out by themselves every month",
            "automatic monthly charging of clients",
            "repeat billing each week",
        ],
    },
    {
        "noun": "payment reminder",
        "plural": "payment reminders",
        "path": "Settings > Reminders",
        "error": "Reminder email bounced",
        "cause": "the customer's contact address is wrong",
        "limit": "three reminder steps per overdue invoice",
        "source": "your old reminder wording pasted as templates",
        "lingo": [
            "nudging people who still owe me money",
            "chasing late payers",
            "pestering clients that haven't paid",
        ],
    },
    {
        "noun": "credit note",
        "plural": "credit notes",
        "path": "Sales > Credit notes",
        "error": "Credit exceeds the invoice balance",
        "cause": "the credited amount is larger than what is still open",
        "limit": "no limit; each one must reference an invoice",
        "source": "a CSV with the invoice number each credit refers to",
        "lingo": [
            "giving a customer some money back on a bill",
            "partially refunding what a client was charged",
            "knocking an amount off a bill after it went out",
        ],
    },
    {
        "noun": "expense receipt",
        "plural": "expense receipts",
        "path": "Purchases > Expenses",
        "error": "Receipt image unreadable",
        "cause": "the photo is blurred or too dark",
        "limit": "10 MB per receipt file",
        "source": "PDF or JPG files dragged onto the Expenses page",
        "lingo": [
            "pictures of till slips from lunches",
            "claiming back what staff spent",
            "snapping the paper slip from a shop",
        ],
    },
    {
        "noun": "bank feed",
        "plural": "bank feeds",
        "path": "Banking > Connections",
        "error": "Bank connection expired",
        "cause": "your bank requires consent every 90 days",
        "limit": "two connected accounts on Starter, ten on Growth",
        "source": "an OFX or QIF statement file when no live link exists",
        "lingo": [
            "transactions from my current account not showing up",
            "the live link to where I keep my money",
            "card payments not flowing in automatically",
        ],
    },
    {
        "noun": "bank reconciliation",
        "plural": "bank reconciliations",
        "path": "Banking > Reconcile",
        "error": "Statement balance does not match",
        "cause": "a transaction was entered twice or skipped",
        "limit": "matching suggestions for the last 24 months",
        "source": "a statement CSV with date, amount and description",
        "lingo": [
            "ticking off each line from my lender's printout against the books",
            "pairing up payments with what I recorded",
            "making my books agree with what the branch reports",
        ],
    },
    {
        "noun": "payroll run",
        "plural": "payroll runs",
        "path": "People > Payroll",
        "error": "Employee tax code missing",
        "cause": "a new starter has no tax details yet",
        "limit": "five employees on Starter, 250 on Growth",
        "source": "a CSV of employees with salary and tax code",
        "lingo": [
            "paying my staff their wages",
            "monthly salaries for those who work for me",
            "getting everyone on the team paid",
        ],
    },
    {
        "noun": "sales tax rate",
        "plural": "sales tax rates",
        "path": "Settings > Tax",
        "error": "Tax rate is in use and locked",
        "cause": "posted transactions already reference that rate",
        "limit": "up to 40 rates, including compound rates",
        "source": "a list of jurisdictions with percentages",
        "lingo": [
            "the VAT percentage on what I sell",
            "the government's cut added to prices",
            "GST on my products",
        ],
    },
    {
        "noun": "foreign currency",
        "plural": "foreign currencies",
        "path": "Settings > Currencies",
        "error": "Exchange rate unavailable",
        "cause": "the rate provider has no quote for that date",
        "limit": "multi-currency is included on Growth only",
        "source": "historical exchange rates entered by hand",
        "lingo": [
            "customers who pay me in euros or dollars",
            "billing overseas clients in their money",
            "money from abroad",
        ],
    },
    {
        "noun": "user role",
        "plural": "user roles",
        "path": "Settings > Users",
        "error": "Invitation link expired",
        "cause": "invitations are valid for seven days",
        "limit": "three users on Starter, unlimited on Growth",
        "source": "a list of email addresses pasted into the invite form",
        "lingo": [
            "letting my accountant look at the books",
            "giving a colleague a login of their own",
            "who else can get into my company",
        ],
    },
    {
        "noun": "two-factor authentication",
        "plural": "two-factor authentication codes",
        "path": "Profile > Security",
        "error": "Verification code rejected",
        "cause": "the clock on your device is out of sync",
        "limit": "ten backup codes per account",
        "source": "an authenticator app such as one you already use",
        "lingo": [
            "the six digits my phone shows when I sign in",
            "extra sign-in step with a text message",
            "that second check when logging on",
        ],
    },
    {
        "noun": "API key",
        "plural": "API keys",
        "path": "Settings > Developers",
        "error": "401 Unauthorized",
        "cause": "the key was revoked or copied with a space",
        "limit": "120 requests per minute per key",
        "source": "keys created for each integration you build",
        "lingo": [
            "a token so our own software can talk to yours",
            "programmatic access for our engineers",
            "connecting our in-house app",
        ],
    },
    {
        "noun": "webhook",
        "plural": "webhooks",
        "path": "Settings > Developers > Webhooks",
        "error": "Endpoint returned 500",
        "cause": "your endpoint failed or timed out",
        "limit": "ten endpoints, retried for 24 hours",
        "source": "an HTTPS URL that accepts POST requests",
        "lingo": [
            "getting pinged over HTTP when something changes",
            "callbacks to our server on new events",
            "push messages to our backend",
        ],
    },
    {
        "noun": "data export",
        "plural": "data exports",
        "path": "Settings > Export",
        "error": "Export timed out",
        "cause": "the date range holds too many records",
        "limit": "one full export per hour",
        "source": "CSV or Excel files, zipped",
        "lingo": [
            "downloading all my numbers into a spreadsheet",
            "getting everything out before I leave",
            "a backup copy of my company files",
        ],
    },
    {
        "noun": "purchase order",
        "plural": "purchase orders",
        "path": "Purchases > Orders",
        "error": "Supplier has no email address",
        "cause": "the contact card lacks an email",
        "limit": "100 open orders on Starter",
        "source": "a CSV of order lines with supplier and quantity",
        "lingo": [
            "buying stock from my vendors",
            "paperwork I send wholesalers before buying",
            "asking a wholesaler to deliver goods",
        ],
    },
    {
        "noun": "inventory item",
        "plural": "inventory items",
        "path": "Products > Inventory",
        "error": "Quantity on hand below zero",
        "cause": "a sale was recorded before its purchase",
        "limit": "1,000 tracked items on Starter",
        "source": "a CSV with item code, cost and quantity",
        "lingo": [
            "how many things I have left on the shelf",
            "counting what's in the warehouse",
            "units in the storeroom",
        ],
    },
    {
        "noun": "timesheet",
        "plural": "timesheets",
        "path": "Projects > Time",
        "error": "Timer already running",
        "cause": "a timer is still open on another device",
        "limit": "entries up to 24 hours each",
        "source": "a CSV of entries with project, date and hours",
        "lingo": [
            "logging how long I worked on a job",
            "billable work done by my staff",
            "clocking effort spent for a client",
        ],
    },
    {
        "noun": "profit and loss report",
        "plural": "profit and loss reports",
        "path": "Reports > Profit and loss",
        "error": "Report is still being calculated",
        "cause": "a large period is being recalculated after a change",
        "limit": "comparisons of up to twelve periods",
        "source": "opening balances entered as of your start date",
        "lingo": [
            "seeing whether I made money this quarter",
            "income minus costs summary",
            "how much we earned after spending",
        ],
    },
    {
        "noun": "mobile app",
        "plural": "mobile apps",
        "path": "the App Store or Google Play",
        "error": "Session expired, sign in again",
        "cause": "the app was offline for 30 days",
        "limit": "five signed-in devices per user",
        "source": "your existing account, signed in on the phone",
        "lingo": [
            "using it on my iPhone",
            "the version for my Android phone",
            "doing the books from my smartphone",
        ],
    },
]

# Each kind: the article title and body, training phrasings and held-out phrasings.
KINDS: dict[str, dict[str, object]] = {
    "setup": {
        "title": "Set up {plural}",
        "body": (
            "To configure {plural}, open {path} and choose New. Fill in the required "
            "fields, then select Save. Changes apply to new records from now on."
        ),
        "train": [
            "how do I set up {x}",
            "configure {x}",
            "where do I enable {x}",
            "turn on {x} for my company",
            "{x} setup",
        ],
        "heldout": [
            "how do I get started with {l}?",
            "what are the first steps to begin using {l}?",
        ],
    },
    "error": {
        "title": "Fix the error: {error}",
        "body": (
            'When {plural} fail with the message "{error}", the usual cause is that '
            "{cause}. Correct it in {path} and retry; the failed record is kept as a draft."
        ),
        "train": [
            "{x} error",
            "{x} failed",
            "why are {x} not working",
            "{x} error message",
            "problem with {x} failing",
        ],
        "heldout": [
            "something keeps going wrong with {l}, what do I do?",
            "{l} is broken today, help",
        ],
    },
    "undo": {
        "title": "Delete or void {plural}",
        "body": (
            "You can delete a draft in {path}. Once sent or posted, {plural} cannot be "
            "deleted; void them instead so the audit trail stays complete."
        ),
        "train": [
            "delete {x}",
            "how to void {x}",
            "undo {x}",
            "remove {x} sent by mistake",
            "cancel {x}",
        ],
        "heldout": ["I messed up {l}, can I reverse it?", "erasing {l} I created by accident"],
    },
    "permissions": {
        "title": "Who can manage {plural}",
        "body": (
            "Owners and Admins can manage {plural}. Give other users the Standard or "
            "Read-only role in Settings > Users to restrict access to {path}."
        ),
        "train": [
            "permissions for {x}",
            "which role can edit {x}",
            "restrict access to {x}",
            "user role needed for {x}",
            "who can manage {x}",
        ],
        "heldout": [
            "which members of my staff are allowed to handle {l}?",
            "can I stop some colleagues from touching {l}?",
        ],
    },
    "limits": {
        "title": "Limits on {plural}",
        "body": (
            "Plan limits for {plural}: {limit}. Upgrade in Settings > Plan to raise them; "
            "usage resets on the first day of each month."
        ),
        "train": [
            "{x} limit",
            "maximum {x} on my plan",
            "how many {x} are allowed",
            "plan limits for {x}",
            "upgrade plan for more {x}",
        ],
        "heldout": ["is there a cap on {l}?", "how much of {l} does my subscription cover?"],
    },
    "import": {
        "title": "Import {plural}",
        "body": (
            "Load existing {plural} into Ledgerly from {source}. Open {path}, choose "
            "Import, map the columns and review the preview before confirming."
        ),
        "train": [
            "import {x}",
            "import {x} from csv",
            "migrate {x} from another system",
            "upload existing {x}",
            "bulk import of {x}",
        ],
        "heldout": [
            "bringing {l} over from my old software",
            "moving {l} across from the program I used before",
        ],
    },
}

_STOPWORD_TEXT = """
a an the and or of to in on for from with by at as is are be been was were it its i my me
we our you your they them their this that these those what which who how do does did can
not no so if then than there here about into out up down over under again each per one
all any some more most other such only own same too very just should now before after
when where why am i'm i've don't haven't isn't still
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def key_words(text: str) -> set[str]:
    """Lower-case content words, crudely stemmed, for the no-shared-key-word check."""
    words = re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())
    return {_stem(word) for word in words if word not in STOPWORDS and len(word) > 1}


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def articles() -> list[dict[str, str]]:
    result = []
    for area in AREAS:
        slots = {k: v for k, v in area.items() if isinstance(v, str)}
        for kind, parts in KINDS.items():
            title = str(parts["title"]).format(**slots)
            body = str(parts["body"]).format(**slots)
            result.append(
                {"id": f"{area['noun']}/{kind}".replace(" ", "-"), "text": f"{title}. {body}"}
            )
    return result


def build(seed: int = SEED) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(training pairs, held-out pairs), deterministic for a seed."""
    rng = random.Random(seed)
    docs = iter(articles())
    train: list[dict[str, str]] = []
    heldout: list[dict[str, str]] = []
    for area in AREAS:
        lingo = [str(phrase) for phrase in area["lingo"]]  # type: ignore[attr-defined]
        names = [str(area["plural"]), *lingo]
        for parts in KINDS.values():
            doc = next(docs)["text"]
            phrasings = [str(p) for p in parts["train"]]  # type: ignore[attr-defined]
            combos = [p.format(x=n) for p in phrasings for n in names]
            for query in rng.sample(combos, TRAIN_PER_ARTICLE):
                train.append({"query": query, "positive": doc})
            held = [
                str(p).format(l=phrase)
                for p in parts["heldout"]  # type: ignore[attr-defined]
                for phrase in lingo
            ]
            held = [q for q in held if not key_words(q) & key_words(doc)]
            if len(held) < HELDOUT_PER_ARTICLE:
                raise SystemExit(f"too few held-out questions share no word with: {doc[:60]}")
            for query in rng.sample(held, HELDOUT_PER_ARTICLE):
                heldout.append({"query": query, "positive": doc})
    rng.shuffle(train)
    return train, heldout


def main() -> None:
    train, heldout = build()
    files = {
        "support-train.jsonl": train,
        "support-heldout.jsonl": heldout,
        "support-articles.jsonl": articles(),  # {id, text}: what `embedserve ingest` reads
    }
    for name, rows in files.items():
        with (HERE / name).open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(row) + "\n" for row in rows)
    print(f"{len(train)} training pairs, {len(heldout)} held-out pairs, {len(articles())} articles")


if __name__ == "__main__":
    main()
