"""The dream check: fixed policies, the random policy and the run's C scored in the dream and the real game, on
the same dreams and episodes; kept in the run's metrics."""
import json

import numpy as np
import pytest

from wm_studio.cli import main
from wm_studio.core.errors import ConfigError
from wm_studio.core.train.dream_check import (FixedActor, check_path, dream_check, fixed_action)
from tests.tiny_run import make_run

pytest.importorskip("vizdoom")


@pytest.fixture(scope="module")
def doom_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("check") / "run", game="doom", rollouts=2, steps=12)


def test_fixed_actions_are_the_buttons_they_say():
    assert fixed_action("doom", 0.0).tolist() == [0, 0]
    assert fixed_action("doom", -1.0).tolist() == [1, 0]
    assert fixed_action("doom", 1.0).tolist() == [0, 1]
    actor = FixedActor(fixed_action("doom", 1.0), rows=3)
    actor.keep(np.array([True, False, True]))
    assert actor.act(None).tolist() == [[0, 1], [0, 1]]


@pytest.mark.slow
def test_every_policy_is_scored_in_the_dream_and_the_game(doom_run, capsys):
    check = dream_check(doom_run, dreams=5, episodes=2, backend="serial")
    names = [row.policy for row in check.rows]
    assert names == ["stand still", "hold left", "hold right", "random policy", "the run's C"]
    for row in check.rows:
        assert 1 <= row.dream.low <= row.dream.high <= 2100 and 1 <= row.real.low <= row.real.high <= 2100
    assert -1.0 <= check.rank_agreement <= 1.0
    saved = json.loads(check_path(doom_run).read_text())
    assert [r["policy"] for r in saved["rows"]] == names and saved["dreams"] == 5 and saved["tau"] == 1.15
    assert main(["dream-check", "--run", str(doom_run.root), "--dreams", "3", "--episodes", "1",
                 "--backend", "serial"]) == 0
    out = capsys.readouterr().out
    assert "hold right" in out and "rank agreement" in out and "dream / real" in out


def test_rank_agreement_is_one_when_the_dream_orders_as_the_game(doom_run):
    from wm_studio.core.train.dream_check import CheckRow, DreamCheck
    from wm_studio.core.train.tau_table import Scores
    rows = tuple(CheckRow(str(i), Scores.of([d]), Scores.of([r])) for i, (d, r) in
                 enumerate([(100, 10), (300, 30), (200, 20)]))
    assert DreamCheck(rows, 1.15, 1, 1).rank_agreement == pytest.approx(1.0)
    flipped = tuple(CheckRow(r.policy, r.real, r.dream) for r in rows[::-1])
    assert DreamCheck(tuple(CheckRow(a.policy, a.dream, b.real) for a, b in zip(rows, flipped)), 1.15, 1,
                      1).rank_agreement < 1.0


def test_bad_requests_are_clear(doom_run, tmp_path):
    with pytest.raises(ConfigError, match="at least 1"):
        dream_check(doom_run, dreams=0)
    car = make_run(tmp_path / "car", game="carracing", rollouts=1, steps=8)
    with pytest.raises(ConfigError, match="done head|dream pays nothing"):
        dream_check(car, dreams=2, episodes=1, backend="serial")
