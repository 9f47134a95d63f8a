"""The temperature table: each tau scores a C in the dream and in the real game beside the random policy, and
the table is kept in the run's metrics (never in a bundle)."""
import json

import numpy as np
import pytest

from wm_studio.cli import main
from wm_studio.core.errors import ConfigError
from wm_studio.core.models.controller import Controller, save_controller
from wm_studio.core.train.tau_table import table_path, tau_table
from tests.tiny_run import make_run

pytest.importorskip("vizdoom")


@pytest.fixture(scope="module")
def doom_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("tau") / "run", game="doom", rollouts=2, steps=12)


@pytest.mark.slow
def test_each_tau_scores_its_controller_in_the_dream_and_the_real_game(doom_run, tmp_path):
    from wm_studio.core.models.controller import load_controller
    own, _ = load_controller(doom_run.model_path("controller"))
    other = Controller(own.shape, -5 * own.params)                  # presses the other button
    save_controller(tmp_path / "c13.npz", other, {"tau": 1.3})
    snapshots = list(tau_table(doom_run, (0.5, 1.3), dreams=6, episodes=2, controllers={1.3: tmp_path / "c13.npz"},
                               backend="serial"))
    table = snapshots[-1].table
    assert [s.done for s in snapshots] == list(range(8)) + [7] and snapshots[-1].total == 2 + 1 + 2 * 2
    assert [row.tau for row in table.rows] == [0.5, 1.3]
    assert table.rows[0].controller == "the run's C" and table.rows[1].trained_tau == 1.3
    for row in table.rows:
        assert 1 <= row.dream.low <= row.dream.high <= 2100 and 1 <= row.real.low <= row.real.high <= 2100
    assert table.rows[0].real != table.rows[1].real                 # two controllers, two real scores
    assert set(table.random_dream) == {0.5, 1.3} and table.random_real.mean > 0
    saved = json.loads(table_path(doom_run).read_text())
    assert [r["tau"] for r in saved["rows"]] == [0.5, 1.3] and saved["episodes"] == 2
    assert saved["rows"][1]["real"]["mean"] == table.rows[1].real.mean
    assert any("random policy in the real game" in line for line in table.lines())


def test_bad_requests_are_clear(doom_run, capsys):
    with pytest.raises(ConfigError, match="temperatures"):
        next(tau_table(doom_run, (-1.0,)))
    assert main(["tau-table", "--run", str(doom_run.root), "--controller", "1.3"]) == 2
    assert "TAU=FILE" in capsys.readouterr().err
