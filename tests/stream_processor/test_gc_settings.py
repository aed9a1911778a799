"""The collector setting applied when the container starts."""

from __future__ import annotations

import gc

import pytest

from stream_processor import app
from stream_processor.gc_settings import YOUNG_THRESHOLD, collect_young_objects_less_often


@pytest.fixture
def threshold():
    original = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*original)


def test_the_young_threshold_is_raised_and_the_older_ones_are_kept(threshold):
    gc.set_threshold(700, 12, 13)

    collect_young_objects_less_often()

    assert gc.get_threshold() == (YOUNG_THRESHOLD, 12, 13)


def test_a_higher_threshold_already_set_is_left_alone(threshold):
    gc.set_threshold(YOUNG_THRESHOLD * 2, 10, 10)

    collect_young_objects_less_often()

    assert gc.get_threshold()[0] == YOUNG_THRESHOLD * 2


def test_the_container_start_applies_it(threshold, momento_env, monkeypatch):
    for name, value in momento_env.items():
        monkeypatch.setenv(name, value)
    app.processor.cache_clear()
    try:
        app.processor()
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    finally:
        app.processor().momento.close()
        app.processor.cache_clear()
