"""Every table, imported in one place so Alembic and tests see the whole schema."""

from quotaflow.audit.models import AuditEvent
from quotaflow.auth.models import LoginAttempt
from quotaflow.config_cache import ConfigChange
from quotaflow.db import Base
from quotaflow.kpis.cache import DataChange
from quotaflow.kpis.models import Rollup, RollupSet
from quotaflow.org.models import Membership, Team, User
from quotaflow.packs.models import Pack, PackVersion
from quotaflow.pipelines.models import Approval, StageMove
from quotaflow.records.models import Record, RecordHistory
from quotaflow.scorecards.models import (
    AppraisalNote,
    AppraisalPeriod,
    AppraisalRating,
    AppraisalResult,
)
from quotaflow.targets.models import TargetAdjustment

__all__ = [
    "AppraisalNote",
    "AppraisalPeriod",
    "AppraisalRating",
    "AppraisalResult",
    "Approval",
    "AuditEvent",
    "Base",
    "ConfigChange",
    "DataChange",
    "LoginAttempt",
    "Membership",
    "Pack",
    "PackVersion",
    "Record",
    "Rollup",
    "RollupSet",
    "RecordHistory",
    "StageMove",
    "TargetAdjustment",
    "Team",
    "User",
]
