"""The query and document prompts, chosen exactly as the server chooses them."""

from __future__ import annotations

import dataclasses

from embedserve.server.embedder import _PROMPT_NAMES, Task
from embedserve.server.model_spec import ModelSpec


@dataclasses.dataclass(frozen=True)
class TaskPrompts:
    """What the server prepends on ``task=query`` searches and ``task=document`` writes."""

    query: str
    document: str

    def by_column(self) -> dict[str, str]:
        """Prompts per training column; columns without a prompt are left out."""
        columns = {"query": self.query, "positive": self.document, "negative": self.document}
        return {column: prompt for column, prompt in columns.items() if prompt}


def task_prompts(spec: ModelSpec) -> TaskPrompts:
    """The model's prompt for each task, looked up by the server's own names for it."""

    def lookup(task: Task) -> str:
        return next((spec.prompts[n] for n in _PROMPT_NAMES[task] if n in spec.prompts), "")

    return TaskPrompts(query=lookup(Task.QUERY), document=lookup(Task.DOCUMENT))
