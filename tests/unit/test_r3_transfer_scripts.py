"""data/stilbene/r3: the transfer queue's ordering (select_transfer.py) and the level
comparison (compare_levels.py), on synthetic points and labels (energies eV, forces eV/A)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import load_script

select = load_script("data/stilbene/r3/select_transfer.py")
compare = load_script("data/stilbene/r3/compare_levels.py")


def test_farthest_point_order_takes_the_farthest_remaining_point_each_time():
    """On 0, 1, ..., 10 on a line from 0: 10 (farthest), then 5 (midway), then 2 or 3 and 7
    or 8; each pick maximises the distance to those already chosen, none repeats."""
    x = np.arange(11.0)[:, None]
    order = select.farthest_point_order(x, 0, 5)
    assert order[:3] == [0, 10, 5]
    assert set(order[3:]) <= {2, 3, 7, 8} and len(set(order)) == 5
    for k in range(1, len(order)):
        nearest = np.min(np.abs(x[:, 0][:, None] - x[order[:k], 0][None, :]), axis=1)
        assert nearest[order[k]] == nearest.max()


def test_interleave_alternates_farthest_and_random_picks_without_repeats():
    """Even positions are the farthest-point picks in order; odd ones are distinct random
    indices not among them; the length is n."""
    fps = [0, 9, 4]
    order = select.interleave(fps, n_total=10, n=6, seed=0)
    assert len(order) == 6 and len(set(order)) == 6
    assert order[0::2] == fps
    assert not set(order[1::2]) & set(fps)
    assert all(0 <= k < 10 for k in order)


def test_standardise_gives_zero_mean_and_unit_total_variance():
    rng = np.random.default_rng(1)
    block = rng.normal(3.0, [1.0, 5.0, 0.1], size=(200, 3))
    block[:, 2] = 7.0  # a constant column is left at zero, not divided by zero
    z = select.standardise(block)
    assert np.allclose(z.mean(axis=0), 0.0, atol=1e-12)
    assert np.allclose(z[:, :2].var(axis=0), 1.0 / 3.0)
    assert np.all(z[:, 2] == 0.0)


def test_level_differences_ignore_a_constant_energy_offset():
    """Level b is level a shifted by -170 eV with S1 raised by 0.1 eV on two of four
    structures, and forces off by 0.2 eV/A on state 0 only: relative S0 energies agree
    exactly, S1 differs by the spread of the raise (0.05 eV mean), forces 0.2 / 0 eV/A, the gap
    by 0.05 eV on average (b larger), 0.1 below 1 eV where only the raised ones are."""
    rng = np.random.default_rng(2)
    e_a = rng.normal(0.0, 1.0, size=(4, 2)) + np.array([0.0, 3.0])
    e_b = e_a - 170.0
    e_b[:2, 1] += 0.1
    f_a = rng.normal(size=(4, 2, 5, 3))
    f_b = f_a.copy()
    f_b[:, 0] += 0.2
    gap_ref = np.array([0.5, 0.5, 2.0, 2.0])
    out = compare.level_differences(e_b, e_a, f_b, f_a, gap_ref)
    assert out["relative_energy_mad_eV"][0] == pytest.approx(0.0, abs=1e-9)
    assert out["relative_energy_mad_eV"][1] == pytest.approx(0.05)
    assert out["force_mad_eV_per_A"] == pytest.approx([0.2, 0.0])
    assert out["gap_mean_difference_eV"] == pytest.approx(0.05)
    assert out["n_gap_below_1eV"] == 2
    assert out["gap_mad_below_1eV_eV"] == pytest.approx(0.1)


worst = load_script("data/stilbene/r3/worst_structures.py")


def test_structure_errors_read_the_dataset_force_layout():
    """Labels' forces are (N, S, 3), predictions (S, N, 3): a prediction off by 0.3 eV/A in x
    on one atom of S1 only gives S0 MAE 0, S1 MAE 0.3 / (3 N), largest atom error 0.3; energy
    errors are prediction minus label; the reference gap is E1 - E0 of the label; per atom,
    the S1 error is 0.3 / 3 on atom 2 alone."""
    rng = np.random.default_rng(3)
    ref_forces = rng.normal(size=(4, 2, 3))
    prediction = np.transpose(ref_forces, (1, 0, 2)).copy()
    prediction[1, 2, 0] += 0.3
    out = worst.structure_errors(np.array([1.0, 4.5]), prediction, np.array([1.2, 4.0]), ref_forces)
    assert out["force_mae"] == pytest.approx([0.0, 0.3 / 12])
    assert np.asarray(out["atom_force_mae"]) == pytest.approx(np.array([[0.0] * 4, [0, 0, 0.1, 0]]))
    assert out["max_atom_force_error"] == pytest.approx(0.3)
    assert out["energy_error"] == pytest.approx([-0.2, 0.5])
    assert out["reference_gap"] == pytest.approx(2.8)


def test_atom_summary_averages_each_atom_over_structures_and_names_the_worst():
    """Two structures of H2C (Z 1, 1, 6): per-atom S0/S1 MAEs (0.1, 0.1, 0.4)/(0.2, 0, 0.6)
    and (0.3, 0.1, 0.2)/(0.2, 0, 0.2) average to (0.2, 0.1, 0.3)/(0.2, 0, 0.4): hydrogen
    0.15/0.1, carbon 0.3/0.4, and atom 2 is the worst, then atom 0."""
    rows = [
        {"numbers": [1, 1, 6], "atom_force_mae": [[0.1, 0.1, 0.4], [0.2, 0.0, 0.6]]},
        {"numbers": [1, 1, 6], "atom_force_mae": [[0.3, 0.1, 0.2], [0.2, 0.0, 0.2]]},
    ]
    lines = worst.atom_summary(rows, worst=2)
    assert lines[0] == "element Z=1: force MAE 0.150 / 0.100"
    assert lines[1] == "element Z=6: force MAE 0.300 / 0.400"
    assert lines[2] == "worst atoms (index Z: S0 / S1): 2 6: 0.300/0.400, 0 1: 0.200/0.200"


def test_rank_removes_each_state_offset_and_puts_the_worst_forces_first():
    """Energy errors (1, -2), (1.3, -2) and (0.7, -1.4) eV: each state's mean, (1, -1.8), is
    removed (the third becomes (-0.3, 0.4)), the gap error is S1 - S0 of the centred errors
    (0.7), and the rows are ordered by the larger of their two force MAEs."""
    rows = [
        {"force_mae": [0.1, 0.2], "energy_error": [1.0, -2.0]},
        {"force_mae": [0.5, 0.1], "energy_error": [1.3, -2.0]},
        {"force_mae": [0.1, 0.3], "energy_error": [0.7, -1.4]},
    ]
    ranked = worst.rank(rows)
    assert [r["force_mae"] for r in ranked] == [[0.5, 0.1], [0.1, 0.3], [0.1, 0.2]]
    assert np.mean([r["energy_error"] for r in ranked], axis=0) == pytest.approx([0.0, 0.0])
    by_force = {tuple(r["force_mae"]): r for r in ranked}
    assert by_force[(0.1, 0.3)]["energy_error"] == pytest.approx([-0.3, 0.4])
    assert by_force[(0.1, 0.3)]["gap_error"] == pytest.approx(0.7)


seam = load_script("data/stilbene/r3/seam_frames.py")


def test_seam1_queue_is_reproduced_exactly(tmp_path):
    """A labelling queue resumes by row: the committed seam1.xyz must be what the script
    writes with its defaults (positions to the written precision, same order and info)."""
    from ase.io import read

    committed = read("data/stilbene/r3/seam1.xyz", index=":")
    again = seam.frames(sigma=0.02, n_jitter=4, seed=0)
    assert len(again) == len(committed) == 29
    for a, b in zip(again, committed, strict=True):
        assert np.allclose(a.positions, b.positions, atol=1e-7)
        assert a.info["kind"] == b.info["kind"]


def test_seam2_frames_lie_at_their_targets():
    """seam2 (sigma 0.005 A): 6 frames near the crossing and 3 near the cis minimum, each within
    0.03 A RMS of its landmark; planar path frames at 15/45/75/100 degrees (dihedral within 2
    degrees, C1 angle sum above 359), one at 110 degrees with C1 at 345; the crossing untwisted
    to 103/93/83 degrees with C1 still pyramidal (angle sum below 310)."""
    from ase.io import read

    out = seam.seam2_frames(sigma=0.005, seed=0)
    kinds = [a.info["kind"] for a in out]
    assert kinds == ["near"] * 9 + ["path"] * 5 + ["untwist"] * 3
    landmarks = {"crossing": read(seam.CROSSING).positions, "cis": read(seam.CIS).positions}
    for a in out[:9]:
        rms = np.sqrt(np.mean(np.sum((a.positions - landmarks[a.info["near"]]) ** 2, axis=1)))
        assert rms < 0.03
    for a, target in zip(out[9:13], (15.0, 45.0, 75.0, 100.0), strict=True):
        assert abs(a.info["dihedral"] - target) < 2.0 and a.info["angle_sum_C1"] > 359.0
    assert abs(out[13].info["angle_sum_C1"] - 345.0) < 2.0
    for a, target in zip(out[14:], (103.0, 93.0, 83.0), strict=True):
        assert abs(a.info["dihedral"] - target) < 2.0 and a.info["angle_sum_C1"] < 310.0


crossing = load_script("data/stilbene/r3/crossing_region_frames.py")


def _ethylene_core(twist_deg: float, bend: float) -> np.ndarray:
    """26 atoms: C0 at the origin, C13 at +x, C0's neighbours 1 and 2 in the xy plane, C13's 14
    and 15 rotated about x by ``twist_deg`` and moved by ``bend`` A towards C0 along x, which
    pyramidalises C13 (angle sum 360 degrees at 0, 286 at 0.9) without changing the dihedral."""
    p = np.zeros((26, 3))
    p[13] = [1.34, 0.0, 0.0]
    p[1] = [-0.6, 0.9, 0.0]
    p[2] = [-0.6, -0.9, 0.0]
    c, s = np.cos(np.radians(twist_deg)), np.sin(np.radians(twist_deg))
    for atom, y in ((14, 0.9), (15, -0.9)):
        p[atom] = [1.94 - bend, y * c, y * s]
    p[3:13] = np.arange(10)[:, None] * [0.0, 0.0, 10.0] + [0.0, 0.0, 20.0]  # far away
    p[16:26] = np.arange(10)[:, None] * [0.0, 0.0, 10.0] + [0.0, 0.0, 200.0]
    return p


def test_crossing_region_frames_pick_the_smallest_gap_inside_the_region(tmp_path):
    """Frames (twist, bend, gap): (10, 0.9, 0.1) is untwisted, (120, 0, 0.2) planar (angle sum
    360), (120, 0.9, 0.9) and (110, 0.9, 0.6) inside (dihedral 95-135, angle sum 286 below
    320), 10 fs apart: with one frame per trajectory the
    inside frame of smaller gap (0.6 eV, frame 3) is taken, with two both, smaller gap first;
    the small gaps outside the region are never taken."""
    import h5py

    specs = [(10, 0.9, 0.1), (120, 0.0, 0.2), (120, 0.9, 0.9), (110, 0.9, 0.6)]
    run = tmp_path / "run"
    run.mkdir()
    with h5py.File(run / "traj_00000.h5md", "w") as f:
        positions = np.stack([_ethylene_core(t, z) for t, z, _ in specs])
        f["particles/molecule/position/value"] = positions
        f["particles/molecule/position/value"].attrs["unit"] = "Angstrom"
        f["particles/molecule/position/time"] = 10.0 * np.arange(len(specs))
        f["particles/molecule/position/time"].attrs["unit"] = "fs"
        f["particles/molecule/species"] = np.array([6] + [1] * 12 + [6] + [1] * 12)
        f["observables/energies/value"] = np.array([[0.0, g] for _, _, g in specs])
    one = crossing.frames([str(run)], (95.0, 135.0), 320.0, 1)
    assert [a.info["frame"] for a in one] == [3]
    assert one[0].info["model_gap_ev"] == pytest.approx(0.6)
    assert one[0].info["dihedral_deg"] == pytest.approx(110.0)
    assert one[0].info["angle_sum_deg"] == pytest.approx(286.3, abs=0.1)
    two = crossing.frames([str(run)], (95.0, 135.0), 320.0, 2)
    assert [a.info["frame"] for a in two] == [3, 2]


trap = load_script("data/stilbene/r3/s1_trap.py")


class _DoubleWell:
    """Two states on three atoms, analytic (eV, Angstrom): S1 = (x0^2 - 1)^2 + y0^2 + z0^2 +
    sum over atoms 1 and 2 of |r - r_ref|^2, a double well in atom 0's x with minima at x0 = +-1
    and a saddle of height 1 eV at x0 = 0; S0 = S1 - 2. Sets ``energies`` and
    ``state_forces`` as the calculators that ``OnState`` wraps do."""

    REF = np.array([[0.0, 3.0, 0.0], [0.0, -3.0, 0.0]])

    def __init__(self):
        self.results = {}

    def calculate(self, atoms, properties=None, system_changes=None):
        p = atoms.positions
        x, y, z = p[0]
        e1 = (x**2 - 1.0) ** 2 + y**2 + z**2 + np.sum((p[1:] - self.REF) ** 2)
        grad = np.zeros_like(p)
        grad[0] = [4.0 * x * (x**2 - 1.0), 2.0 * y, 2.0 * z]
        grad[1:] = 2.0 * (p[1:] - self.REF)
        self.results = {
            "energies": np.array([e1 - 2.0, e1]),
            "state_forces": np.stack([-grad, -grad]),
        }


def _three_atoms(x0: float, y0: float = 0.0):
    from ase import Atoms

    return Atoms("CHH", positions=[[x0, y0, 0.0], *_DoubleWell.REF])


def test_relax_finds_the_minimum_of_the_chosen_state():
    """From x0 = 0.5, y0 = 0.3 on S1 of the double well: the minimum at x0 = 1, y0 = 0 (the
    force there below fmax 0.01 eV/A means x0 within 0.01 A), S1 energy below 1e-4 eV."""
    inner = _DoubleWell()
    atoms, converged, steps = trap.relax(_three_atoms(0.5, 0.3), trap.OnState(inner, 1), 0.01)
    assert converged and steps > 0
    assert atoms.positions[0] == pytest.approx([1.0, 0.0, 0.0], abs=0.01)
    assert inner.results["energies"][1] < 1e-4


def test_path_on_state_finds_the_saddle_between_two_minima():
    """Climbing-image NEB between the two minima (x0 = -1 and +1) of the double well: the
    highest image sits at the saddle x0 = 0 and the barrier is its 1 eV height (to 0.01 eV at
    fmax 0.02 eV/A); the ends keep their energy 0."""
    inner = _DoubleWell()
    path = trap.path_on_state(
        _three_atoms(-1.0), _three_atoms(1.0), lambda: trap.OnState(inner, 1), fmax=0.02
    )
    assert path["converged"]
    assert path["barrier_eV"] == pytest.approx(1.0, abs=0.01)
    top = path["images"][path["highest_image"]]
    assert abs(top.positions[0, 0]) < 0.02
    assert path["energies_eV"][0] == pytest.approx(0.0, abs=1e-12)
    assert path["energies_eV"][-1] == pytest.approx(0.0, abs=1e-12)


def test_barrier_queue_takes_r3s_minimum_and_the_inner_path_images(tmp_path):
    """queue_frames: R3's S1 minimum first, then each path file's 9 inner images (its two ends,
    the model's minimum and crossing, left out), in file-name order, each with its source."""
    from ase.io import write

    write(tmp_path / "p-star-r3.xyz", _three_atoms(1.0))
    for name, shift in (("path-b", 0.5), ("path-a", 0.0)):
        frames = []
        for k in range(11):
            atoms = _three_atoms(-1.0 + 0.2 * k + shift)
            atoms.info.update(image=k, S1_eV=0.0)
            frames.append(atoms)
        write(tmp_path / f"{name}.xyz", frames)
    queue = trap.queue_frames(tmp_path)
    assert len(queue) == 1 + 9 + 9
    assert queue[0].info["source"] == "p-star-r3"
    assert [a.info["source"] for a in queue[1:]] == ["path-a"] * 9 + ["path-b"] * 9
    assert [a.info["image"] for a in queue[1:10]] == list(range(1, 10))
    assert queue[1].positions[0, 0] == pytest.approx(-0.8)
    assert queue[10].positions[0, 0] == pytest.approx(-0.3)


def test_barrier_table_compares_each_labelled_frame_with_the_models(tmp_path):
    """Two queue frames (R3's cis minimum, and it shifted by 0.01 A) labelled ok and failed:
    the ok row reports R3's S1 relative to R3's FC S1 (criteria-6-31g.json) and gap, and the
    model's S1 relative to its own FC S1 (zero here: the frame is the FC geometry) and gap as
    the calculator gives them; the failed row is flagged, not read as zeros."""
    import json

    from ase.io import read, write

    from fusionff import save_model
    from fusionff.calculator import FusionCalculator
    from fusionff.data.dataset import MultiStateDataset, Structure
    from tests.conftest import small_model

    fc = read(trap.FC)
    frames = [fc.copy(), fc.copy()]
    frames[1].positions += 0.01
    for k, frame in enumerate(frames):
        frame.info.update(source="test", image=k)
    write(tmp_path / "queue.xyz", frames)
    fc_s1 = json.loads(trap.CRITERIA.read_text())["cis_S0_minimum"]["E_S1_eV"]
    n = len(fc)
    ok = Structure(
        numbers=fc.numbers, positions=fc.positions, energies=np.array([fc_s1 - 6.0, fc_s1 + 0.5]),
        forces=np.zeros((n, 2, 3)), energy_mask=np.ones(2, bool), force_mask=np.ones(2, bool),
    )  # fmt: skip
    failed = Structure(
        numbers=fc.numbers, positions=frames[1].positions, energies=np.full(2, np.nan),
        forces=np.full((n, 2, 3), np.nan), energy_mask=np.zeros(2, bool),
        force_mask=np.zeros(2, bool), status="failed", error="guard",
    )  # fmt: skip
    with MultiStateDataset.create(tmp_path / "labels.h5", 2) as data:
        data.extend([ok, failed])
    model = small_model(fusion=True, n_states=2)
    (tmp_path / "m").mkdir()
    save_model(model, tmp_path / "m" / "model.fff")
    rows = trap.barrier_table(
        tmp_path / "queue.xyz", tmp_path / "labels.h5", [str(tmp_path / "m" / "model.fff")]
    )
    assert len(rows) == 2
    assert rows[0]["source"] == "test" and rows[0]["image"] == 0
    assert rows[0]["R3_S1_eV"] == pytest.approx(0.5) and rows[0]["R3_gap_eV"] == pytest.approx(6.5)
    calc = FusionCalculator(str(tmp_path / "m" / "model.fff"), device="cpu")
    calc.calculate(fc)
    e = calc.results["energies"]
    assert rows[0]["m"]["S1_eV"] == pytest.approx(0.0, abs=1e-9)
    assert rows[0]["m"]["gap_eV"] == pytest.approx(float(e[1] - e[0]), abs=1e-9)
    assert rows[1] == {"source": "test", "image": 1, "failed": True}
    frames[0].positions += 0.1  # a rewritten queue no longer matches its labels
    write(tmp_path / "queue.xyz", frames)
    with pytest.raises(ValueError, match="frame 0 is not the geometry of .* row 0"):
        trap.barrier_table(tmp_path / "queue.xyz", tmp_path / "labels.h5", [])


hop_check = load_script("data/stilbene/r3/hop_check.py")


def test_hop_check_geometry_measures_the_twist_and_the_planarity():
    """On the planar-ish cis reference the |C(ipso)-C=C-C(ipso)| dihedral is small and both
    central angle sums are near 360 degrees; rotating one half of the molecule (the atoms
    closer to the second central carbon) rigidly by 90 degrees about the C=C axis changes the
    dihedral by 90 degrees and leaves both angle sums unchanged."""
    from ase.io import read

    reference = "data/stilbene/r2/cis-6-31g.xyz"
    dihedral, neighbours = hop_check.central_atoms(reference)
    positions = read(reference).positions
    angle, sum_b, sum_c = hop_check.geometry(positions, dihedral, neighbours)
    assert angle < 15.0 and sum_b == pytest.approx(360.0, abs=1.0) and sum_c > 359.0
    b, c = positions[dihedral[1]], positions[dihedral[2]]
    axis = (c - b) / np.linalg.norm(c - b)
    half = np.linalg.norm(positions - c, axis=1) < np.linalg.norm(positions - b, axis=1)
    theta = np.radians(90.0)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * k @ k
    twisted = positions.copy()
    twisted[half] = (positions[half] - c) @ rotation.T + c
    angle90, sum_b90, sum_c90 = hop_check.geometry(twisted, dihedral, neighbours)
    assert angle90 == pytest.approx(90.0 + angle, abs=1e-6) or angle90 == pytest.approx(
        90.0 - angle, abs=1e-6
    )
    assert (sum_b90, sum_c90) == pytest.approx((sum_b, sum_c), abs=1e-9)


consistency = load_script("data/stilbene/r3/label_consistency.py")


def test_label_consistency_holds_for_conservative_labels_in_any_orientation():
    """Two states of springs between all pairs of 5 atoms (E_s = sum k_ij (r_ij - d_ij)^2, a
    rotation-invariant surface, forces its exact gradient): for a second structure 0.002 A
    away, rotated and shifted, the superposition undoes the rotation (RMSD at most the
    unrotated one) and the trapezoid work matches the energy difference to 1e-3 of it (third
    order in the step); a force label with its sign flipped on one atom of S1 breaks S1 only."""
    rng = np.random.default_rng(5)
    n, s = 5, 2
    k = rng.uniform(1.0, 3.0, size=(s, n, n))
    d = rng.uniform(1.0, 2.0, size=(n, n))

    def label(x):
        diff = x[:, None] - x[None]
        r = np.linalg.norm(diff, axis=-1) + np.eye(n)
        stretch = np.triu(r - d, 1)
        e = np.array([(k[m] * stretch**2).sum() for m in range(s)])
        f = np.zeros((n, s, 3))
        for m in range(s):
            w = np.triu(2 * k[m] * stretch / r, 1)
            w = w + w.T
            f[:, m] = -(w[:, :, None] * diff).sum(1)
        return e, f

    xa = rng.normal(size=(n, 3))
    xb = xa + 0.002 * rng.normal(size=(n, 3))
    ea, fa = label(xa)
    eb, fb = label(xb)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    x = np.stack([xa, xb @ q.T + 3.0])
    f = np.stack([fa, np.einsum("nsj,ij->nsi", fb, q)])
    e = np.stack([ea, eb])
    (pair,) = consistency.close_pairs(x, f, e, max_rmsd=1.0)
    direct = np.sqrt((((xb - xb.mean(0)) - (xa - xa.mean(0))) ** 2).sum(-1).mean())
    assert 0 < pair["rmsd"] <= direct + 1e-12
    assert np.abs(pair["mismatch"]).max() < 1e-3 * np.abs(pair["energy_difference"]).max()
    f[1, 0, 1] *= -1.0
    (broken,) = consistency.close_pairs(x, f, e, max_rmsd=1.0)
    assert abs(broken["mismatch"][1]) > 10 * abs(pair["mismatch"][1])
    assert broken["mismatch"][0] == pair["mismatch"][0]


probe = load_script("data/stilbene/r3/state_average_probe.py")


def test_state_average_probe_gaps_and_s1_shift_on_hand_values():
    """Hand values (eV): gaps of both averages, the gap from S1 to the state the larger one
    adds, and how far the larger average moves S1 relative to S0; a pair of averages with the
    wrong state counts is refused."""
    fewer = np.array([[-10.0, -8.0], [-9.0, -7.5]])
    more = np.array([[-10.1, -8.0, -7.6], [-9.0, -7.8, -6.0]])
    rows = probe.compare(fewer, more)
    np.testing.assert_allclose(rows["gap_fewer"], [2.0, 1.5])
    np.testing.assert_allclose(rows["gap_more"], [2.1, 1.2])
    np.testing.assert_allclose(rows["gap_above"], [0.4, 1.8])
    np.testing.assert_allclose(rows["s1_shift"], [0.1, -0.3])
    with pytest.raises(ValueError, match="states of FEWER"):
        probe.compare(more, fewer)


def test_state_average_probe_refuses_files_of_different_structures(tmp_path, capsys):
    """Row i of both files must be the same structure: a moved atom stops the comparison with
    both file names; the same positions give one table row per structure."""
    from fusionff.data.dataset import MultiStateDataset
    from fusionff.data.structure import Structure

    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 4, 3))

    def write(path, n_states, positions):
        with MultiStateDataset.create(path, n_states, method="test") as out:
            out.extend(
                Structure(
                    numbers=np.array([6, 6, 1, 1]),
                    positions=p,
                    energies=np.arange(n_states, dtype=float) + i,
                    forces=np.zeros((4, n_states, 3)),
                    energy_mask=np.ones(n_states, bool),
                    force_mask=np.ones(n_states, bool),
                )
                for i, p in enumerate(positions)
            )

    write(tmp_path / "sa2.h5", 2, x)
    write(tmp_path / "sa3.h5", 3, x)
    assert probe.main([str(tmp_path / "sa2.h5"), str(tmp_path / "sa3.h5")]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line[:3].strip().isdigit()]
    assert len(table) == 2
    moved = x.copy()
    moved[1, 2] += 0.01
    write(tmp_path / "moved.h5", 3, moved)
    with pytest.raises(SystemExit, match="sa2.h5 and .*moved.h5: positions differ"):
        probe.main([str(tmp_path / "sa2.h5"), str(tmp_path / "moved.h5")])


