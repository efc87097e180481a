from datetime import datetime, tzinfo
from typing import Any, Self

from apscheduler.triggers.base import BaseTrigger

_Expression = int | str | None

class CronTrigger(BaseTrigger):
    timezone: tzinfo
    start_date: datetime | None
    end_date: datetime | None
    fields: list[Any]
    jitter: int | None
    def __init__(
        self,
        year: _Expression = None,
        month: _Expression = None,
        day: _Expression = None,
        week: _Expression = None,
        day_of_week: _Expression = None,
        hour: _Expression = None,
        minute: _Expression = None,
        second: _Expression = None,
        start_date: datetime | str | None = None,
        end_date: datetime | str | None = None,
        timezone: tzinfo | str | None = None,
        jitter: int | None = None,
    ) -> None: ...
    @classmethod
    def from_crontab(cls, expr: str, timezone: tzinfo | str | None = None) -> Self: ...
    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None: ...
    def __getstate__(self) -> dict[str, Any]: ...
    def __setstate__(self, state: dict[str, Any] | tuple[Any, dict[str, Any]]) -> None: ...
