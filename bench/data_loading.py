"""Time `load_dataset("mnist")`: the first (cold) load that decodes and caches, then warm loads.

    python bench/data_loading.py            # 1 cold + 7 warm loads, in a fresh temporary cache
    python bench/data_loading.py --warm 15

Warm loads read the four files (hashing them), and take the decoded arrays from the cache after
re-checking them (the arrays' IDX encoding is hashed again; see mlplab/data/cache.py). Data come
from $MLPLAB_DATA_DIR (default ../shared/data). Not a test: nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))
sys.path.insert(0, str(REPO_ROOT))

from bench.common import cpu_info  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm", type=int, default=7, help="number of warm loads (default 7)")
    parser.add_argument("--dataset", default="mnist", help="dataset name (default mnist)")
    args = parser.parse_args()
    os.environ.setdefault("MLPLAB_DATA_DIR", str(REPO_ROOT.parent / "shared" / "data"))
    with tempfile.TemporaryDirectory(prefix="mlplab-bench-cache-") as cache:
        os.environ["MLPLAB_CACHE_DIR"] = cache
        from mlplab.data import load_dataset

        start = time.perf_counter()
        ds = load_dataset(args.dataset, download=False)
        cold = time.perf_counter() - start
        warm = []
        for _ in range(args.warm):
            start = time.perf_counter()
            load_dataset(args.dataset, download=False)
            warm.append(time.perf_counter() - start)
    cpu = cpu_info()
    result = {
        "dataset": args.dataset, "source": ds.source, "cold_s": round(cold, 4),
        "warm_median_s": round(statistics.median(warm), 4), "warm_min_s": round(min(warm), 4),
        "warm_s": [round(w, 4) for w in warm], "cpu": cpu.get("model"), "logical_cpus": cpu.get("logical_cpus"),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
