"""Property tests (hypothesis) of the readers' header handling, on real files with garbled headers.

For EDF and BDF header bytes, WFDB ``.hea`` text, text/CSV segments and MATLAB
files, whatever the header says:

* the only exception is a SpikewatchError (one line);
* no example takes longer than :data:`TIMEOUT_S` (SIGALRM stops a hang);
* memory stays bounded: the peak of traced allocations per example stays under
  :data:`MAX_ALLOC_MB`, a recording that opens claims no more samples than its
  bytes can hold, and the process's peak RSS grows by less than :data:`MAX_RSS_MB`
  over all examples. Headers claiming 10^12 samples fail in milliseconds.

The examples are derandomized (the same on every run) and bounded in number, so
the file runs in well under a minute.
"""

from __future__ import annotations

import resource
import signal
import tempfile
import time
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from spikewatch.errors import SpikewatchError
from spikewatch.io import read_recording

TIMEOUT_S = 10
MAX_ALLOC_MB = 64
MAX_RSS_MB = 300
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: values that have broken header parsers before: signs, exponents, NaN, huge, blank, padding
INTERESTING = ["0", "-1", "1", "-0", "99999999", "1e308", "1e-9", "nan", "inf", "-inf", "", " ", "1.5",
               "0x10", "１２", "1e3", "+5", "2147483648", "-99999999", "00000001"]


class Hang(Exception):
    pass


@contextmanager
def bounded(limit_s: float = TIMEOUT_S, max_mb: float = MAX_ALLOC_MB):
    """Fail if the block runs longer than ``limit_s`` or its traced allocations peak above ``max_mb``."""
    def alarm(signum, frame):
        raise Hang(f"no answer after {limit_s} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    tracemalloc.start()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < max_mb * 1e6, f"allocated {peak / 1e6:.0f} MB"


def read_everything(path: Path, size: int | None = None, **kwargs) -> None:
    """Open ``path`` and read its samples; only SpikewatchError may escape.

    ``size``: bytes holding the samples (default: the file's size).
    """
    size = max(path.stat().st_size if size is None else size, 1)
    try:
        rec = read_recording(path, **kwargs)
        n_ch = len(rec.ch_names)
        # a header's claim is checked against the bytes that hold it (8x slack for up-sampled channels)
        assert rec.n_times * n_ch <= 8 * size + 8 * 1024, (rec.n_times, n_ch, size)
        rec.get_data(picks=list(range(n_ch)))
        event("opened and read")  # --hypothesis-show-statistics: how deep the examples get
    except SpikewatchError as exc:
        assert "\n" not in str(exc) and str(exc).strip()
        event("refused")


@pytest.fixture(scope="module")
def rss_guard():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # Linux: kB
    assert grown_mb < MAX_RSS_MB, f"peak RSS grew by {grown_mb:.0f} MB"


@pytest.fixture(scope="module")
def work() -> Path:
    with tempfile.TemporaryDirectory(prefix="spikewatch-fuzz-") as d:
        yield Path(d)


def field_value(width: int):
    """Text or raw bytes for a fixed-width ASCII header field."""
    text = st.one_of(st.sampled_from(INTERESTING), st.from_regex(r"[-+ 0-9.eE]{0,8}", fullmatch=True),
                     st.text(max_size=width))
    return st.one_of(text.map(lambda s: s.encode("utf-8", "replace")[:width].ljust(width)),
                     st.binary(min_size=width, max_size=width))


# ------------------------------------------------------------------ EDF / BDF


def _edf_fields(ns: int) -> list[tuple[int, int]]:
    """(offset, width) of every header field of an EDF/BDF with ``ns`` signals."""
    fixed = [(0, 8), (8, 80), (88, 80), (168, 8), (176, 8), (184, 8), (192, 44), (236, 8), (244, 8), (252, 4)]
    out, off = list(fixed), 256
    for width in (16, 80, 8, 8, 8, 8, 8, 80, 8, 32):
        out += [(off + i * width, width) for i in range(ns)]
        off += width * ns
    return out


@pytest.fixture(scope="module")
def edf_bytes(data_dir) -> bytes:
    return (data_dir / "eeg-mne-testing" / "subsecond_starttime.edf").read_bytes()


@pytest.fixture(scope="module")
def bdf_bytes(data_dir) -> bytes:
    """The real BDF+ file cut to its first 2 data records (a complete small BDF)."""
    raw = (data_dir / "eeg-mne-testing" / "multiple_annotation_chans.bdf").read_bytes()
    ns = int(raw[252:256])
    per_record = 3 * sum(int(raw[256 + ns * 216 + 8 * i: 256 + ns * 216 + 8 * i + 8]) for i in range(ns))
    head = bytearray(raw[: 256 * (ns + 1)])
    head[236:244] = b"2".ljust(8)
    return bytes(head) + raw[256 * (ns + 1): 256 * (ns + 1) + 2 * per_record]


def _garble(data: bytes, fields, edits, cut) -> bytes:
    out = bytearray(data)
    for k, value in edits:
        off, width = fields[k % len(fields)]
        out[off: off + width] = value[:width].ljust(width)
    return bytes(out[:cut]) if cut is not None else bytes(out)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), field_value(80)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 17_000)))
