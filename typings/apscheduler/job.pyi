from collections.abc import Callable
from datetime import datetime
from typing import Any

class Job:
    id: str
    name: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    trigger: Any  # the trigger add_job was given, of whatever class
    executor: str
    coalesce: bool
    max_instances: int
    misfire_grace_time: int | None
    next_run_time: datetime | None
    def modify(self, **changes: Any) -> Job: ...
    def remove(self) -> None: ...
