"""The background removals (pure logic: no engine)."""

from __future__ import annotations

import logging
import os
import threading

import pytest

from ai_computer.backends import removals


def test_a_handed_over_removal_is_pending_until_done_and_waited_for() -> None:
    release = threading.Event()
    done: list[str] = []

    def remove(name: str) -> None:
        release.wait(10)
        done.append(name)

    removals.submit("sandbox-a", remove, "a")
    assert "sandbox-a" in removals.pending()
    assert removals.wait(["sandbox-a"], timeout=0.05) is False
    assert removals.wait(["sandbox-other"], timeout=0.05) is True  # nothing of it pending
    release.set()
    assert removals.wait(["sandbox-a"], timeout=10) is True
    assert done == ["a"]
    assert "sandbox-a" not in removals.pending()


def test_a_failed_removal_is_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    def remove() -> None:
        raise RuntimeError("engine gone")

    with caplog.at_level(logging.WARNING, logger="ai_computer.backends.removals"):
        future = removals.submit("sandbox-b", remove)
        assert removals.wait(["sandbox-b"], timeout=10)
    assert future.result() is None
    assert "removing sandbox sandbox-b in the background failed: engine gone" in caplog.text


def test_a_forked_child_runs_its_own_removals() -> None:
    removals.submit("sandbox-parent", lambda: None)  # the parent's executor has its threads
    assert removals.wait(timeout=10)
    pid = os.fork()
    if pid == 0:  # the child: its removal must run, in threads of its own
        done: list[int] = []
        removals.submit("sandbox-child", done.append, 1)
        os._exit(0 if removals.wait(["sandbox-child"], timeout=10) and done == [1] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
