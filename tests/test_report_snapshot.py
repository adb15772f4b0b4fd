"""One validation per batch: the cohort snapshot handed to the notebooks, and its checks.

``run_reports`` reads and validates the cohort once, writes it as Parquet with its data
fingerprint into a private folder, and every notebook loads that snapshot (no second
validation) and refuses it when its content does not have the fingerprint. These tests
run in this process (fast); the end-to-end checks through the kernels are in
``test_report_batch.py``.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import analysis.schema as schema
from analysis.report_sections import validation_section
from analysis.reports import (
    SNAPSHOT_FILE,
    SnapshotCohort,
    SnapshotError,
    data_fingerprint,
    load_report_cohort,
    load_snapshot,
    plan_sites,
    site_cohort,
    write_snapshot,
)
from analysis.schema import Cohort, findings_summary, load_cohort, write_cohort
from analysis.synthetic import synthetic_cohort
from analysis.tables import validation_summary


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A cohort folder read and validated by load_cohort (as a batch does once)."""
    folder = tmp_path_factory.mktemp("clinic")
    write_cohort(synthetic_cohort(80, seed=3), folder)
    return load_cohort(folder)


def test_a_snapshot_round_trips_tables_findings_and_collected_tables(tmp_path, loaded):
    fingerprint = write_snapshot(loaded, tmp_path, source="folder clinic (80 patients)")
    assert fingerprint == data_fingerprint(loaded)
    back = load_snapshot(tmp_path, fingerprint)
    assert isinstance(back, SnapshotCohort) and back.fingerprint == fingerprint
    for name in schema.TABLES:
        pd.testing.assert_frame_equal(getattr(back, name), getattr(loaded, name))
    pd.testing.assert_frame_equal(back.findings, loaded.findings)
    assert back.collected == loaded.collected
    assert back.source == "folder clinic (80 patients)" and back.site is None


def test_loading_a_snapshot_validates_nothing(tmp_path, loaded, counted_validations):
    fingerprint = write_snapshot(loaded, tmp_path)
    cohort = load_report_cohort("ignored", 1, 1, snapshot=tmp_path, fingerprint=fingerprint)
    # report 01's validation and findings sections use the batch's validation
    assert validation_section(cohort).equals(validation_summary(loaded))
    findings_summary(cohort, min_cell=11)
    assert counted_validations == [1]  # only validation_summary(loaded) above, for the comparison
    # a cohort that is not a snapshot is checked now (a notebook run by hand)
    validation_section(loaded)
    assert len(counted_validations) == 2


def test_a_changed_snapshot_is_refused(tmp_path, loaded):
    fingerprint = write_snapshot(loaded, tmp_path)
    assessments = pd.read_parquet(tmp_path / "assessments.parquet")
    assessments.loc[0, "total"] = 0 if assessments.loc[0, "total"] != 0 else 1
    assessments.to_parquet(tmp_path / "assessments.parquet", index=False)
    with pytest.raises(SnapshotError, match="does not match the data fingerprint"):
        load_snapshot(tmp_path, fingerprint)
    # Rewriting the recorded fingerprint too does not help: the batch passed its own.
    meta = json.loads((tmp_path / SNAPSHOT_FILE).read_text())
    tables = {name: pd.read_parquet(tmp_path / f"{name}.parquet") for name in schema.TABLES}
    meta["data_fingerprint"] = data_fingerprint(SnapshotCohort(**tables))
    (tmp_path / SNAPSHOT_FILE).write_text(json.dumps(meta))
    load_snapshot(tmp_path)  # consistent with itself ...
    with pytest.raises(SnapshotError, match="does not match"):
        load_snapshot(tmp_path, fingerprint)  # ... but not with the batch's fingerprint


def test_a_removed_table_or_a_missing_snapshot_is_a_clear_error(tmp_path, loaded):
    with pytest.raises(SnapshotError, match="snapshot = None"):
        load_snapshot(tmp_path / "nowhere")
    fingerprint = write_snapshot(loaded, tmp_path)
    (tmp_path / "sessions.parquet").unlink()
    with pytest.raises(SnapshotError, match="cannot be read"):
        load_snapshot(tmp_path, fingerprint)


def test_by_hand_the_notebook_loads_the_demo_or_the_folder_and_can_check_a_fingerprint(
    tmp_path,
):
    demo = load_report_cohort(None, 30, 4)
    assert len(demo.patients) == 30 and not isinstance(demo, SnapshotCohort)
    assert load_report_cohort(None, 30, 4, fingerprint=data_fingerprint(demo)) is not None
    with pytest.raises(SnapshotError, match="expected fingerprint"):
        load_report_cohort(None, 30, 5, fingerprint=data_fingerprint(demo))


