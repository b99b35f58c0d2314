"""Prompt templates: how a question becomes the chat the model sees."""

from __future__ import annotations

from dataclasses import dataclass

AUTOCOA_QUESTION_MARKER = "Now, please answer the user's question below:"

# AutoCoA's instruction, as in the released parquet files (user message, question appended).
AUTOCOA_INSTRUCTION = """You are an intelligent reasoning assistant with access to a web search tool to help you obtain accurate information. When answering the user's questions, please adhere to the following guidelines:

1. **Uncertainty Handling:**  
   - Encourage the use of web search to solve the problems mentioned during reasoning. 
   - If you are uncertain or do not have sufficient knowledge about a specific detail, you **must** perform a web search. 
   - To perform a web search the format **must** be in the format mentioned in point 2 Web Search Format
   - You can perform multiple web searches to ensure that the answer is correct.
   - The web search should be initiated only within your internal reasoning (the "thinking" phase), and it should not appear in your final answer to the user.

2. **Web Search Format:**  
   - When calling the web search tool, use the following exact format:
     ```
     <begin_search> your query here </end_search>
     ```
   - After you perform a web search, you will receive results enclosed in:
     ```
     <search_result> ... </search_result>
     ```
   - You can then use this information to further refine your reasoning and answer.

3. **Process:**  
   - If you encounter any uncertainty or unknown knowledge, embed a web search query within your internal thoughts (surrounded by `<think></think>` tags) using the specified format.
   - Incorporate the search results into your reasoning before finalizing your answer.
   - You should provide your final answer in the format \\boxed{YOUR_ANSWER}. 

Now, please answer the user's question below: 
{question}

"""

# A short instruction with the same tags, for tiny models whose compute should go to trajectories.
SHORT_INSTRUCTION = "Search with <begin_search> query </end_search> when needed; answer in \\boxed{}.\nQuestion: {question}"

INSTRUCTIONS = {"autocoa": AUTOCOA_INSTRUCTION, "short": SHORT_INSTRUCTION}


def extract_question(user_content: str) -> str:
    """The question inside an AutoCoA user message (the text after the instruction), or the whole text."""
    _, marker, question = user_content.partition(AUTOCOA_QUESTION_MARKER)
    return question.strip() if marker else user_content.strip()


@dataclass(frozen=True)
class PromptTemplate:
    """Builds the user message for a question.

    Args:
        instruction: a name in INSTRUCTIONS ("autocoa", "short") or a literal text holding
            `{question}` where the question goes.
    """

    instruction: str = "autocoa"

    def __post_init__(self) -> None:
        if "{question}" not in INSTRUCTIONS.get(self.instruction, self.instruction):
            raise ValueError(
                f"prompt instruction {self.instruction!r} is neither a known name {sorted(INSTRUCTIONS)} "
                "nor a text holding '{question}'; add '{question}' where the question goes"
            )

    def user_message(self, question: str) -> str:
        return INSTRUCTIONS.get(self.instruction, self.instruction).replace("{question}", question.strip())

    def messages(self, question: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.user_message(question)}]
