"""tests/modules' helpers (rl_runs.py) importable by name, and a reward any random model can climb."""

import sys
from pathlib import Path

import pytest

from coa.rewards.base import REWARDS

sys.path.insert(0, str(Path(__file__).parent))

# the share of the letter "e" in what the policy writes
REWARD_MODULE = '''
from coa.rewards.base import Reward

class ShareOfE(Reward):
    name = "test_share_of_e"

    def score(self, response, golds, prompt):
        letters = [c for c in response if c.isalpha()]
        return sum(c == "e" for c in letters) / max(1, len(letters))
'''


@pytest.fixture
def reward_on_path(tmp_path, monkeypatch):
    package = tmp_path / "user_rewards"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "share.py").write_text(REWARD_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(REWARDS, "classes", dict(REWARDS.registered()))  # the test's reward stays the test's
    return "user_rewards.share.ShareOfE", tmp_path
