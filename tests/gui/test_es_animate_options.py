"""es-animate's --strategy and --shift: the restart strategies and a moved Schaffer optimum from the command line."""
import numpy as np

from wm_studio.cli import main
from wm_studio.commands import es
from wm_studio.core.export import read_animation


def test_es_animate_passes_the_strategy_and_the_shift_on(tmp_path, monkeypatch, qapp):
    asked = []
    monkeypatch.setattr(es, "animate_to_file", lambda settings, *rest: asked.append(settings))
    assert main(["es-animate", "--strategy", "bipop", "--shift", "-3, 4.5", "--mu", "0.25"]) == 0
    settings = asked[0]
    assert settings.strategy == "bipop" and settings.shift == (-3.0, 4.5)
    assert np.array_equal(settings.problem().optimum, [-3.0, 4.5])


def test_es_animate_draws_a_moved_optimum_with_restarts(tmp_path, qapp, capsys):
    out = tmp_path / "moved.gif"
    assert main(["es-animate", "--strategy", "ipop", "--shift", "-3, 4.5", "--generations", "2", "--size",
                 "320x180", "--out", str(out)]) == 0
    assert len(read_animation(out)) == 3


def test_a_bad_shift_or_a_count_for_mu_with_restarts_is_one_clear_error(tmp_path, qapp, capsys):
    assert main(["es-animate", "--shift", "far away", "--out", str(tmp_path / "a.gif")]) == 2
    assert "--shift must be numbers separated by commas, not 'far away'" in capsys.readouterr().err
    assert main(["es-animate", "--shift", "1, 2, 3", "--out", str(tmp_path / "a.gif")]) == 2
    assert "Schaffer optimum must be two finite numbers" in capsys.readouterr().err
    assert main(["es-animate", "--strategy", "ipop", "--mu", "16", "--out", str(tmp_path / "a.gif")]) == 2
    err = capsys.readouterr().err
    assert "fraction of λ" in err and "Traceback" not in err and not (tmp_path / "a.gif").exists()
