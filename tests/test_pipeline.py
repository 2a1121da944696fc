"""The NewsQA facade end to end over ``seeds/`` with the shipped embedder and reader."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("question, expected", [
    ("How many POWs were on the first list?", "640"),
    ("Where were the direct talks held?", "Istanbul"),
    ("When were the direct talks in Istanbul?", "June 2"),
    ("Who said the first list had been handed to Ukraine?", "Medinsky"),
])
def test_seed_questions_are_answered_and_cited(seeded_qa, question: str, expected: str) -> None:
    answer = seeded_qa.ask(question, top_k=5)
    assert expected in answer.text
    cited = answer.citations[0]
    assert cited.title.startswith("Russia and Ukraine carried out an exchange of prisoners")
    document = seeded_qa.get(cited.doc_id)
    assert document.text[cited.start:cited.end] == cited.quote == answer.text


def test_question_outside_the_articles_is_not_found(seeded_qa) -> None:
    answer = seeded_qa.ask("Who won the 2018 football World Cup?", top_k=5)
    assert answer.text == "" and not answer.found