third = load_script("data/stilbene/r3/third_state_probe.py")


def test_third_state_probe_reads_row_ranges_and_refuses_bad_ones():
    """``FILE`` means every row, ``FILE:START-STOP`` rows START..STOP-1; anything else is
    refused with the spec in the message."""
    assert third.parse_rows("a.h5") == ("a.h5", None, None)
    assert third.parse_rows("dir/a.h5:3-10") == ("dir/a.h5", 3, 10)
    for bad in ("a.h5:3", "a.h5:x-4", "a.h5:5-5"):
        with pytest.raises(ValueError, match="--rows"):
            third.parse_rows(bad)


def test_third_state_probe_takes_a_runs_split_as_single_row_specs(tmp_path):
    """``RUN_DIR[:SUBSET]``: one ``FILE:ROW-ROW+1`` spec per structure of the subset (default
    test), rows counted from the start of each file of the stored split."""
    import json

    files = [{"path": "a.h5", "n_structures": 3}, {"path": "b.h5", "n_structures": 2}]
    record = {"files": files, "train": [0, 1, 3], "validation": [2], "test": [4]}
    (tmp_path / "split.json").write_text(json.dumps(record))
    assert third.split_specs(str(tmp_path)) == ["b.h5:1-2"]
    assert third.split_specs(f"{tmp_path}:train") == ["a.h5:0-1", "a.h5:1-2", "b.h5:0-1"]
    assert third.parse_rows(third.split_specs(f"{tmp_path}:validation")[0]) == ("a.h5", 2, 3)