def test_edf_header_fuzz(edf_bytes, work, rss_guard, edits, cut):
    path = work / "fuzz.edf"
    path.write_bytes(_garble(edf_bytes, _edf_fields(int(edf_bytes[252:256])), edits, cut))
    with bounded():
        read_everything(path)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), field_value(80)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 12_000)))
def test_bdf_header_fuzz(bdf_bytes, work, rss_guard, edits, cut):
    path = work / "fuzz.bdf"
    path.write_bytes(_garble(bdf_bytes, _edf_fields(int(bdf_bytes[252:256])), edits, cut))
    with bounded():
        read_everything(path)


def test_small_bdf_is_valid(bdf_bytes, work):
    """The fuzzed BDF is a real, readable one before it is garbled."""
    path = work / "ok.bdf"
    path.write_bytes(bdf_bytes)
    rec = read_recording(path)
    assert rec.n_times == 2 * 125 and len(rec.ch_names) == 19


# ------------------------------------------------------------------ WFDB


HEADER = "106 2 360 12000\n106.dat 212 200 11 1024 962 32452 0 MLII\n106.dat 212 200 11 1024 1063 6251 0 V1\n"
number = st.one_of(st.sampled_from(INTERESTING), st.integers(-10**13, 10**13).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr))
fmt = st.one_of(st.sampled_from(["8", "16", "24", "32", "61", "80", "160", "212", "310", "311", "508", "999", "x"]),
                number).flatmap(lambda f: st.sampled_from([f, f + "x2", f + "x0", f + ":5", f + "+9",
                                                           f + "+99999999999", f + "x99999"]))
gain = st.tuples(number, st.sampled_from(["", "(0)", "(-5)", "(x)"]), st.sampled_from(["", "/mV", "/uV", "/°C", "/"]))
token = st.one_of(number, st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6)
                  .filter(lambda s: not s.isspace()))


@st.composite
def wfdb_header(draw) -> str:
    n_sig = draw(st.sampled_from(["2", "1", "3", "0", "-2", "99999999", "2/3", "x"]))
    record = [draw(st.sampled_from(["106", "107", "106/2"])), n_sig]
    if draw(st.booleans()):
        record.append(draw(st.one_of(number, number.map(lambda f: f + "/2(0)"))))
        if draw(st.booleans()):
            record.append(draw(number))
            if draw(st.booleans()):
                record += [draw(st.sampled_from(["10:00:00", "25:99:99", "x"])),
                           draw(st.sampled_from(["01/01/2000", "99/99/9999", "x"]))]
    lines = [" ".join(record)]
    for _ in range(draw(st.integers(0, 3))):
        g, base, unit = draw(gain)
        fields = [draw(st.sampled_from(["106.dat", "missing.dat", "../106.dat", "106.hea"])), draw(fmt),
                  g + base + unit, draw(number), draw(number), draw(number), draw(number), draw(number),
                  draw(token)]
        lines.append(" ".join(fields[: draw(st.integers(1, len(fields)))]))
    for _ in range(draw(st.integers(0, 2))):
        lines.insert(draw(st.integers(0, len(lines))), "#" + draw(st.text(max_size=30)).replace("\n", " "))
    return "\n".join(lines) + "\n"


@st.composite
def mutated_header(draw) -> str:
    """The valid header with one to three tokens replaced, lines dropped or repeated (near misses)."""
    lines = [ln.split() for ln in HEADER.splitlines()]
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["token", "token", "token", "drop", "repeat"]))
        i = draw(st.integers(0, len(lines) - 1)) if lines else 0
        if not lines:
            break
        if what == "token":
            j = draw(st.integers(0, len(lines[i])))
            new = draw(st.one_of(number, fmt, token, gain.map("".join)))
            lines[i][j: j + 1] = [new]
        elif what == "drop":
            del lines[i]
        else:
            lines.insert(i, list(lines[i]))
    return "\n".join(" ".join(ln) for ln in lines) + "\n"


