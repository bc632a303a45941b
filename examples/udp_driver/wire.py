"""The example's wire format: fixed 32-byte little-endian records, several per datagram.

A request datagram holds one or more ``REQUEST`` records; a reply datagram one or more ``REPLY``
records (one per request, same ``request_id``) or ``NOTICE`` records (a lease ended). Records are
numpy structured dtypes, so a burst is parsed with one ``np.frombuffer`` and written with one
``tobytes``.
"""

from __future__ import annotations

import numpy as np

#: Request operations.
ATTACH, KEEPALIVE, DETACH = 1, 2, 3
#: Record kinds of the server's datagrams.
REPLY_KIND, NOTICE_KIND = 1, 2

REQUEST = np.dtype([("op", "u1"), ("role", "u1"), ("create", "u1"), ("pad", "u1"),
                    ("request_id", "<u4"), ("stream_id", "<i8"), ("client_id", "<i8"),
                    ("lease_id", "<i8")])
REPLY = np.dtype([("kind", "u1"), ("code", "u1"), ("reason", "u1"), ("pad", "u1"),
                  ("request_id", "<u4"), ("lease_id", "<i8"), ("epoch", "<i8"),
                  ("expiry_ns", "<i8")])
NOTICE = np.dtype([("kind", "u1"), ("reason", "u1"), ("role", "u1"), ("pad", "u1"),
                   ("pad2", "<u4"), ("lease_id", "<i8"), ("stream_id", "<i8"),
                   ("time_ns", "<i8")])
RECORD = 32
assert REQUEST.itemsize == REPLY.itemsize == NOTICE.itemsize == RECORD

#: Largest number of records one datagram carries (keeps datagrams under 64 KiB).
MAX_RECORDS = 1024


def requests(n: int) -> np.ndarray:
    """``n`` zeroed request records."""
    return np.zeros(n, REQUEST)


def parse(data: bytes) -> np.ndarray:
    """The records of a datagram (any trailing partial record is ignored). The kind byte of
    a server datagram tells replies (``REPLY_KIND``) from notices (``NOTICE_KIND``)."""
    return np.frombuffer(data, np.uint8, len(data) // RECORD * RECORD)
