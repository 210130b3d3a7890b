"""The harness itself: a refusal it accepts, and the failures it must catch."""

from __future__ import annotations

import pytest

from .conftest import Workspace
from .harness import Run, assert_refused


def test_wrong_key_is_a_clean_refusal(ws: Workspace) -> None:
    before = ws.snapshot()
    bad = "sk_test_notTheRightKeyAtAll0000"
    ws.env["HOSTILE_ACME_KEY"] = bad
    result = ws.cli("sync", "acme")
    assert_refused(
        result, code=3, mentions=["acme", "401"], before=before, roots=[ws.root], keys=[bad]
    )


def test_harness_catches_a_traceback_and_a_changed_file(ws: Workspace) -> None:
    before = ws.snapshot()
    with pytest.raises(AssertionError, match="Traceback"):
        assert_refused(
            Run(2, "Traceback (most recent call last):\nfix: x"),
            code=2,
            mentions=[],
            before=before,
            roots=[ws.root],
        )
    (ws.root / "new.txt").write_text("x")
    with pytest.raises(AssertionError, match="files changed"):
        assert_refused(Run(2, "bad\n  fix: y"), code=2, mentions=[], before=before, roots=[ws.root])
