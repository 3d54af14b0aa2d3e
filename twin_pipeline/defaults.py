"""The defaults of a clone's privacy settings, in a module that imports nothing: the options (options.py) and the
statistics that use them (privacy/k_anonymity.py) share one value without the statistics importing the options."""

DEFAULT_K = 5
DEFAULT_MAX_SUPPRESSION = 0.01
DEFAULT_SEED = 0
