"""What the gate tells the pollers: writes wake stream pollers, mapping and shard changes the manager."""

from __future__ import annotations

import threading

import pytest

from tapharness.sandbox import activity


@pytest.mark.parametrize(("signer", "method", "path", "target", "kind"), [
    ("kinesis", "POST", "/", "Kinesis_20131202.PutRecords", "kinesis"),
    ("dynamodb", "POST", "/", "DynamoDB_20120810.TransactWriteItems", "dynamodb"),
    ("dynamodb", "POST", "/", "DynamoDB_20120810.UpdateItem", "dynamodb"),
])
def test_a_write_wakes_the_pollers_of_its_kind(signer, method, path, target, kind):
    before = activity.WRITES[kind].generation
    activity.served(signer, method, path, target)
    assert activity.WRITES[kind].generation == before + 1


@pytest.mark.parametrize("target", ["Kinesis_20131202.GetRecords", "Kinesis_20131202.DescribeStreamSummary",
                                    "Kinesis_20131202.ListShards", "Kinesis_20131202.SubscribeToShard"])
def test_a_read_wakes_nobody(target):
    before = activity.WRITES["kinesis"].generation, activity.MAPPINGS.generation
    activity.served("kinesis", "POST", "/", target)
    assert (activity.WRITES["kinesis"].generation, activity.MAPPINGS.generation) == before


@pytest.mark.parametrize(("signer", "method", "path", "target"), [
    ("lambda", "POST", "/2015-03-31/event-source-mappings/", ""),
    ("lambda", "PUT", "/2015-03-31/event-source-mappings/1234", ""),
    ("lambda", "DELETE", "/2015-03-31/functions/fn", ""),
    ("kinesis", "POST", "/", "Kinesis_20131202.UpdateShardCount"),
    ("dynamodb", "POST", "/", "DynamoDB_20120810.UpdateTable"),
])
def test_a_change_to_mappings_or_shards_wakes_the_manager(signer, method, path, target):
    before = activity.MAPPINGS.generation
    activity.served(signer, method, path, target)
    assert activity.MAPPINGS.generation == before + 1


def test_an_invoke_does_not_wake_the_manager():
    before = activity.MAPPINGS.generation
    activity.served("lambda", "POST", "/2015-03-31/functions/fn/invocations", "")
    assert activity.MAPPINGS.generation == before


def test_a_signal_given_between_looking_and_waiting_is_not_missed():
    signal = activity.Signal()
    seen = signal.generation
    signal.notify()  # after the poller looked, before it waits
    assert signal.wait(seen, timeout=30) == seen + 1


def test_a_waiter_is_woken_by_the_next_signal():
    signal = activity.Signal()
    seen = signal.generation
    woke: list[int] = []
    waiter = threading.Thread(target=lambda: woke.append(signal.wait(seen, timeout=30)))
    waiter.start()
    signal.notify()
    waiter.join(timeout=30)
    assert woke == [seen + 1]
