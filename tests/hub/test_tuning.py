"""The interpreter tuned for a sync only within ``tuned_for_sync``, and restored on the way out."""

import gc
import sys

import pytest

from hub.sync.tuning import SWITCH_INTERVAL, YOUNG_COLLECTION_THRESHOLD, tuned_for_sync


@pytest.fixture
def interpreter():
    """The collector's and the GIL's settings, put back after the test whatever it did."""
    state = gc.get_threshold(), sys.getswitchinterval(), gc.get_freeze_count()
    yield state
    thresholds, interval, frozen = state
    if gc.get_freeze_count() and not frozen:
        gc.unfreeze()
    gc.set_threshold(*thresholds)
    sys.setswitchinterval(interval)


def test_within_the_block_young_objects_are_collected_less_often_and_the_gil_handed_over_sooner(interpreter):
    thresholds, interval, _ = interpreter
    with tuned_for_sync():
        young, middle, oldest = gc.get_threshold()
        assert young >= YOUNG_COLLECTION_THRESHOLD and (middle, oldest) == thresholds[1:]
        assert gc.get_freeze_count() > 0 and gc.isenabled()
        assert sys.getswitchinterval() == pytest.approx(min(SWITCH_INTERVAL, interval)) and SWITCH_INTERVAL < 0.005


def test_on_exit_the_interpreter_is_as_it_was(interpreter):
    gc.set_threshold(1234, 11, 12)
    sys.setswitchinterval(0.004)
    assert gc.get_freeze_count() == 0
    with tuned_for_sync():
        pass
    assert gc.get_threshold() == (1234, 11, 12)
    assert sys.getswitchinterval() == pytest.approx(0.004)
    assert gc.get_freeze_count() == 0 and gc.isenabled()


def test_the_interpreter_is_restored_when_the_block_raises(interpreter):
    thresholds, interval, _ = interpreter
    with pytest.raises(RuntimeError, match="boom"), tuned_for_sync():
        raise RuntimeError("boom")
    assert (gc.get_threshold(), sys.getswitchinterval(), gc.get_freeze_count()) == (thresholds, interval, 0)


def test_nested_blocks_and_a_heap_frozen_before_are_left_as_found(interpreter):
    thresholds, interval, _ = interpreter
    with tuned_for_sync():
        frozen = gc.get_freeze_count()
        with tuned_for_sync():
            assert gc.get_freeze_count() == frozen  # nothing frozen twice
        assert gc.get_freeze_count() == frozen and gc.get_threshold()[0] >= YOUNG_COLLECTION_THRESHOLD
    assert (gc.get_threshold(), sys.getswitchinterval(), gc.get_freeze_count()) == (thresholds, interval, 0)
    gc.freeze()  # someone else's frozen heap
    try:
        held = gc.get_freeze_count()
        with tuned_for_sync():
            pass
        assert gc.get_freeze_count() == held  # still frozen: not ours to thaw
    finally:
        gc.unfreeze()
