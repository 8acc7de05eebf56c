"""The calibration report runs and its rows hold what the preset's rules imply (two episodes)."""

from __future__ import annotations

import pytest

from benchmarks import fidelity


@pytest.fixture(scope="module")
def rows():
    return {row["figure"]: row for row in fidelity.compare(fidelity.traffic_statistics(2, 7), fidelity.value_bidding_statistics(2, 7))}


def test_report_rows_compare_each_figure_with_auctionnet(rows):
    gates = [row for row in rows.values() if row["gate"] is not None]
    assert len(gates) == 5  # the category spread gate needs as many episodes as AuctionNet's figure
    for row in rows.values():
        assert len(row["ours"]) == 3 and row["ours"][1] <= row["ours"][0] <= row["ours"][2]


def test_report_figures_follow_the_rules(rows):
    assert rows["traffic curve correlation (mean over episodes vs published)"]["ours"][0] > 0.9
    assert rows["traffic peak tick"]["ours"][0] in range(14, 23)
    assert abs(rows["slot 3 exposure rate"]["ours"][0] - 0.48) < 0.005  # 0.8 x 0.6, exposure continuity
    assert rows["slot 2 exposure rate"]["ours"][0] == pytest.approx(0.8, abs=0.005)
    assert abs(rows["pValue mean"]["relative_difference"]) < 0.25  # two episodes: wide
    assert 0.85 < rows["realised / expected conversions"]["ours"][0] < 1.15
