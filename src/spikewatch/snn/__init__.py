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

from spikewatch.snn import builder, stdp  # noqa: E402, F401  (registers the builder)
from spikewatch.snn.stdp import STDP, stdp_step  # noqa: E402

__all__ = ["STDP", "stdp_step"]
