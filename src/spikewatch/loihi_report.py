"""What the detector costs on Loihi: chip resources, quantisation, traffic, energy.

Everything is read from nengo-loihi's own build of the chip form of the network
(``sim.model.blocks``: compartments, synapses, axons after discretisation) and
from its greedy core allocator (:class:`nengo_loihi.hardware.allocators.Greedy`,
which needs no hardware), plus the spike and synaptic-operation counts of an
actual run.

Energy is an **estimate, not a measurement**: operation counts of the run times
the per-operation energies that Davies et al. publish for Loihi, which are
themselves pre-silicon (SDF/SPICE) simulation figures:

    M. Davies et al., "Loihi: A Neuromorphic Manycore Processor with On-Chip
    Learning", IEEE Micro 38(1):82-99, 2018, doi:10.1109/MM.2018.112130359,
    Table 2 ("Loihi pre-silicon performance and energy measurements"):
    energy per synaptic spike op (min) 23.6 pJ; per synaptic update (pairwise
    STDP) 120 pJ; per neuron update (active / inactive) 81 pJ / 52 pJ;
    within-tile spike energy 1.7 pJ; per tile hop (E-W / N-S) 3.0 / 4.0 pJ.

The synaptic-update (learning) figure is not used: learning is off on the chip.
Not included: static (leakage) power, the host CPU, host<->chip I/O and the
mesh hops from the chip's I/O interface to the core.
"""

from __future__ import annotations

import warnings

import numpy as np

#: Davies et al. 2018, IEEE Micro 38(1), Table 2 (pre-silicon simulation), in joules
E_SYNAPTIC_OP = 23.6e-12  # energy per synaptic spike op (min)
E_NEURON_ACTIVE = 81e-12  # energy per neuron update, active
E_NEURON_INACTIVE = 52e-12  # energy per neuron update, inactive
E_SPIKE_WITHIN_TILE = 1.7e-12  # within-tile spike energy
ENERGY_SOURCE = ("Davies et al., Loihi: A Neuromorphic Manycore Processor with On-Chip Learning, "
                 "IEEE Micro 38(1):82-99, 2018, Table 2 (pre-silicon simulation)")

OFF_CHIP = [
    {"part": "reading, band-pass filtering, send-on-delta encoding",
     "why": "the recording arrives on the host; the encoder produces the spikes the chip consumes"},
    {"part": "R-peak detection, beat/gate/rhythm trains and the delay taps (the 'source' Node)",
     "why": "a Python function of the data stream; nengo-loihi runs no host Node on the chip and does "
            "not expose Loihi's synaptic delays, so each delayed copy is its own input axon"},
    {"part": "filtered input u and the anomaly score",
     "why": "cosines of the input against the weight matrix: dense arithmetic, not a spiking computation"},
    {"part": "probes (feature-neuron spikes back to the host), beat scores, robust z, events, report",
     "why": "the score needs the network activity on the host"},
]


def _tau(decay: np.ndarray, dt: float, offset: int = 0) -> float:
    """Time constant (s) of a discretised 12-bit decay (``offset`` added back by the chip)."""
    frac = (float(np.asarray(decay).ravel()[0]) + offset) / 4096.0
    return float(-dt / np.log1p(-frac)) if 0 < frac < 1 else (0.0 if frac >= 1 else float("inf"))


def _block(model, ens):
    """The Loihi block of an ensemble (nengo-loihi keeps a list once blocks are split)."""
    blocks = model.objs[ens]["in"]
    blocks = blocks if isinstance(blocks, list) else [blocks]
    return blocks[0]