def test_third_state_probe_gaps_and_count_on_hand_values():
    """Hand values (eV): S1-S0 and S2-S1 of the SA-3 energies, the stored SA-2 gap and the
    change between them; the table counts points with S2 within 0.5 eV of S1 and lists a
    failed point with its reason."""
    geometry = {"dihedral_deg": 95.0, "angle_sum_C1_deg": 350.0, "angle_sum_C2_deg": 359.0}
    near = {"E_eV": [-10.0, -7.0, -6.8], "sa2_E_eV": [-10.1, -7.6], **geometry}
    far = {"E_eV": [-10.0, -5.0, -1.0], **geometry}
    s = third.point_summary(near)
    assert s["gap10_eV"] == pytest.approx(3.0) and s["gap21_eV"] == pytest.approx(0.2)
    assert s["sa2_gap10_eV"] == pytest.approx(2.5)
    assert s["gap10_change_eV"] == pytest.approx(0.5)
    assert "sa2_gap10_eV" not in third.point_summary(far)
    assert third.point_summary({"failed": "guard"}) == {}
    text = third.table({"a": near, "b": far, "c": {"failed": "pi weight below 0.1"}})
    assert text.splitlines()[-1] == "1 of 2 points have S2 within 0.5 eV of S1"
    assert "c  failed: pi weight below 0.1" in text
    # with a cis_FC point, S1 relative to its S1 (SA-3) and to SA-2's FC S1 where given
    fc = {"E_eV": [-12.0, -6.0, -1.0], **geometry}
    lines = third.table({"cis_FC": fc, "a": near}, sa2_fc=[-12.0, -6.5]).splitlines()
    assert lines[2].split()[-2:] == ["-1.000", "-1.100"]  # -7.0 - -6.0, -7.6 - -6.5


