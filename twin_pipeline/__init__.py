"""twin-pipeline: privacy-safe synthetic digital twins of credit and loan tables.

The notebook API: `GaussianCopulaEngine` (fit / sample / save), `DigitalTwinCloner`
(train / generate / get_comparison) and `enforce_k_anonymity(df, target_k=5)`. None of it imports Dagster;
the orchestration lives in `twin_pipeline.defs`.

The three names are imported on first use (PEP 562): `twin --help` or `twin status` should not pay for SciPy and
the engine, which every `import twin_pipeline.<anything>` would otherwise load first.
"""

from importlib import import_module

_EXPORTS = {"DigitalTwinCloner": ".cloner", "GaussianCopulaEngine": ".engine", "enforce_k_anonymity": ".privacy"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
