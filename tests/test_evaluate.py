"""Scoring against the reference annotations, and the detector's quality on a fast subset.

The full evaluation over every development record is ``benchmarks/bench_detection.py``;
here CI checks the scoring rules on real MIT-BIH annotations, the ``evaluate`` command,
and the detector (STDP on, with the STDP-off ablation beside it) on the first 5 minutes
of four records with frequent ventricular beats.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from spikewatch import evaluate as ev
from spikewatch.cli import main
from spikewatch.io import read_recording
from spikewatch.io.writers import safe_id
from spikewatch.jobs import resolve_job, run_job

SUBSET = ["106", "213", "223", "228"]
STOP = 300.0


@pytest.fixture(scope="module")
def ref106(mitdb):
    rec = read_recording(mitdb / "106")
    t, c = ev.reference_beats(rec.annotations)
    return t, c


def test_reference_beats_use_aami_classes(ref106):
    t, c = ref106
    assert len(t) > 2000 and np.all(np.diff(t) > 0)
    assert set(np.unique(c)) <= set("NSVFQ")
    assert (c == "V").sum() > 500 and (c == "N").sum() > 1400  # record 106: frequent PVCs


def test_events_on_every_v_beat_score_perfectly(ref106):
    t, c = ref106
    v = t[c == "V"]
    events = [(x - 0.1, 0.25) for x in v]
    sc = ev.score_ecg("106", events, t, np.where(c == "V", 1.0, 0.0), t, c, (0.0, 1805.0), paced=False)
    f = sc.figures()
    assert f["V_Se"] == 100.0 and f["event_PPV"] == 100.0
    assert f["N_flagged_pct"] < 5.0  # only N beats within 0.15 s of an event window
    assert f["beat_AUC_V_vs_N"] == 1.0


def test_events_on_normal_beats_are_false(ref106):
    t, c = ref106
    n = t[c == "N"][::10]
    sc = ev.score_ecg("106", [(x - 0.1, 0.25) for x in n], t, np.zeros(len(t)), t, c, (0.0, 1805.0), False)
    f = sc.figures()
    assert f["event_PPV"] < 10.0 and f["V_Se"] < 10.0
    assert f["false_events_per_h"] > 100
    assert f["beat_AUC_V_vs_N"] == 0.5  # constant score: ties


def test_span_limits_the_reference_beats(ref106):
    t, c = ref106
    sc = ev.score_ecg("106", [], t, np.zeros(len(t)), t, c, (0.0, 60.0), False)
    assert sum(sc.beats.values()) == int((t < 60.0).sum())
    assert sc.figures()["event_PPV"] is None  # no event: PPV undefined, not 0


@pytest.fixture(scope="module")
def subset_reports(mitdb, tmp_path_factory):
    """The detector on the first 5 minutes of the subset, STDP on and off (same network and seed)."""
    out = tmp_path_factory.mktemp("detect")
    scores = {}
    for learning in (True, False):
        folder = out / ("on" if learning else "off")
        scores[learning] = []
        for r in SUBSET:
            rec, cfg = resolve_job(mitdb / r, None, stdp__enabled=learning, report__html=False,
                                   report__edf_export=False)
            run_job(rec, cfg, folder, stop=STOP)
            scores[learning].append(ev.evaluate_ecg_report(rec, folder / safe_id(rec.record_id)))
    return out, scores


def test_detection_quality_on_the_subset(subset_reports):
    """STDP on: most PVCs flagged in short, precise events; the learning is what makes it work."""
    _, scores = subset_reports
    on, off = ev.gross(scores[True]), ev.gross(scores[False])
    assert on["V_Se"] >= 85.0, on
    assert on["event_PPV"] >= 80.0, on
    assert on["N_flagged_pct"] <= 8.0, on
    auc_on = np.median([s.auc_v for s in scores[True]])
    auc_off = np.median([s.auc_v for s in scores[False]])
    assert auc_on >= 0.9 and auc_off <= auc_on - 0.3, (auc_on, auc_off)
    # frozen random templates match no beat: nearly everything is flagged
    assert off["N_flagged_pct"] > 5 * on["N_flagged_pct"], (on, off)


def test_evaluate_command(subset_reports, mitdb, tmp_path, capsys):
    out, scores = subset_reports
    js = tmp_path / "figures.json"
    code = main(["evaluate", *[str(mitdb / r) for r in SUBSET], "--reports", str(out / "on"), "--json", str(js)])
    assert code == 0
    printed = capsys.readouterr().out
    assert all(r in printed for r in SUBSET)
    data = json.loads(js.read_text())
    gross = ev.gross(scores[True])
    text = json.dumps(data)
    assert str(gross["V_Se"]) in text and str(gross["event_PPV"]) in text


def test_evaluate_without_report_is_a_clear_error(mitdb, tmp_path, capsys):
    code = main(["evaluate", str(mitdb / "106"), "--reports", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "106" in err[0]
