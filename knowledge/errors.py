"""The one error the knowledge base raises: it names the file, the entry and the field at fault."""

from __future__ import annotations


class KnowledgeError(ValueError):
    def __init__(self, file: str, entry: str | None, field: str | None, problem: str) -> None:
        self.file = file
        self.entry = entry
        self.field = field
        self.problem = problem
        where = file
        if entry is not None:
            where += f": entry {entry}"
        if field is not None:
            where += f": field '{field}'"
        super().__init__(f"{where}: {problem}")
