"""Tracking runs in the tools people already use: TensorBoard and MLflow (the `mlplab[track]` extra).

    from mlplab.tracking import Tracking
    tracking = Tracking.from_specs(["tensorboard", "mlflow"])
    with tracking.run(plan.out) as tracked:
        result = start_run(plan, callbacks=tracked.callbacks)
        tracked.finish(result)

tensorboard and mlflow are imported only when a run logs to them (see session.py, docs/tracking.md).
"""

from mlplab.tracking.spec import LogTarget, parse_log_to, parse_log_to_all
from mlplab.tracking.session import RunTracking, StudyTracking, Tracking, track

__all__ = ["LogTarget", "RunTracking", "StudyTracking", "Tracking", "parse_log_to", "parse_log_to_all", "track"]
