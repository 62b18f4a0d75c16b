"""Reading recordings: WFDB, every format MNE reads, and headerless text/MATLAB segments.

Everything is exposed as a :class:`Recording` wrapping a (lazy where
possible) :class:`mne.io.BaseRaw` in volts plus the reference annotations.
Bad input raises :class:`spikewatch.errors.RecordingError` with a one-line
message naming the file.
"""

from spikewatch.io.channels import classify_channel
from spikewatch.io.readers import SUPPORTED_EXTENSIONS, list_recordings, read_recording
from spikewatch.io.recording import Recording

__all__ = ["SUPPORTED_EXTENSIONS", "Recording", "classify_channel", "list_recordings", "read_recording"]
