"""The run layer: where a training run happens, is saved, resumed and read back.

    plan = RunPlan(config, out="runs/wide", limit=2000)
    result = start_run(plan)            # → RunResult (cause: StopCause, exit_status, metrics)
    result = resume_run("runs/wide")    # after an interruption
    results = start_pack(plans)         # several plans (seeds of one config) trained together
    record = open_run("runs/wide")      # a finished run: model, history, metrics
    evaluate_run("runs/wide", dataset_name="fashion-mnist", force=True)

Run directories hold safetensors + JSON, never pickle (see run_dir.py for the files).
"""

from mlplab.runs.model_file import SavedModel, load_model, save_model
from mlplab.runs.plan import RunPlan, ValidateOn
from mlplab.runs.result import EXIT_STATUS, RunResult, StopCause
from mlplab.runs.run_dir import HistoryWriter, RunDir
from mlplab.runs.lifecycle import load_run_dataset, prepare_data, resume_run, start_run, train_run  # noqa: E402
from mlplab.runs.records import RunRecord, evaluate_run, open_run, predict_probabilities, run_dataset  # noqa: E402
from mlplab.runs.pack import start_pack  # noqa: E402

__all__ = [
    "EXIT_STATUS", "HistoryWriter", "RunDir", "RunPlan", "RunRecord", "RunResult", "SavedModel", "StopCause",
    "ValidateOn", "evaluate_run", "load_model", "load_run_dataset", "open_run", "predict_probabilities",
    "prepare_data", "resume_run", "run_dataset", "save_model", "start_pack", "start_run", "train_run",
]
