"""moto's server, with the local stack's tuning of its SQS model.

moto recomputes every queue's ApproximateNumberOf* counts several times per message sent (its queue
attributes include them, and sending reads an attribute), and each count asks every held message
whether it is visible or delayed through a datetime round trip. At the depths the benchmarks use
(thousands of messages) a SendMessageBatch then takes seconds, which measures moto, not the code.
The patch keeps the semantics and changes two things: the visibility check is a float comparison
(Unix milliseconds, the same comparisons), and the three counts in a queue's attributes are computed
when they are read (GetQueueAttributes), not each time a send reads another attribute. Counts stay
exact. Third, the attribute names a queue's attributes are read by are converted to Python names
once, not on every read (`camelcase_to_underscores` is a pure function of the name; unmemoized it
was 60% of a SendMessageBatch, which reads a queue's attributes six times per message).

DynamoDB answers each request atomically; moto's server runs requests on threads and checks a
condition expression before it applies the write, without a lock, so two conditional writes racing on
one item could both succeed (which DynamoDB never allows). Every DynamoDB request is therefore
handled under one lock here: per-item atomicity (and a transaction's all-or-nothing) as the service
gives it, while SQS long polls and S3 transfers keep running concurrently.

Run as: python local/stack/moto/server.py -H 127.0.0.1 -p PORT (the arguments of moto_server).
"""

import functools
import sys
import threading
import time

from moto.dynamodb import responses as dynamodb_responses
from moto.sqs import models


def _now_ms() -> float:
    return time.time() * 1000.0


def _visible(self) -> bool:
    return _now_ms() > self.visible_at


def _delayed(self) -> bool:
    return _now_ms() < self.delayed_until


models.camelcase_to_underscores = functools.lru_cache(maxsize=1024)(
    models.camelcase_to_underscores
)
models.Message.visible = property(_visible)
models.Message.delayed = property(_delayed)

_COUNTS = {
    "ApproximateNumberOfMessages": "approximate_number_of_messages",
    "ApproximateNumberOfMessagesDelayed": "approximate_number_of_messages_delayed",
    "ApproximateNumberOfMessagesNotVisible": "approximate_number_of_messages_not_visible",
}
_skip_counts = threading.local()


def _counted(real):
    def get(self):
        if getattr(_skip_counts, "on", False):
            return 0
        return real.fget(self)

    return property(get)


for _prop in _COUNTS.values():
    setattr(models.Queue, _prop, _counted(getattr(models.Queue, _prop)))


class _Attributes(dict):
    """A queue's attributes whose counts are computed when read."""

    def __getitem__(self, name):
        if name in _COUNTS and dict.__contains__(self, name):
            return getattr(self.queue, _COUNTS[name])
        return dict.__getitem__(self, name)

    def get(self, name, default=None):
        return self[name] if name in self else default

    def items(self):
        return [(name, self[name]) for name in self.keys()]

    def values(self):
        return [self[name] for name in self.keys()]


_original_attributes = models.Queue.attributes.fget


def _attributes(self):
    _skip_counts.on = True
    try:
        base = _original_attributes(self)
    finally:
        _skip_counts.on = False
    lazy = _Attributes(base)
    lazy.queue = self
    return lazy


models.Queue.attributes = property(_attributes)

_dynamodb_lock = threading.Lock()
_dynamodb_call_action = dynamodb_responses.DynamoHandler.call_action


def _atomic_call_action(self):
    with _dynamodb_lock:
        return _dynamodb_call_action(self)


dynamodb_responses.DynamoHandler.call_action = _atomic_call_action

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main())
