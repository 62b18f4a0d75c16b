"""Spiking networks: learning rules and their Nengo builders.

Importing this package registers the STDP builder with Nengo.
"""

import sys

if "nengo" not in sys.modules and "IPython" not in sys.modules:
    # nengo imports IPython, nbformat and nbconvert (~0.25 s) only to tell whether it runs in a
    # notebook; IPython not imported yet means it does not, so nengo is imported with IPython
    # hidden (its plain progress bars), and IPython stays importable as usual afterwards
    sys.modules["IPython"] = None
    try:
        import nengo  # noqa: F401
    finally:
        del sys.modules["IPython"]

import warnings  # noqa: E402

# Nengo derives max_rates/intercepts from gain and bias for display only; the feature neurons
# (bias 0, gains <= 1, driven by weights) have none, which Nengo reports as a warning each build
warnings.filterwarnings("ignore", message="Non-finite values detected in `max_rates`", category=UserWarning)
warnings.filterwarnings("ignore", message="(divide by zero|invalid value) encountered in log1p",
                        category=RuntimeWarning, module="nengo.neurons")

from spikewatch.snn import builder, stdp  # noqa: E402, F401  (registers the builder)
from spikewatch.snn.stdp import STDP, stdp_step  # noqa: E402

__all__ = ["STDP", "stdp_step"]
