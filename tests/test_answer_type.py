"""Expected answer types: the question's kind on hand-written questions, and whether spans fit."""
import pytest

from qa.answer_type import QUESTION_TYPES, fits, question_type


@pytest.mark.parametrize("question, expected", [
    ("Who said the first list had been handed to Ukraine?", "who"),
    ("Whose forces captured them?", "who"),
    ("To whom was the list handed?", "who"),
    ("What did Zelenskiy say?", "what"),
    ("Which app did Zelenskiy use?", "what"),
    ("When were the direct talks in Istanbul?", "when"),
    ("In what year did the war start?", "when"),
    ("Where were the direct talks held?", "where"),
    ("In which country were the servicemen?", "where"),
    ("How many POWs were on the first list?", "how many"),
    ("How much did the exchange cost?", "how many"),
    ("How old was the pilot?", "how many"),
    ("Why did the talks fail?", "other"),
    ("How did the exchange begin?", "other"),
    ("Name the Kremlin aide.", "other"),
    ("The talks were held where?", "where"),
])
def test_question_type(question, expected):
    assert question_type(question) == expected
    assert expected in QUESTION_TYPES


@pytest.mark.parametrize("question, span, expected", [
    ("How many POWs were on the first list?", "640", 1.0),
    ("How many POWs were on the first list?", "three dozen", 1.0),
    ("How many POWs were on the first list?", "the Kremlin aide", -1.0),
    ("How much will the plant cost?", "$3.5 billion", 1.0),
    ("When were the talks held?", "on Tuesday", 1.0),
    ("When were the talks held?", "May 16", 1.0),
    ("When were the talks held?", "1998", 1.0),
    ("When were the talks held?", "in Istanbul", -1.0),
    ("Who handed over the list?", "Vladimir Medinsky", 1.0),
    ("Who handed over the list?", "the Kremlin's aide", 1.0),
    ("Who handed over the list?", "the negotiators", -1.0),
    ("Who handed over the list?", "The negotiators", -1.0),  # a sentence's capital is no name
    ("Where will Aston Martin build the V8 Vantage?", "Gaydon, near Warwick", 1.0),
    ("Where will Aston Martin build the V8 Vantage?", "at a new plant", -1.0),
    ("What did Zelenskiy say?", "the talks failed", 0.0),
    ("Why did the talks fail?", "640", 0.0),
])
def test_fits(question, span, expected):
    assert fits(question, span) == expected