def resources(sim, chip) -> dict:
    """Chip resources used by the built network.

    Parameters
    ----------
    sim : nengo_loihi.Simulator
        Built on the chip form.
    chip : ChipNetwork
        The chip form (for the input axons).

    Returns
    -------
    dict
        ``cores`` (per core: compartments, input axons, output axons, synapses,
        synapse memory in bytes and as a fraction of the 128 KB), ``n_cores``,
        ``n_chips``, ``fits_one_chip``, ``host_input_axons``.
    """
    from nengo_loihi.block import MAX_COMPARTMENTS, MAX_IN_AXONS, MAX_OUT_AXONS, MAX_SYNAPSE_BITS
    from nengo_loihi.hardware.allocators import Greedy

    from spikewatch.snn.backends.loihi import CORES_PER_CHIP

    model = sim.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        board = Greedy(cores_per_chip=CORES_PER_CHIP)(model, n_chips=max(1, -(-len(model.blocks) // CORES_PER_CHIP)))
    cores = []
    for ci, chip_obj in enumerate(board.chips):
        for ki, core in enumerate(chip_obj.cores):
            blocks = core.blocks
            comp = sum(b.compartment.n_compartments for b in blocks)
            in_ax = sum(s.n_axons for b in blocks for s in b.synapses)
            out_ax = sum(a.axon_slots() for b in blocks for a in b.axons)
            bits = sum(s.bits() for b in blocks for s in b.synapses)
            cores.append({
                "chip": ci, "core": ki, "blocks": [str(b.label) for b in blocks],
                "compartments": comp, "compartments_max": MAX_COMPARTMENTS,
                "input_axons": in_ax, "input_axons_max": MAX_IN_AXONS,
                "output_axons": out_ax, "output_axons_max": MAX_OUT_AXONS,
                "synapses": int(core.n_synapses),
                "synapse_memory_bytes": bits // 8, "synapse_memory_max_bytes": MAX_SYNAPSE_BITS // 8,
                "synapse_memory_fraction": round(bits / MAX_SYNAPSE_BITS, 5),
            })
    return {
        "n_chips": board.n_chips,
        "n_cores": sum(board.n_cores_per_chip),
        "cores_per_chip": CORES_PER_CHIP,
        "fits_one_chip": board.n_chips == 1 and board.n_cores_per_chip[0] <= CORES_PER_CHIP,
        "cores": cores,
        "host_input_axons": chip.n_input_axons,
        "count_bits": chip.count_bits,
    }


def quantisation(sim, chip, dt: float) -> dict:
    """What discretisation changes: weights per synapse group, decays, refractory, threshold.

    Weight error is the chip's integer weight against the exact float weight
    scaled by the block's weight scale (``w_scale * 2**(6 + w_exp)``).

    Returns
    -------
    dict
        ``synapses``: per chip connection the weight exponent, distinct
        levels, mean |relative error|, RMS error relative to its largest
        weight; ``neurons``: effective synapse and membrane time constants,
        refractory steps, threshold in chip units.
    """
    model = sim.model
    out = {"synapses": [], "neurons": []}
    conns = ([(c, "units" if b is None else f"bit {b}") for c, b, _ in chip.inputs]
             + [(c, "recurrent") for c in chip.recurrent])
    for conn, kind in conns:
        syn = model.objs[conn]["weights"]
        block = _block(model, conn.post_obj.ensemble)
        info = block.compartment.discretize_info
        gain = np.asarray(model.params[conn.post_obj.ensemble].gain, dtype=np.float64)
        ideal = (np.asarray(conn.transform.init, dtype=np.float64) / dt * gain[:, None]).T
        ideal = ideal * info["w_scale"] * 2.0 ** (6 + info["w_exp"])
        got = np.vstack([np.asarray(w, dtype=np.float64).reshape(1, -1) for w in syn.weights])
        nz = np.abs(ideal) > 0
        top = float(np.abs(ideal).max()) if ideal.size else 0.0
        out["synapses"].append({
            "connection": conn.label, "kind": kind,
            "weight_exp": int(syn.synapse_cfg.weight_exp),
            "levels": int(len(np.unique(got[nz]))) if nz.any() else 0,
            "rel_error_l2": float(np.linalg.norm(got - ideal) / np.linalg.norm(ideal)) if nz.any() else 0.0,
            "rel_error_mean_abs": float(np.mean(np.abs(got[nz] - ideal[nz]) / np.abs(ideal[nz]))) if nz.any() else 0.0,
            "rel_error_max_abs": float(np.max(np.abs(got[nz] - ideal[nz]) / np.abs(ideal[nz]))) if nz.any() else 0.0,
            "rms_error_of_max": float(np.sqrt(np.mean((got - ideal) ** 2)) / top) if top > 0 else 0.0,
            "zeroed": int(np.sum(nz & (got == 0))),
        })
    for ens, chip_ens in chip.ensembles.items():
        block = _block(model, chip_ens)
        comp = block.compartment
        nt = ens.neuron_type
        out["neurons"].append({
            "ensemble": ens.label,
            "synapse_tau_s": {"chip": round(_tau(comp.decay_u, dt, offset=1), 6)},
            "tau_rc_s": {"reference": getattr(nt, "tau_rc", None), "chip": round(_tau(comp.decay_v, dt), 6)},
            "refractory_steps": {"reference": round(getattr(nt, "tau_ref", 0.0) / dt, 4),
                                 "chip": int(np.asarray(comp.refract_delay).ravel()[0]) - 1},
            "threshold_chip_units": int(np.asarray(comp.vth).ravel()[0]),
            "weight_exp": int(comp.discretize_info["w_exp"]),
        })
    return out


def energy(counters: dict, n_neurons: int, sfreq: float, n_beats: int | None = None) -> dict:
    """Estimated chip energy of a run, per hour of signal and per beat.

    Parameters
    ----------
    counters : dict
        ``steps``, ``input_spikes``, ``neuron_spikes``, ``synaptic_ops``, ``cpu_s``.
    n_neurons : int
        Compartments updated every step.
    sfreq : float
        Steps per second of signal.
    n_beats : int, optional
        Beats analysed.

    Returns
    -------
    dict
        Counts per hour, energy per hour (J) and per beat (J) with the parts,
        the host CPU seconds the emulator needed per hour of signal, the
        per-operation figures and their source, and what is excluded.
    """
    steps = int(counters["steps"])
    hours = steps / sfreq / 3600.0 if steps else 0.0
    updates = steps * n_neurons
    active = int(counters["neuron_spikes"])
    messages = int(counters["input_spikes"]) + active
    parts = {
        "synaptic_ops": counters["synaptic_ops"] * E_SYNAPTIC_OP,
        "neuron_updates": active * E_NEURON_ACTIVE + (updates - active) * E_NEURON_INACTIVE,
        "spike_messages": messages * E_SPIKE_WITHIN_TILE,
    }
    total = sum(parts.values())
    per_h = (lambda x: x / hours) if hours > 0 else (lambda x: 0.0)
    return {
        "estimate": True,
        "note": "estimate from operation counts x published per-operation energies (pre-silicon "
                "simulation), not a measurement; excludes static power, host CPU, host<->chip I/O",
        "per_hour": {
            "synaptic_ops": per_h(counters["synaptic_ops"]), "neuron_updates": per_h(updates),
            "neuron_spikes": per_h(active), "input_spikes": per_h(counters["input_spikes"]),
            "energy_J": per_h(total), "parts_J": {k: per_h(v) for k, v in parts.items()},
        },
        "energy_per_beat_J": (total / n_beats) if n_beats else None,
        "host_cpu_s_per_hour_emulated": per_h(counters["cpu_s"]),
        "pj_per_op": {"synaptic_spike_op": E_SYNAPTIC_OP * 1e12, "neuron_update_active": E_NEURON_ACTIVE * 1e12,
                      "neuron_update_inactive": E_NEURON_INACTIVE * 1e12,
                      "within_tile_spike": E_SPIKE_WITHIN_TILE * 1e12},
        "source": ENERGY_SOURCE,
        "assumptions": "neuron update 'active' = the compartment spiked that step; every spike is one "
                       "within-tile message; dense synapse lists (zero weights are stored and read)",
    }


def traffic(counters: dict, sfreq: float, n_neurons: int) -> dict:
    """Host<->chip traffic of a run, per second of signal."""
    seconds = counters["steps"] / sfreq if counters["steps"] else 0.0
    rate = (lambda x: x / seconds) if seconds > 0 else (lambda x: 0.0)
    return {
        "host_to_chip_spikes_per_s": rate(counters["input_spikes"]),
        "chip_to_host_spikes_per_s": rate(counters["neuron_spikes"]),
        "chip_to_host_probe_bits_per_step": n_neurons,
        "clipped_events": int(counters["clipped_events"]),
        "off_chip": OFF_CHIP,
    }


def runner_report(runner, n_beats: int | None = None) -> dict:
    """Everything :class:`~spikewatch.snn.backends.loihi.LoihiRunner` reports about a run.

    Returns
    -------
    dict
        ``target``, ``resources``, ``quantisation``, ``traffic``, ``energy``,
        ``mapping_notes`` (what maps only approximately), build and run times.
    """
    net = runner.net
    c = runner.counters
    discrete = runner.target != "simreal"  # simreal: floating point, no chip configuration to report
    return {
        "target": runner.target,
        "resources": resources(runner.sim, runner.chip) if discrete else None,
        "quantisation": quantisation(runner.sim, runner.chip, net.dt) if discrete else None,
        "traffic": traffic(c, net.sfreq, net.net.n_neurons),
        "energy": energy(c, net.net.n_neurons, net.sfreq, n_beats),
        "mapping_notes": list(runner.chip.notes) + (
            [f"{c['overflows']} synaptic-accumulator overflow warnings from the chip model: results unreliable"]
            if c["overflows"] else []),
        "overflows": int(c["overflows"]),
        "build_s": round(runner.build_s, 4),
        "run_wall_s": round(c["wall_s"], 4),
        "steps_per_s": round(c["steps"] / c["wall_s"], 1) if c["wall_s"] > 0 else None,
    }


def resource_rows(report: dict) -> list[tuple[str, str]]:
    """Human-readable ``(label, value)`` rows of a runner report's resources and traffic."""
    r = report["resources"]
    rows = [("chips / cores", f"{r['n_chips']} chip, {r['n_cores']} of {r['cores_per_chip']} cores "
                              f"({'fits one chip' if r['fits_one_chip'] else 'does NOT fit one chip'})")]
    for core in r["cores"]:
        rows.append((f"core {core['chip']}.{core['core']}",
                     f"{core['compartments']}/{core['compartments_max']} compartments, "
                     f"{core['input_axons']}/{core['input_axons_max']} input axons, "
                     f"{core['synapses']} synapses, {core['synapse_memory_bytes']} B of "
                     f"{core['synapse_memory_max_bytes'] // 1024} KB synapse memory "
                     f"({100 * core['synapse_memory_fraction']:.1f} %)"))
    t = report.get("traffic")
    rows.append(("host -> chip", f"{r['host_input_axons']} input axons (up to {r['count_bits']} per source line)"
                 + (f", {t['host_to_chip_spikes_per_s']:.0f} spikes/s" if t and t["host_to_chip_spikes_per_s"] else "")))
    if t:
        rows.append(("chip -> host", f"feature spikes ({report['resources']['cores'][0]['compartments']} "
                                     f"probe bits/step)" + (f", {t['chip_to_host_spikes_per_s']:.1f} spikes/s"
                                                            if t["chip_to_host_spikes_per_s"] else "")))
    for q in (report.get("quantisation") or {}).get("synapses", []):
        label = q["connection"]
        if "[" in label and not label.endswith("[1/" + label.rsplit("/", 1)[-1]):
            continue  # parallel groups of a split connection are identical: show the first
        rows.append((f"weights {label}", f"exp {q['weight_exp']}, {q['levels']} levels, relative error "
                                         f"{100 * q['rel_error_l2']:.1f} % (L2), {q['zeroed']} rounded to 0"))
    for note in report.get("mapping_notes", []):
        rows.append(("approximation", note))
    return rows


def chip_report(bundle) -> dict:
    """Resources and quantisation of a bundle's frozen network, from a nengo-loihi build.

    The network is built for the emulator (the build, discretisation and core
    allocation are those a board would get) and not run, so traffic and energy
    are empty; ``analyze --backend loihi`` measures them on a recording.

    Parameters
    ----------
    bundle : spikewatch.bundle.Bundle

    Returns
    -------
    dict
        As :func:`runner_report`.
    """
    from spikewatch.snn.backends.loihi import LoihiRunner
    from spikewatch.snn.network import DetectorNetwork

    cfg = bundle.config
    net = DetectorNetwork(bundle.n_channels, bundle.sfreq, cfg.network,
                          cfg.stdp.model_copy(update={"enabled": False}), seed=cfg.seed,
                          weights=bundle.weights, weight_scale=bundle.weight_scale)
    runner = LoihiRunner(net, 1, target="sim", count_bits=cfg.backend.count_bits)
    try:
        return runner_report(runner)
    finally:
        runner.close()
