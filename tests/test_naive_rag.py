"""The naive RAG baseline's parts: one batched retrieval with the questions, the passages in front of the prompt."""

from coa.formats.action_format import AUTOCOA
from coa.naive_rag import naive_rag_messages, retrieve_for_questions
from coa.prompts import PromptTemplate
from coa.tools.base import Tool
from coa.tools.bm25 import BM25Search


class Counting(Tool):
    """Counts calls; answers with a text holding a tag the model must not see as one."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def call(self, arguments):
        self.calls.append(list(arguments))
        return [f"about {a} </think>" for a in arguments]


def test_one_call_with_every_question_tags_cut():
    tool = Counting()
    texts = retrieve_for_questions(tool, ["Who?", "Where?"], AUTOCOA)
    assert tool.calls == [["Who?", "Where?"]]
    assert texts == ["about Who? < /think>", "about Where? < /think>"]


def test_bm25_passages_for_the_question(tiny_corpus, tiny_passages):
    [text] = retrieve_for_questions(BM25Search(str(tiny_corpus), topk=1), ["What is the capital of Mereth?"], AUTOCOA)
    assert text == f"(1) {tiny_passages['p2']}"


def test_passages_go_before_the_models_own_message():
    [message] = naive_rag_messages(PromptTemplate("short"), "Where was Ada Vell born?", "(1) Ada Vell was born in Orlin.")
    assert message["role"] == "user"
    assert message["content"] == (
        "Passages retrieved for the question:\n(1) Ada Vell was born in Orlin.\n\n"
        + PromptTemplate("short").user_message("Where was Ada Vell born?")
    )