s1_frames = load_script("data/stilbene/r3/s1_frames.py")


def test_s1_frames_take_the_frame_nearest_each_time_while_on_s1(tmp_path):
    """On a synthetic run (S1 until a hop, then S0): one frame per trajectory and time at
    which the trajectory has not ended and is on S1, at the frame nearest that time, with the
    positions of that frame and the time and model gap in its info."""
    from fusionff.analysis.run import read_run
    from tests.fixtures.analysis.synthetic_run import write_synthetic_run

    write_synthetic_run(tmp_path / "run", n_traj=6, tau_fs=150.0, t0_fs=20.0, seed=3)
    times = [30.0, 120.0, 260.0]
    frames = s1_frames.sample(tmp_path / "run", times)
    expected = []
    for t in read_run(tmp_path / "run", include_failed=True).trajectories:
        for when in times:
            if when <= t.time[-1]:
                k = int(np.argmin(np.abs(t.time - when)))
                if t.active_state[k] == 1:
                    gap = t.energies[k, 1] - t.energies[k, 0]
                    expected.append((t.index, float(t.time[k]), gap))
    got = [(a.info["trajectory"], a.info["time_fs"], a.info["model_gap_ev"]) for a in frames]
    assert got == expected and 0 < len(got) < 6 * len(times)
    first = read_run(tmp_path / "run").trajectories[frames[0].info["trajectory"]]
    from fusionff.analysis.run import read_positions

    k = int(np.argmin(np.abs(first.time - frames[0].info["time_fs"])))
    _, x = read_positions(first.path, list(range(len(frames[0]))), [k])
    np.testing.assert_array_equal(frames[0].positions, x[0])


