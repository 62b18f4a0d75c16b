"""Spiking networks: learning rules and their Nengo builders.

Importing this package registers the STDP builder with Nengo.
"""

from spikewatch.snn import builder, stdp  # noqa: F401  (registers the builder)
from spikewatch.snn.stdp import STDP, stdp_step

__all__ = ["STDP", "stdp_step"]
