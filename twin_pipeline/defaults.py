"""The defaults of a clone's privacy settings, in a module that imports nothing: the options (options.py) and the
statistics that use them (privacy/k_anonymity.py) share one value without the statistics importing the options."""

DEFAULT_K = 5
DEFAULT_MAX_SUPPRESSION = 0.01
# A twin's suppressed rows are not lost: they are redrawn with a random kept row's quasi-identifiers (protect.py),
# so shares stay unbiased and only rare combinations go. Up to this share may always be redrawn: at 1 % a 600-row
# twin failed on 7 isolated rows in half of its seeds.
TWIN_MAX_REDRAWN = 0.05
DEFAULT_SEED = 0