def test_sa3_reference_relaxes_on_s1_of_a_three_state_calculator(tmp_path, monkeypatch):
    """``reference_part(n_states=3)``: the calculator is built with three states and its own
    orbital store, S1 is relaxed from the start (the double well's minimum x0 = 1 from x0 =
    0.5), the geometry goes to ``p-star-r3-sa3.xyz`` and the energies are relative to the
    probe's SA-3 S1 at cis_FC and at R3's crossing (hand values); a probe without them is
    refused by name."""
    import json

    from ase.io import read, write

    import fusionff.labeling.calculator as calculators

    made = {}

    class FakeCasscf(_DoubleWell):
        def __init__(self, active_atoms, n_states, basis, couplings, orbital_store):
            super().__init__()
            made.update(n_states=n_states, basis=basis, store=orbital_store)

        def calculate(self, atoms, properties=None, system_changes=None):
            super().calculate(atoms)
            e = self.results["energies"]
            f = self.results["state_forces"]
            self.results = {
                "energies": np.append(e, e[1] + 0.1),
                "state_forces": np.concatenate([f, f[1:]]),
            }

    monkeypatch.setattr(calculators, "CasscfCalculator", FakeCasscf)
    monkeypatch.setattr(trap, "GEOMETRIES", tmp_path / "geometries")
    monkeypatch.setattr(trap, "_geometry", lambda positions: {})  # stilbene angles: 3 atoms here
    (tmp_path / "geometries").mkdir()
    start = tmp_path / "start.xyz"
    write(start, _three_atoms(0.5))
    probe = tmp_path / "probe.json"
    points = {"cis_FC": {"E_eV": [-5.0, 3.0, 4.0]}, "R3_crossing": {"E_eV": [0.2, 0.5, 5.0]}}
    probe.write_text(json.dumps({"points": points}))
    out = trap.reference_part(
        start, tmp_path / "work", tmp_path / "sa3.orbitals", 0.01, 200, n_states=3, probe=probe
    )
    assert made == {"n_states": 3, "basis": "6-31G", "store": str(tmp_path / "sa3.orbitals")}
    assert out["n_states"] == 3 and out["relaxed"]["converged"]
    assert out["at_start"]["S1_eV"] == pytest.approx((0.25 - 1.0) ** 2 - 3.0)
    assert out["relaxed"]["S1_eV"] == pytest.approx(-3.0, abs=1e-4)
    assert out["R3_crossing_S1_eV"] == pytest.approx(-2.5)
    assert out["S1_minimum_below_R3_crossing_eV"] == pytest.approx(0.5, abs=1e-4)
    relaxed = read(tmp_path / "geometries" / "p-star-r3-sa3.xyz")
    assert relaxed.positions[0] == pytest.approx([1.0, 0.0, 0.0], abs=0.01)
    probe.write_text(json.dumps({"points": {"cis_FC": points["cis_FC"]}}))
    with pytest.raises(ValueError, match="no SA-3 energies at R3_crossing"):
        trap.reference_part(start, tmp_path / "w2", tmp_path / "o", 0.01, 5, 3, probe)


def test_crossing_penalty_uses_s0_and_s1_of_a_three_state_calculator():
    """The crossing search's penalty (r2_crossing.CrossingPenalty) on a three-state
    calculator equals the penalty on the same calculator cut to S0 and S1: the third state
    (SA-3's S2) does not enter it."""
    penalty_of = trap.CrossingPenalty

    class TwoOfThree(_DoubleWell):
        def __init__(self, keep):
            super().__init__()
            self.keep = keep

        def calculate(self, atoms, properties=None, system_changes=None):
            super().calculate(atoms)
            e, f = self.results["energies"], self.results["state_forces"]
            e, f = np.append(e, e[1] + 0.05), np.concatenate([f, 2.0 * f[1:]])
            self.results = {"energies": e[: self.keep], "state_forces": f[: self.keep]}

    atoms = _three_atoms(0.4, 0.2)
    results = []
    for keep in (2, 3):
        atoms.calc = penalty_of(TwoOfThree(keep), 15.0)
        results.append((atoms.get_potential_energy(), atoms.get_forces().copy()))
    assert results[1][0] == results[0][0]
    np.testing.assert_array_equal(results[1][1], results[0][1])


third_errors = load_script("data/stilbene/r3/third_state_errors.py")


