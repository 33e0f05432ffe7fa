"""Task types as registered parts (the contract is in base.py). Importing this package registers
the built-in six; a user's task type registers itself the same way from its own module."""

from blurbkit.tasks.types import doc_classification, ner, pico, qa, relation, similarity  # noqa: F401 (register)
from blurbkit.tasks.types.base import TASK_TYPES, LabelCodec, TaskType, register


def get_task_type(name: str) -> TaskType:
    return TASK_TYPES.get(name)


__all__ = ["TASK_TYPES", "LabelCodec", "TaskType", "get_task_type", "register"]
