"""The naive RAG baseline: retrieve once with the question, put the passages in the prompt, answer without tools.

The passages come from the evaluation's own tool (BM25, `http_search`, ...) called with the question as
the query, all questions in one batched call; they go in front of the model's usual user message, so
the instruction and the answer format are those the model knows.
"""

from __future__ import annotations

from coa.formats.action_format import ActionFormat
from coa.prompts import PromptTemplate
from coa.tools.base import Tool

PASSAGES_HEADER = "Passages retrieved for the question:"


def retrieve_for_questions(tool: Tool, questions: list[str], fmt: ActionFormat) -> list[str]:
    """One tool call with every question as its query: the observation texts, with the format's tags cut.

    A failed retrieval is the tool's failure text, as in a rollout (`Retrieval failed: ...`).
    """
    return [fmt.neutralize(text) for text in tool.call(list(questions))]


def naive_rag_messages(template: PromptTemplate, question: str, passages: str) -> list[dict[str, str]]:
    """The chat for one question: the passages, then the model's usual user message.

    >>> naive_rag_messages(PromptTemplate("Q: {question}"), "Who?", "(1) Ada.")[0]["content"]
    'Passages retrieved for the question:\\n(1) Ada.\\n\\nQ: Who?'
    """
    return [{"role": "user", "content": f"{PASSAGES_HEADER}\n{passages}\n\n{template.user_message(question)}"}]