def test_third_state_errors_match_rows_to_probe_points_and_group_by_s2(tmp_path):
    """Three labelled rows (ok, ok, failed) of a file made from a queue the probe was run on
    (``--alias``): each ok row gets the model's errors as the calculator gives them and its
    probe point's S2 - S1; the failed row and a row without a probe point are skipped; the
    groups average the rows with S2 within 0.5 eV of S1 and the rest."""
    from ase import Atoms

    from fusionff import save_model
    from fusionff.calculator import FusionCalculator
    from fusionff.data.dataset import MultiStateDataset, Structure
    from tests.conftest import small_model

    numbers = np.array([6, 6, 1, 1])
    base = np.array([[0.0, 0.0, 0.0], [1.34, 0.0, 0.0], [-0.6, 0.9, 0.0], [1.9, 0.9, 0.1]])
    rng = np.random.default_rng(0)

    def label(k, status="ok"):
        ok = status == "ok"
        return Structure(
            numbers=numbers, positions=base + 0.05 * k,
            energies=np.array([-1.0, 2.0 + k]) if ok else np.full(2, np.nan),
            forces=rng.normal(size=(4, 2, 3)) if ok else np.full((4, 2, 3), np.nan),
            energy_mask=np.full(2, ok), force_mask=np.full(2, ok), status=status,
            error="" if ok else "guard",
        )  # fmt: skip

    labels = [label(0), label(1), label(2, "failed"), label(3)]
    with MultiStateDataset.create(tmp_path / "labels.h5", 2) as data:
        data.extend(labels)
    save_model(small_model(fusion=True, n_states=2), tmp_path / "m.fff")
    points = {
        "queue.xyz:0": {"E_eV": [-1.0, 2.0, 2.3], "dihedral_deg": 90.0},  # S2 - S1 0.3: near
        "queue.xyz:1": {"E_eV": [-1.0, 3.0, 6.0], "dihedral_deg": 120.0},  # 3.0: far
        "queue.xyz:2": {"E_eV": [-1.0, 3.0, 6.0], "dihedral_deg": 120.0},  # label failed
        "queue.xyz:3": {"failed": "guard"},  # probe failed
    }
    assert third_errors.probe_key("d/labels.h5", 3, {"labels.h5": "queue.xyz"}) == "queue.xyz:3"
    rows = third_errors.row_errors(
        [str(tmp_path / "m.fff")], [str(tmp_path / "labels.h5")], points,
        {"labels.h5": "queue.xyz"},
    )  # fmt: skip
    assert [r["label"] for r in rows] == ["labels.h5:0", "labels.h5:1"]
    assert [r["sa3_gap21_eV"] for r in rows] == pytest.approx([0.3, 3.0])
    calc = FusionCalculator(str(tmp_path / "m.fff"), device="cpu")
    for row, k in zip(rows, (0, 1), strict=True):
        calc.calculate(Atoms(numbers, labels[k].positions))
        e = calc.results["energies"] - labels[k].energies
        assert row["energy_error_eV"] == pytest.approx(e.tolist())
        assert row["gap_error_eV"] == pytest.approx(e[1] - e[0])
        f = np.abs(calc.results["state_forces"] - labels[k].forces.transpose(1, 0, 2))
        assert row["force_mae_eV_A"] == pytest.approx(f.mean(axis=(1, 2)).tolist())
    groups = third_errors.group_means(rows, 0.5)
    assert groups["near"]["n"] == 1 and groups["far"]["n"] == 1
    assert groups["near"]["S1_energy_mae_eV"] == pytest.approx(abs(rows[0]["energy_error_eV"][1]))
    assert groups["far"]["S0_force_mae_eV_A"] == pytest.approx(rows[1]["force_mae_eV_A"][0])
    assert third_errors.group_means(rows[:1], 0.5)["far"] == {"n": 0}
    index, s0, s1 = groups["near"]["worst_S1_atoms"][0]  # the atom of largest S1 force error
    assert s1 == pytest.approx(max(rows[0]["atom_force_mae_eV_A"][1]))
    assert s0 == pytest.approx(rows[0]["atom_force_mae_eV_A"][0][index])


def test_sa3_crossing_depth_is_relative_to_the_probes_fc_s1(tmp_path):
    """Hand values (eV): the crossing's S1 at sigma 15 minus the probe's SA-3 FC S1, and P*'s
    depth below it (P*'s S1 is already relative to that FC S1); the record keeps its keys."""
    import json

    geometry = {"dihedral_deg": 112.0, "angle_sum_C1_deg": 311.0, "angle_sum_C2_deg": 360.0}
    criteria = {"crossing": {"sigma_15": {"E_S1_eV": -100.75, "gap_eV": 0.01}} | geometry}
    (tmp_path / "criteria.json").write_text(json.dumps(criteria))
    probe = {"points": {"cis_FC": {"E_eV": [-106.0, -100.0, -95.0]}}}
    (tmp_path / "probe.json").write_text(json.dumps(probe))
    sa3 = {"n_states": 3, "relaxed": {"S1_eV": -1.25}}
    out = trap.sa3_crossing_part(sa3, tmp_path / "criteria.json", tmp_path / "probe.json")
    assert out["SA3_crossing_S1_eV"] == pytest.approx(-0.75)
    assert out["S1_minimum_below_SA3_crossing_eV"] == pytest.approx(0.5)
    assert out["SA3_crossing_gap_eV"] == 0.01 and out["SA3_crossing_geometry"] == geometry
    assert out["n_states"] == 3 and out["relaxed"] == sa3["relaxed"]


def test_bond_stretch_finds_the_hydrogen_farthest_from_any_heavy_atom():
    """Methane with one C-H at 1.9 A and the others at 1.09 A, plus a second carbon 1.5 A
    away: the stretched hydrogen and its carbon are named with that distance; no hydrogens,
    or no heavy atoms, is refused."""
    stretch = load_script("data/stilbene/r3/bond_stretch_errors.py")
    numbers = np.array([6, 1, 1, 1, 1, 6])
    positions = np.array(
        [[0, 0, 0], [1.09, 0, 0], [0, 1.09, 0], [0, 0, 1.09], [-1.9, 0, 0], [0, 0, -1.5]], float
    )
    assert stretch.most_stretched_hydrogen(numbers, positions) == (4, 0, pytest.approx(1.9))
    positions[4] = [-1.2, 0, -2.5]  # now nearer the second carbon (1.56 A) than the first
    h, heavy, d = stretch.most_stretched_hydrogen(numbers, positions)
    assert (h, heavy) == (4, 5) and d == pytest.approx(np.hypot(1.2, 1.0))
    with pytest.raises(ValueError, match="hydrogens and heavy atoms"):
        stretch.most_stretched_hydrogen(np.array([6, 6]), positions[:2])


def test_bond_stretch_row_gives_signed_errors_and_the_hydrogen_force_error():
    """Hand values: a model 1.5 eV below the label in S0 and 0.2 above in S1, whose force on
    the stretched hydrogen differs by (3, 4, 0) eV/A in S0 only; the label's forces are
    stored atom-major (N, S, 3). A failed row keeps its error and has no model numbers."""
    stretch = load_script("data/stilbene/r3/bond_stretch_errors.py")
    numbers = np.array([6, 1, 1])
    positions = np.array([[0, 0, 0], [1.1, 0, 0], [0, 1.8, 0]], float)
    label_f = np.zeros((3, 2, 3))
    model_f = np.zeros((2, 3, 3))
    model_f[0, 2] = [3.0, 4.0, 0.0]
    row = stretch.row_report(
        numbers, positions, "ok", [-10.0, -6.0], label_f, "", {"m": ([-11.5, -5.8], model_f)}
    )
    assert (row["hydrogen"], row["heavy_atom"]) == (2, 0)
    assert row["models"]["m"]["energy_error_eV"] == pytest.approx([-1.5, 0.2])
    assert row["models"]["m"]["hydrogen_force_error_eV_per_A"] == pytest.approx([5.0, 0.0])
    failed = stretch.row_report(numbers, positions, "failed", [np.nan] * 2, label_f, "guard", {})
    assert failed["error"] == "guard" and "models" not in failed


