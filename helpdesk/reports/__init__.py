"""Reports for the Centre: period figures aggregated in SQL, rendered for the activity report."""

from helpdesk.reports.build import build_report
from helpdesk.reports.period import Period

__all__ = ["Period", "build_report"]
