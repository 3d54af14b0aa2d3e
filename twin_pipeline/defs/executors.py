"""Where the steps of a run execute: processes on this machine (default), Kubernetes Jobs, or Celery workers.

Chosen by `build_definitions(executor=...)` or $TWIN_EXECUTOR: "multiprocess", "k8s", "celery", or "in_process"
(every step in the run's own process: for a debugger, or a machine where forking is costly). The twin
is the same under each, byte for byte: a shard's seed depends on (portfolio seed, shard index) only. Each
executor starts from the defaults below, and a run's `execution.config` may set any field of that executor's
own config on top (e.g. `max_concurrent`, or more `volumes`).

What a cluster needs besides the executor: steps hand each other files (the raw copy, the model, the shards,
the step JSON under <data>/steps/), so every run and step pod or Celery worker must see the same data
directory ($TWIN_DATA_DIR on a shared ReadWriteMany volume), and the Dagster instance must be shared
(PostgreSQL storage). The DuckDB audit log lives on that volume too, and its writers take turns on DuckDB's
file lock, so the volume must support POSIX (fcntl) locks, as NFSv4 and most CSI drivers do.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import dagster as dg

DEFAULT = "multiprocess"
CLUSTER_PACKAGES = {"k8s": "dagster-k8s", "celery": "dagster-celery"}
DATA_VOLUME = "twin-data"


def _with_defaults(executor: dg.ExecutorDefinition, defaults: dict) -> dg.ExecutorDefinition:
    """`executor` whose config starts from `defaults`; a run's config extends them (see `_extend`)."""
    return executor.configured(lambda config: _extend(defaults, config), name=executor.name,
                               config_schema=executor.config_schema.as_field().config_type)


def _extend(defaults: dict, config: dict) -> dict:
    """Lists are appended to (a run adds volumes, it does not lose the data volume), dicts merged, other values
    replaced. The schema fills in its own defaults (e.g. `volumes: []`) before this sees the run's config."""
    merged = dict(defaults)
    for key, value in config.items():
        base = defaults.get(key)
        if isinstance(base, list) and isinstance(value, list):
            merged[key] = base + [item for item in value if item not in base]
        elif isinstance(base, dict) and isinstance(value, dict):
            merged[key] = _extend(base, value)
        else:
            merged[key] = value
    return merged


def multiprocess() -> dg.ExecutorDefinition:
    """Steps in their own processes, forked from a server that has already imported this package: a spawned
    process would re-import pandas, SciPy and DuckDB for every step (and there is one step per shard)."""
    return _with_defaults(dg.multiprocess_executor, {"start_method": {"forkserver": {}}})


def kubernetes() -> dg.ExecutorDefinition:
    """Each step a Kubernetes Job (dagster-k8s), in the run launcher's namespace and image unless the run
    config says otherwise; every step pod mounts the data volume claim $TWIN_K8S_DATA_CLAIM (default
    "twin-data") at $TWIN_DATA_DIR (default /opt/twin/data) and gets TWIN_DATA_DIR, so it sees the shards of
    the other steps. $TWIN_K8S_MAX_CONCURRENT caps the pods of one run (default: no cap)."""
    from dagster_k8s import k8s_job_executor

    data = os.environ.get("TWIN_DATA_DIR") or "/opt/twin/data"
    defaults = {
        "volumes": [{"name": DATA_VOLUME,
                     "persistent_volume_claim": {"claim_name": os.environ.get("TWIN_K8S_DATA_CLAIM", DATA_VOLUME)}}],
        "volume_mounts": [{"name": DATA_VOLUME, "mount_path": data}],
        "env_vars": [f"TWIN_DATA_DIR={data}"],
    }
    if os.environ.get("TWIN_K8S_MAX_CONCURRENT"):
        defaults["max_concurrent"] = int(os.environ["TWIN_K8S_MAX_CONCURRENT"])
    return _with_defaults(k8s_job_executor, defaults)


def celery() -> dg.ExecutorDefinition:
    """Each step a task on a Celery queue (dagster-celery), run by `dagster-celery worker start` processes on
    any machine that sees the data directory; broker and result backend from $TWIN_CELERY_BROKER (default:
    dagster-celery's pyamqp://guest@$DAGSTER_CELERY_BROKER_HOST//) and $TWIN_CELERY_BACKEND (default rpc://)."""
    from dagster_celery import celery_executor

    defaults = {"backend": os.environ.get("TWIN_CELERY_BACKEND", "rpc://")}
    if os.environ.get("TWIN_CELERY_BROKER"):
        defaults["broker"] = os.environ["TWIN_CELERY_BROKER"]
    return _with_defaults(celery_executor, defaults)


EXECUTORS: dict[str, Callable[[], dg.ExecutorDefinition]] = {
    "multiprocess": multiprocess, "k8s": kubernetes, "celery": celery, "in_process": lambda: dg.in_process_executor,
}


def step_executor(name: str | None = None) -> dg.ExecutorDefinition:
    """The executor called `name`, else $TWIN_EXECUTOR, else the multiprocess one."""
    name = name or os.environ.get("TWIN_EXECUTOR") or DEFAULT
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r} (TWIN_EXECUTOR or build_definitions(executor=...)): "
                         f"choose one of {', '.join(EXECUTORS)}")
    try:
        return EXECUTORS[name]()
    except ImportError as error:  # only the cluster executors need a package of their own
        raise ImportError(f"the {name} executor needs {CLUSTER_PACKAGES[name]}: pip install 'twin-pipeline[cluster]' "
                          f"({error})") from error