def test_s1_trap_names_a_shipped_model_by_its_file_and_a_run_model_by_its_run():
    """Two shipped models in potentials/ got one name ("potentials"), so the second's results
    overwrote the first's; a run's model.fff keeps its run directory's name."""
    assert trap.model_tag("potentials/stilbene-r3.fff") == "stilbene-r3"
    assert trap.model_tag("potentials/stilbene-r3-partner.fff") == "stilbene-r3-partner"
    run_model = "potentials/training/stilbene-r3-cleanwide-snapshot-14/model.fff"
    assert trap.model_tag(run_model) == "stilbene-r3-cleanwide-snapshot-14"


bridge_frames = load_script("data/stilbene/r3/bridge_frames.py")


def test_bridge_frames_take_the_hop_frame_and_the_frames_nearest_each_target(tmp_path, monkeypatch):
    """On a synthetic run whose hopped trajectories are marked out of the domain: only those
    give frames; each gives its first frame at or after its last hop and, per target, the
    frame after the hop whose bridge distance is nearest the target (each frame once), with
    the time, hop time, distance and the model's S0/S1 energies of that frame."""
    import json

    from fusionff.analysis.run import read_positions, read_run
    from tests.fixtures.analysis.synthetic_run import write_synthetic_run

    write_synthetic_run(tmp_path / "run", n_traj=8, tau_fs=150.0, t0_fs=20.0, seed=5)
    summary_path = tmp_path / "run" / "summary.json"
    summary = json.loads(summary_path.read_text())
    marked = [e["index"] for e in summary["trajectories"] if e["hops"]][:2]
    assert len(marked) == 2
    for e in summary["trajectories"]:
        if e["index"] in marked:
            e["status"] = "out-of-domain"
    summary_path.write_text(json.dumps(summary))

    # a rigid twist keeps the real bridge distance fixed: stand in a distance that varies
    def distance(x):
        return float(np.linalg.norm(x[3] - x[16]) / 3.0)

    monkeypatch.setattr(bridge_frames, "hydrogen_bridge_distance", distance)
    targets = [2.0, 1.8, 1.65]
    frames = bridge_frames.sample(tmp_path / "run", targets)
    run = read_run(tmp_path / "run", include_failed=True)
    expected = []
    for t in sorted(run.trajectories + run.excluded, key=lambda t: t.index):
        if t.index not in marked:
            continue
        hop_time = t.hops[-1].time_fs
        after = [k for k in range(len(t.time)) if t.time[k] >= hop_time - 1e-9]
        _, x = read_positions(t.path, list(range(len(frames[0]))), after)
        d = [distance(p) for p in x]
        picks = {0} | {int(np.argmin([abs(v - g) for v in d])) for g in targets}
        for j in sorted(picks):
            k = after[j]
            expected.append(
                (t.index, float(t.time[k]), hop_time, round(d[j], 3), float(t.energies[k, 0]))
            )
    got = [
        (
            a.info["trajectory"],
            a.info["time_fs"],
            a.info["hop_time_fs"],
            a.info["bridge_distance_a"],
            a.info["model_e0_ev"],
        )
        for a in frames
    ]
    assert got == expected
    assert {a.info["trajectory"] for a in frames} == set(marked)
    assert len(frames) > 2  # more than the two hop frames: the targets picked frames too


def test_bridge_frames_without_a_hop_take_the_last_window(tmp_path, monkeypatch):
    """A trajectory stopped out of the domain without a hop gives frames only with
    without_hop_fs: per target the frame of its last W fs whose bridge distance is nearest
    (no hop frame, no hop time), each with its active state."""
    import json

    from fusionff.analysis.run import read_positions, read_run
    from tests.fixtures.analysis.synthetic_run import write_synthetic_run

    write_synthetic_run(tmp_path / "run", n_traj=8, tau_fs=5000.0, t0_fs=20.0, seed=5)
    summary_path = tmp_path / "run" / "summary.json"
    summary = json.loads(summary_path.read_text())
    stopped = [e["index"] for e in summary["trajectories"] if not e["hops"]][0]
    summary["trajectories"][stopped]["status"] = "out-of-domain"
    summary_path.write_text(json.dumps(summary))

    def distance(x):
        return float(np.linalg.norm(x[3] - x[16]) / 3.0)

    monkeypatch.setattr(bridge_frames, "hydrogen_bridge_distance", distance)
    assert bridge_frames.sample(tmp_path / "run", [2.0, 1.8]) == []
    frames = bridge_frames.sample(tmp_path / "run", [2.0, 1.8], without_hop_fs=30.0)
    run = read_run(tmp_path / "run", include_failed=True)
    t = next(t for t in run.trajectories + run.excluded if t.index == stopped)
    window = [k for k in range(len(t.time)) if t.time[k] >= t.time[-1] - 30.0 - 1e-9]
    _, x = read_positions(t.path, list(range(len(frames[0]))), window)
    d = [distance(p) for p in x]
    picks = sorted({int(np.argmin([abs(v - g) for v in d])) for g in (2.0, 1.8)})
    assert [a.info["time_fs"] for a in frames] == [float(t.time[window[j]]) for j in picks]
    assert all("hop_time_fs" not in a.info for a in frames)
    assert [a.info["state"] for a in frames] == [int(t.active_state[window[j]]) for j in picks]


bridge_forces = load_script("data/stilbene/r3/bridge_forces.py")


def test_bridge_forces_pick_the_nearer_hydrogen_and_sign_the_push_back():
    """The bridging hydrogen is whichever of H1-C2 / H2-C1 is shorter (with its distance), and
    a force along the hydrogen-to-carbon line counts positive, one away from it negative, a
    perpendicular one zero."""
    from fusionff.data.stilbene import C1, C2, H1, H2

    x = np.zeros((26, 3))
    x[C1], x[C2] = [0.0, 0.0, 0.0], [1.4, 0.0, 0.0]
    x[H1], x[H2] = [-0.5, 1.0, 0.0], [1.4, 1.6, 0.0]  # H1-C2 2.28 A, H2-C1 2.13 A
    h, c, d = bridge_forces.bridging_hydrogen(x)
    assert (h, c) == (H2, C1) and d == pytest.approx(np.hypot(1.4, 1.6))
    x[H1] = [1.0, 1.2, 0.0]  # now H1-C2 is 1.26 A
    h, c, d = bridge_forces.bridging_hydrogen(x)
    assert (h, c) == (H1, C2) and d == pytest.approx(np.hypot(0.4, 1.2))
    u = (x[C2] - x[H1]) / np.linalg.norm(x[C2] - x[H1])
    assert bridge_forces.along_bridge(2.0 * u, x, H1, C2) == pytest.approx(2.0)
    assert bridge_forces.along_bridge(-3.0 * u, x, H1, C2) == pytest.approx(-3.0)
    assert bridge_forces.along_bridge(np.array([0.0, 0.0, 5.0]), x, H1, C2) == pytest.approx(0.0)


