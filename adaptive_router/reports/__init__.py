"""Read-only views of the recorded outcomes, through the Store contract: spend reports
(:mod:`.costs`), pre-launch cost estimates (:mod:`.estimate`), time series and plots
(:mod:`.timeseries`), and a dashboard's whole data request (:mod:`.summary`)."""

from adaptive_router.reports.costs import CostReport, PathCost, cost_report, cost_reports
from adaptive_router.reports.estimate import (
    CostEstimate,
    PathEstimate,
    PathSpec,
    estimate_cost_per_1000,
)
from adaptive_router.reports.summary import Summary, summary
from adaptive_router.reports.timeseries import (
    PlotUnavailableError,
    TimeSeries,
    plot_report,
    time_series,
)

__all__ = [
    "CostEstimate",
    "CostReport",
    "PathCost",
    "PathEstimate",
    "PathSpec",
    "PlotUnavailableError",
    "Summary",
    "TimeSeries",
    "cost_report",
    "cost_reports",
    "estimate_cost_per_1000",
    "plot_report",
    "summary",
    "time_series",
]
