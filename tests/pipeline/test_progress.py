"""Time so far and left: guessed rates until a stage of the kind has run, then measured ones."""

from coa.pipeline.progress import Progress, format_duration


def test_durations_read_as_minutes_and_seconds():
    assert [format_duration(s) for s in (9.4, 65, 3725)] == ["9s", "1m05s", "1h02m05s"]


def test_time_left_uses_the_guess_until_a_stage_kind_is_measured():
    progress = Progress({"sft2": 0.1, "rl2": 2.0})
    left = [("sft2", 1200), ("rl2", 20)]
    assert progress.seconds_left(left) == 0.1 * 1200 + 2.0 * 20  # 160 s
    progress.record("sft2", steps=1200, seconds=300.0)  # 0.25 s/step measured here
    assert progress.seconds_left(left) == 0.25 * 1200 + 2.0 * 20  # 340 s
    assert progress.seconds_left([("sft3", 100)]) == 0.0  # a kind without a guess adds nothing


def test_the_progress_line_says_both(monkeypatch):
    progress = Progress({"rl1": 1.5}, start=1000.0)
    monkeypatch.setattr("time.time", lambda: 1075.0)
    assert progress.line([("rl1", 20)]) == "1m15s so far, ~30s of training left"
