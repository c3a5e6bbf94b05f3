"""The swap that warm_actors.py and registry_cache.py confine their private Tune names with."""

from __future__ import annotations

import threading

import pytest

from raytune_k8s._tune.confined_patch import ConfinedPatch


class Target:
    def get(self) -> str:
        return "class"


def test_names_are_replaced_while_any_block_is_open_and_put_back_as_they_were():
    target = Target()
    target.own = "own"
    patch = ConfinedPatch(lambda: target, {"get": lambda: "patched", "own": "patched"}, missing="{reason}")
    with patch.applied() as outer:
        assert outer and target.get() == "patched" and target.own == "patched"
        assert patch.original("own") == "own" and patch.original("get")() == "class"
        with patch.applied():
            pass
        assert target.get() == "patched"  # the inner block's end does not undo the outer's swap
    assert target.get() == "class" and "get" not in vars(target)  # the class's method shows again
    assert target.own == "own"


def test_the_block_sets_its_thread_local_values_and_puts_them_back():
    local = threading.local()
    patch = ConfinedPatch(lambda: Target, {"get": lambda self: "patched"}, missing="{reason}")
    seen_elsewhere: list = []
    with patch.applied(local, limit=3):
        with patch.applied(local, limit=5):
            assert local.limit == 5 and Target().get() == "patched"
        assert local.limit == 3
        thread = threading.Thread(target=lambda: seen_elsewhere.append(getattr(local, "limit", "unset")))
        thread.start()
        thread.join()
    assert local.limit is None and seen_elsewhere == ["unset"] and Target().get() == "class"


def test_a_missing_name_warns_once_and_replaces_nothing():
    target = Target()
    patch = ConfinedPatch(lambda: target, {"get": lambda: "patched", "gone": 1}, missing="not patched ({reason})")
    with pytest.warns(RuntimeWarning, match="not patched") as caught:
        for _ in range(2):
            with patch.applied() as applied:
                assert not applied and target.get() == "class"
    assert len(caught) == 1 and "get" not in vars(target)
