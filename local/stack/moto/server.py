"""moto's server, with the local stack's tuning of its SQS model.

moto recomputes every queue's ApproximateNumberOf* counts several times per message sent (its queue
attributes include them, and sending reads an attribute), and each count asks every held message
whether it is visible or delayed through a datetime round trip. At the depths the benchmarks use
(thousands of messages) a SendMessageBatch then takes seconds, which measures moto, not the code.
The patch keeps the semantics (Unix milliseconds, the same comparisons) and makes that check a float
comparison: the counts stay exact, about fifty times cheaper.

Run as: python local/stack/moto/server.py -H 127.0.0.1 -p PORT (the arguments of moto_server).
"""

import sys
import time

from moto.sqs import models


def _now_ms() -> float:
    return time.time() * 1000.0


def _visible(self) -> bool:
    return _now_ms() > self.visible_at


def _delayed(self) -> bool:
    return _now_ms() < self.delayed_until


models.Message.visible = property(_visible)
models.Message.delayed = property(_delayed)

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main())
