"""What decisions and responses leave to write (audit rows, request counts, token usage), written in batches.

A check then costs one read (the key with its counts) instead of a read and a write transaction; the
app flushes every `flush_seconds` (config; 0.1 s) and once more at shutdown, so a clean stop loses nothing. A crash
loses at most the last interval's audit rows and counts. Decisions add what is still pending here to
the database's counts, so this process's rate limits and token quotas stay exact; other processes
(replicas on PostgreSQL) see them at most one interval later.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field

from medllama.gate.repository import Repository

log = logging.getLogger(__name__)

FLUSH_ROWS = 1000  # a burst larger than this is written at once rather than held


@dataclass
class Batch:
    events: list[dict] = field(default_factory=list)  # audit rows; a written one gets its "id"
    requests: Counter = field(default_factory=Counter)  # (key_id, minute) -> allowed requests
    usage: dict = field(default_factory=dict)  # (key_id, model, day) -> [requests, prompt, completion]
    tokens: Counter = field(default_factory=Counter)  # (key_id, day) -> prompt + completion
    audit_tokens: list[tuple[dict, int, int]] = field(default_factory=list)  # (event, prompt, completion)

    def __len__(self) -> int:
        return len(self.events) + len(self.audit_tokens)

    def merge(self, later: Batch) -> None:
        self.events += later.events
        self.requests.update(later.requests)
        for k, (n, p, c) in later.usage.items():
            old = self.usage.setdefault(k, [0, 0, 0])
            old[0], old[1], old[2] = old[0] + n, old[1] + p, old[2] + c
        self.tokens.update(later.tokens)
        self.audit_tokens += later.audit_tokens


class Ledger:
    """Pending writes of one process; `flush` writes them in one transaction (thread-safe, one flush at a time)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._lock = threading.Lock()  # guards the two batches (a networked database flushes from a thread)
        self._flushing = threading.Lock()
        self._open = Batch()  # filled by requests
        self._writing = Batch()  # being written: still counted until committed

    def requests(self, key_id: int, minute: int) -> int:
        """Allowed requests of the key in `minute` not yet in the database."""
        k = (key_id, minute)
        return self._open.requests[k] + self._writing.requests[k]

    def tokens(self, key_id: int, day: str) -> int:
        """Tokens the key used on `day` not yet in the database."""
        k = (key_id, day)
        return self._open.tokens[k] + self._writing.tokens[k]

    def decision(self, event: dict, allowed_key_id: int | None, minute: int) -> bool:
        """Queue a decision's audit row (and count the request if allowed); True when a flush is due now."""
        with self._lock:
            self._open.events.append(event)
            if allowed_key_id is not None:
                self._open.requests[(allowed_key_id, minute)] += 1
            return len(self._open) >= FLUSH_ROWS

    def usage(self, key_id: int, model: str, day: str, prompt: int, completion: int, event: dict | None) -> bool:
        """Queue a response's tokens (and their audit row's token counts); True when a flush is due now."""
        with self._lock:
            b = self._open
            row = b.usage.setdefault((key_id, model, day), [0, 0, 0])
            row[0], row[1], row[2] = row[0] + 1, row[1] + prompt, row[2] + completion
            b.tokens[(key_id, day)] += prompt + completion
            if event is not None:
                b.audit_tokens.append((event, prompt, completion))
            return len(b) >= FLUSH_ROWS

    def flush(self) -> int:
        """Write everything pending; returns the number of audit rows written. A failed write is kept for the next."""
        with self._flushing:
            with self._lock:
                self._writing, self._open = self._open, Batch()
            batch = self._writing
            if not (batch.events or batch.requests or batch.usage):
                return 0
            try:
                self.repo.write_batch(batch)
            except Exception:
                log.exception("gate ledger: writing %d audit rows failed; kept for the next flush", len(batch.events))
                with self._lock:
                    batch.merge(self._open)
                    self._open, self._writing = batch, Batch()
                raise
            with self._lock:
                self._writing = Batch()
            return len(batch.events)