@pytest.fixture(scope="module")
def dat_bytes(mitdb) -> bytes:
    return (mitdb / "106.dat").read_bytes()[: 12000 * 3]


@FUZZ
@given(header=st.one_of(mutated_header(), wfdb_header()), dat_cut=st.sampled_from([36000, 36000, 35999, 3, 0]))
def test_wfdb_header_fuzz(dat_bytes, work, rss_guard, header, dat_cut):
    folder = work / "wfdb"
    folder.mkdir(exist_ok=True)
    for p in folder.iterdir():
        p.unlink()
    (folder / "106.hea").write_text(header, encoding="utf-8")
    (folder / "106.dat").write_bytes(dat_bytes[:dat_cut])
    with bounded():
        read_everything(folder / "106", size=dat_cut)


def test_wfdb_fuzz_base_header_is_valid(dat_bytes, work):
    folder = work / "wfdb-ok"
    folder.mkdir()
    (folder / "106.hea").write_text(HEADER)
    (folder / "106.dat").write_bytes(dat_bytes)
    assert read_recording(folder / "106").n_times == 12000


# ------------------------------------------------------------------ text, CSV and MATLAB segments


segment_token = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str),
                          st.sampled_from(INTERESTING), st.text(max_size=5))


@FUZZ
@given(tokens=st.lists(segment_token, max_size=40), sep=st.sampled_from([" ", "\n", ",", "\t", ";", "\r\n"]),
       ext=st.sampled_from([".txt", ".csv", ".asc"]), junk=st.binary(max_size=8))
def test_text_segment_fuzz(work, rss_guard, tokens, sep, ext, junk):
    path = work / f"seg{ext}"
    path.write_bytes(sep.join(tokens).encode("utf-8", "surrogatepass") + junk)
    with bounded():
        read_everything(path, sfreq=100)


@pytest.fixture(scope="module")
def mat_bytes(data_dir) -> bytes:
    return (data_dir / "eeg-delhi" / "ictal" / "ictal1.mat").read_bytes()


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 1550), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 1551)))
def test_mat_fuzz(mat_bytes, work, rss_guard, edits, cut):
    data = bytearray(mat_bytes)
    for pos, value in edits:
        data[pos % len(data)] = value
    path = work / "seg.mat"
    path.write_bytes(bytes(data[:cut] if cut is not None else data))
    with bounded():
        read_everything(path, sfreq=200)


# ------------------------------------------------------------------ claims of 10^12 samples fail fast


def _claims(edf_bytes: bytes, mat_bytes: bytes, dat_bytes: bytes, work: Path):
    ns = int(edf_bytes[252:256])
    sig0 = 256 + ns * (16 + 80 + 8 * 5 + 80)
    huge_edf = bytearray(edf_bytes)
    huge_edf[236:244] = b"99999999"  # records
    huge_edf[sig0: sig0 + 8] = b"99999999"  # samples per record: 10^16 samples in all
    (work / "huge.edf").write_bytes(bytes(huge_edf))
    (work / "huge").mkdir(exist_ok=True)
    (work / "huge" / "106.hea").write_text(HEADER.replace("106 2 360 12000", "106 2 360 1000000000000"))
    (work / "huge" / "106.dat").write_bytes(dat_bytes)
    # a MATLAB array whose dimensions claim 10^12 x 10^6 doubles (dims are int32 pairs after the name tag)
    mat = bytearray(mat_bytes)
    import zlib
    body = zlib.decompress(bytes(mat[136:])) if mat[128] == 15 else bytes(mat[128:])  # miCOMPRESSED element
    dims = body.index(b"\x05\x00\x00\x00\x08\x00\x00\x00") + 8  # miINT32 tag of the 2 dimensions
    body = body[:dims] + np.array([2**31 - 1, 2**31 - 1], "<i4").tobytes() + body[dims + 8:]
    (work / "huge.mat").write_bytes(bytes(mat[:128]) + body)
    return [(work / "huge.edf", {}), (work / "huge" / "106", {}), (work / "huge.mat", {"sfreq": 200})]


def test_claims_of_huge_recordings_fail_fast(edf_bytes, mat_bytes, dat_bytes, work):
    for path, kwargs in _claims(edf_bytes, mat_bytes, dat_bytes, work):
        t0 = time.perf_counter()
        with bounded(limit_s=5, max_mb=16), pytest.raises(SpikewatchError) as info:
            read_recording(path, **kwargs).get_data()
        assert time.perf_counter() - t0 < 2.0, path
        assert path.name in str(info.value) or "106" in str(info.value), str(info.value)
