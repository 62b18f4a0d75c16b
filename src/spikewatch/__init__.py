"""spikewatch: neuromorphic anomaly detection on EEG and ECG recordings.

recording -> delta spikes -> STDP-learning Nengo network -> anomaly score -> events -> report.
"""

__version__ = "0.1.0"