def _patients(sizes: dict, unassigned: int = 0) -> pd.DataFrame:
    sites = [s for s, n in sizes.items() for _ in range(n)] + [None] * unassigned
    return pd.DataFrame({"patient_id": [f"P{k}" for k in range(len(sites))], "site_id": sites})


@pytest.mark.parametrize(
    ("sizes", "unassigned", "shown"),
    [
        ({"S01": 30, "S02": 20}, 0, ("S01", "S02")),  # every site large enough
        ({"S01": 30, "S02": 20, "S03": 4}, 0, ("S01",)),  # S03 alone = pooled - S01 - S02
        ({"S01": 30, "S02": 20, "S03": 4, "S04": 9}, 0, ("S01", "S02")),  # 13 withheld
        ({"S01": 30, "S02": 20}, 3, ("S01",)),  # 3 without a site would be recoverable
        ({"S01": 30, "S02": 20}, 11, ("S01", "S02")),
        ({"S01": 5, "S02": 4}, 0, ()),
    ],
)
def test_plan_sites_never_leaves_a_small_remainder(sizes, unassigned, shown):
    plan = plan_sites(_patients(sizes, unassigned), min_cell=11)
    assert plan.shown == shown
    assert set(plan.shown) | set(plan.withheld) == set(sizes)
    remainder = unassigned + sum(sizes[s] for s in plan.withheld)
    assert remainder == 0 or remainder >= 11 or not plan.shown
    assert all(sizes[s] >= 11 for s in plan.shown)


def test_plan_sites_needs_a_site_column():
    with pytest.raises(ValueError, match="site_id"):
        plan_sites(pd.DataFrame({"patient_id": ["P1"]}), min_cell=11)
    with pytest.raises(ValueError, match="site_id"):
        plan_sites(pd.DataFrame({"patient_id": ["P1"], "site_id": [None]}), min_cell=11)


def test_a_site_cohort_keeps_its_patients_rows_and_findings(loaded):
    site = str(loaded.patients["site_id"].iloc[0])
    part = site_cohort(loaded, site)
    ids = set(part.patients["patient_id"])
    assert set(part.patients["site_id"]) == {site}
    assert ids == set(loaded.patients.loc[loaded.patients["site_id"] == site, "patient_id"])
    for name in ("assessments", "sessions", "adverse_events"):
        table = getattr(loaded, name)
        assert set(getattr(part, name)["patient_id"]) <= ids
        assert len(getattr(part, name)) == int(table["patient_id"].isin(ids).sum())
    # the site's findings are the findings about its patients' rows
    patient_rows = loaded.findings[loaded.findings["table"] == "patients"]
    owners = loaded.patients["patient_id"].iloc[patient_rows["row"].astype(int)]
    assert (part.findings["table"] == "patients").sum() == int(owners.isin(ids).sum())
    # and the parts of all sites add up to the whole
    total = sum(
        len(site_cohort(loaded, str(s)).findings) for s in loaded.patients["site_id"].unique()
    )
    assert total == len(loaded.findings)


#: The fingerprint of ``synthetic_cohort(40, seed=5)`` as anxiety-outcomes wrote it into
#: manifests before the fingerprint was vectorised (computed with the earlier,
#: value-by-value implementation). Same data must keep the same fingerprint across
#: versions, or every earlier run's reports would read as made from other data.
EARLIER_FINGERPRINT = "17bf6da324d6dfe34bf3eec416564d8f91e3111c9e99552c3c098d05be303438"


def test_the_fingerprint_is_the_one_earlier_versions_wrote():
    assert data_fingerprint(synthetic_cohort(40, seed=5)) == EARLIER_FINGERPRINT


@settings(max_examples=60)
@given(
    values=st.lists(
        st.one_of(
            st.none(),
            st.integers(-(10**12), 10**12),
            st.floats(allow_nan=False, width=64).filter(lambda x: abs(x) < 1e300),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_the_fingerprint_does_not_depend_on_the_storage_type(values):
    """The same numbers stored as float, Float64 or (when whole) Int64: one fingerprint."""
    ids = [f"P{k}" for k in range(len(values))]
    as_float = pd.DataFrame({"patient_id": ids, "x": pd.Series(values, dtype=float)})
    kinds = [as_float, as_float.astype({"x": "Float64"})]
    if all(v is None or float(v).is_integer() and abs(v) < 2**53 for v in values):
        kinds.append(as_float.astype({"x": "Int64"}))
    fingerprints = {data_fingerprint(Cohort(df, pd.DataFrame())) for df in kinds}
    assert len(fingerprints) == 1
    changed = as_float.copy()
    changed.loc[0, "x"] = 1e-3 if changed.loc[0, "x"] != 1e-3 else 2e-3
    assert data_fingerprint(Cohort(changed, pd.DataFrame())) not in fingerprints