relabel = load_script("data/stilbene/r3/relabel_check.py")


def _labels(path, energies, metas=None):
    """A label file of H2 structures with these energies (eV) and meta dicts per row."""
    from fusionff.data.dataset import MultiStateDataset
    from fusionff.data.structure import Structure

    with MultiStateDataset.create(path, 2) as ds:
        for k, e in enumerate(energies):
            ds.append(
                Structure(
                    numbers=np.array([1, 1]),
                    positions=np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]]),
                    energies=np.asarray(e, dtype=float),
                    forces=np.zeros((2, 2, 3)),
                    energy_mask=None,
                    force_mask=None,
                    meta=(metas or [{}] * len(energies))[k],
                )
            )


def _queue(path, stored, rows):
    """A relabelling queue at ``path``: H2 frames naming rows ``rows`` of ``stored``."""
    from ase import Atoms
    from ase.io import write

    frames = []
    for row in rows:
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
        atoms.info = {"source": str(stored), "source_row": row}
        frames.append(atoms)
    write(path, frames)
    return frames


def test_relabel_verdicts_split_at_the_tolerance():
    assert relabel.verdict(-0.5) == "lower"
    assert relabel.verdict(0.004) == "same" and relabel.verdict(-0.009) == "same"
    assert relabel.verdict(0.02) == "higher"
    assert relabel.verdict(-0.02, tolerance_ev=0.05) == "same"


def test_relabel_check_compares_each_row_with_the_label_it_repeats(tmp_path):
    """Three queued frames naming rows 1, 0 and 2 of a stored file; two relabelled: frame 0
    0.5 eV lower in the state average (S1 1 eV lower: the stored label on a higher solution),
    frame 1 the same; the third is counted as not labelled yet. The relabelled file holds
    frame 1 first (rows in the order they finished, each naming its frame in meta)."""
    from ase.io import write

    stored = tmp_path / "stored.h5"
    _labels(stored, [[-10.0, -6.0], [-10.0, -5.0], [-9.0, -4.0]])
    queue = tmp_path / "queue.xyz"
    frames = _queue(queue, stored, (1, 0, 2))
    new = tmp_path / "new.h5"
    metas = [{"start": "followed", "source_index": 1}]
    metas.append({"start": "fresh", "rhf": "Fermi aufbau", "source_index": 0})
    _labels(new, [[-10.0, -6.0], [-10.0, -6.0]], metas=metas)
    result = relabel.compare(queue, new)
    second, first = result["rows"]
    assert first["source"] == f"{stored}:1" and first["verdict"] == "lower"
    assert first["state_average_difference_eV"] == pytest.approx(-0.5)
    assert first["start"] == "fresh" and first["rhf"] == "Fermi aufbau"
    assert second["verdict"] == "same" and second["rhf"] == ""
    assert result["not_labelled_yet"] == 1
    del frames[0].info["source"]
    write(queue, frames)
    with pytest.raises(ValueError, match="frame 0: no source"):
        relabel.compare(queue, new)


def test_relabel_exclusions_name_the_stored_labels_on_a_higher_solution(tmp_path):
    """--exclude-out writes exactly the stored labels judged 'lower' (here stored row 1 of
    three), and the training data's exclude matcher finds that one structure and no other."""
    from ase.io import read

    from fusionff.train.data import load_training_data

    stored = tmp_path / "stored.h5"
    _labels(stored, [[-10.0, -6.0], [-10.0, -5.0], [-9.0, -4.0]])
    queue = tmp_path / "queue.xyz"
    _queue(queue, stored, (1, 2))
    new = tmp_path / "new.h5"
    metas = [{"source_index": 0}, {"source_index": 1}]
    _labels(new, [[-10.0, -6.0], [-9.0, -4.0]], metas=metas)
    out = tmp_path / "snapshot" / "exclude.xyz"
    assert relabel.main([str(queue), str(new), "--exclude-out", str(out)]) == 0
    (written,) = read(out, index=":")
    assert list(written.info["energies"]) == [-10.0, -5.0]
    assert written.info["row"] == 1 and "0.5000 eV lower" in written.info["reason"]
    found, unmatched = load_training_data([stored], r_max=3.0).find_labels(out)
    assert found.tolist() == [1] and unmatched == 0
    same = tmp_path / "same.h5"
    _labels(same, [[-10.0, -5.0], [-9.0, -4.0]], metas=metas)
    nothing = tmp_path / "none.xyz"
    assert relabel.write_exclusions(relabel.compare(queue, same), same, nothing) == 0
    assert not nothing.exists()


census = load_script("data/stilbene/r3/start_census.py")


def test_start_census_lists_labels_on_followed_orbitals_alone(tmp_path, capsys):
    """Four ok labels: only those kept from followed orbitals after a failed fresh start, with no
    other start screened (rows 1 and 3), are listed; one screened with a second neighbour is
    not; --skip (a recheck queue) and --known leave listed ones out; the written queue names
    each frame's file and row, and files of checks (``recheck``) are passed over."""
    from ase import Atoms
    from ase.io import read, write

    fail = {"failed_start": "fresh RHF start: OpenMolcas exited with 96"}
    metas = [
        {"start": "followed", "screen_state_averages_eV": {"followed": 1.0, "fresh": 2.0}},
        {**fail, "start": "followed", "screen_state_averages_eV": {"followed": 1.0}},
        {**fail, "start": "followed", "state_averages_eV": {"followed": 1, "second neighbour": 2}},
        {**fail, "start": "followed"},
    ]
    path = tmp_path / "stilbene-r3-q.h5"
    _labels(path, [[-10.0, -6.0]] * 4, metas=metas)
    _labels(tmp_path / "stilbene-r3-recheck1.h5", [[-10.0, -6.0]], metas=[metas[1]])
    counts, alone = census.census([path, tmp_path / "stilbene-r3-recheck1.h5"])
    assert [(p, r) for p, r, _ in alone] == [(str(path), 1), (str(path), 3)]
    assert counts[(True, ("followed",), "followed")] == 1 and sum(counts.values()) == 4
    assert census.basis(metas[2]) == (True, ("followed", "second neighbour"), "followed")
    queue = tmp_path / "recheck.xyz"
    assert census.main([str(path), "--queue", str(queue)]) == 0
    frames = read(queue, index=":")
    assert [(f.info["source"], f.info["source_row"]) for f in frames] == [
        (str(path), 1),
        (str(path), 3),
    ]
    again = tmp_path / "again.xyz"
    census.main([str(path), "--skip", str(queue), "--queue", str(again)])
    assert not again.exists()
    census.main([str(path), "--known", f"{path}:3", "--queue", str(again)])
    assert [f.info["source_row"] for f in read(again, index=":")] == [1]
    plain = tmp_path / "plain.xyz"  # a --skip file that is not a recheck queue
    write(plain, Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]))
    with pytest.raises(SystemExit):
        census.main([str(path), "--skip", str(plain)])
    assert "plain.xyz frame 0: no source / source_row" in capsys.readouterr().err
