"""Where a dream session starts: CarRacing after its zoom-in intro (dream.START_STEP), in every way a session can
start (issue 12: beside the real game it started from the zoomed-out first frame, an error spike at step 1)."""
import numpy as np
import pytest

from wm_studio.core.envs import dream_session as session_module
from wm_studio.core.envs.dream import START_STEP
from wm_studio.core.envs.dream_session import DreamControls, dream_session, keyboard_action
from wm_studio.core.files import save_npz
from wm_studio.core.models.mdnrnn import MDNRNN
from wm_studio.core.models.vae import ConvVAE

Z = 4


class StepCountingGame:
    """A stand-in for the real game whose frame shows how many steps were taken (in its red channel)."""
    made = []

    def __init__(self, game):
        self.action_size = 3 if game == "carracing" else 2
        self.steps, self.actions = 0, []
        StepCountingGame.made.append(self)

    def frame(self):
        return np.full((64, 64, 3), self.steps, np.uint8)

    def reset(self, seed=None):
        self.steps, self.actions = 0, []
        return self.frame(), {}

    def step(self, action):
        self.steps += 1
        self.actions.append(np.array(action))
        return self.frame(), -0.1, False, False, {}

    def close(self):
        pass


def first_frame(game, real=False, start_frames=()):
    controls = DreamControls(1.0, "random", keyboard_action(game, ()), cap=10)
    mdn = MDNRNN(Z, 3 if game == "carracing" else 2, 8, seed=0, predict_done=game == "doom")
    session = dream_session(ConvVAE(Z), mdn, game, controls, seed=0, real=real, start_frames=start_frames)
    try:
        return next(session)
    finally:
        session.close()


@pytest.mark.parametrize("game", ["carracing", "doom"])
def test_beside_the_real_game_the_dream_starts_after_the_intro(game, monkeypatch):
    monkeypatch.setattr(session_module, "make_env", StepCountingGame)
    StepCountingGame.made.clear()
    frame = first_frame(game, real=True)
    skip = START_STEP[game]
    assert skip == (50 if game == "carracing" else 0)
    game_env, = StepCountingGame.made
    assert game_env.steps == skip and all(not action.any() for action in game_env.actions)  # idle through it
    assert frame.step == 0 and int(frame.real[0, 0, 0]) == skip     # the frame shown is the one after the intro
    assert frame.real_score == 0.0                                   # the intro's rewards are not the dream's
    assert frame.start == ("the real game after its intro (step 50)" if skip else "the real game's first frame")


def test_a_start_from_rollout_frames_is_never_in_the_intro(tmp_path):
    """Without latents the session encodes a random frame of a rollout: never one of the zoom-in's."""
    path = tmp_path / "rollout_000000.npz"
    frames = np.repeat(np.arange(60, dtype=np.uint8)[:, None, None, None], 64, 1).repeat(64, 2).repeat(3, 3)
    save_npz(path, {"frames": frames}, compressed=True)
    steps = set()
    for seed in range(30):
        controls = DreamControls(1.0, "random", keyboard_action("carracing", ()), cap=10)
        session = dream_session(ConvVAE(Z), MDNRNN(Z, 3, 8, seed=0), "carracing", controls, seed=seed,
                                start_frames=(path,))
        steps.add(int(next(session).start.rsplit(" ", 1)[1]))
        session.close()
    assert min(steps) >= START_STEP["carracing"] and len(steps) > 1
