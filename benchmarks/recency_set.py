"""Build ``benchmarks/recency.jsonl``: a time-aware question set over Reuters-21578 (1987).

Reuters ran the same story day after day with a new figure ("U.K. MONEY MARKET DEFICIT FORECAST
AT 700 MLN STG"). For each such series below, every article whose figure differs from the one
before it gets a question about the current figure, asked "as of" its day with the later
articles filtered out by date: its right answer is its own figure, and the older articles of
the series, still in the index, give other figures. Only ids, figures and questions are written;
the text stays in ../shared (``benchmarks/recency.py`` reads it from there).

    .venv/bin/python benchmarks/recency_set.py
"""
from __future__ import annotations

import gzip
import json
import re
from datetime import datetime
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared/data/corpora/reuters21578.jsonl.gz"
OUT = Path(__file__).with_name("recency.jsonl")
NUMBER = r"(\d[\d,.]*)"

# title pattern (the figure in group 1) -> the question asked about the series
SERIES = {
    rf"U\.K\. MONEY MARKET DEFICIT FORECAST AT {NUMBER} MLN STG":
        "What is the latest forecast of the U.K. money market shortage?",
    rf"BANK OF JAPAN TO SELL {NUMBER} BILLION YEN IN BILLS":
        "How many billion yen in bills is the Bank of Japan selling now?",
    rf"WEEKLY ELECTRIC OUTPUT UP {NUMBER} PCT FROM \d+":
        "By what percentage is weekly electric output up from a year earlier now?",
    rf"U\.S\. TO SELL {NUMBER} BILLION DLRS IN BILLS":
        "How much will the U.S. Treasury sell in bills in its latest auction?",
    rf"RECENT U\.S\. OIL DEMAND UP {NUMBER} PCT FROM YEAR AGO":
        "By what percentage is U.S. oil demand up from a year ago in the latest report?",
    rf"U\.K\. MONEY MARKET GIVEN {NUMBER} MLN STG ASSISTANCE":
        "How much assistance was the U.K. money market given today?",
    rf"TAIWAN BUYS {NUMBER} TONNES OF U\.S\. MAIZE":
        "How many tonnes of U.S. maize did Taiwan buy recently?",
}


def iso(reuters_date: str) -> str:
    """"26-FEB-1987 15:01:01.79" -> "1987-02-26T15:01:01"."""
    return datetime.strptime(reuters_date.strip().split(".")[0], "%d-%b-%Y %H:%M:%S").isoformat()


def build() -> list[dict]:
    rows = [json.loads(line) for line in gzip.open(CORPUS, "rt")]
    items = []
    for pattern, question in SERIES.items():
        series = []
        for row in rows:
            match = re.fullmatch(pattern, row["title"].strip())
            # the figure must be quoted in the text, for an extractive reader to find it
            if match and match[1] in row["text"]:
                series.append((iso(row["date"]), row["id"], match[1]))
        series.sort()
        days = [published[:10] for published, _, _ in series]
        # one article a day: the recency factor counts days, so two on a day would tie
        series = [s for s, day in zip(series, days) if days.count(day) == 1]
        ids = [doc_id for _, doc_id, _ in series]
        dates = [published for published, _, _ in series]
        for i in range(1, len(series)):
            published, doc_id, figure = series[i]
            older = {f for _, _, f in series[:i]}
            if figure == series[i - 1][2]:
                continue
            items.append({"series": pattern, "question": question, "as_of": published[:10],
                          "doc_ids": ids, "published": dates, "newest": doc_id, "answer": figure,
                          "older_answers": sorted(older - {figure})})
    return items


def main() -> None:
    items = build()
    OUT.write_text("".join(json.dumps(item) + "\n" for item in items))
    print(f"{len(items)} questions from {len(SERIES)} series -> {OUT}")


if __name__ == "__main__":
    main()
