"""What a redrive run did: one outcome per queue message, the run's counts, and the report printed by the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["BACKFILL_HINT", "MessageOutcome", "RedriveSummary"]

BACKFILL_HINT = (
    "the stream no longer holds some ranges (24-hour retention): rebuild the cache from the table with "
    "`python -m stream_processor.backfill --table NAME` (or the backfill function), then delete those messages"
)


@dataclass
class MessageOutcome:
    """What happened to one queue message."""

    message_id: str
    kind: str
    deleted: bool = False
    reason: str | None = None
    keys: dict[str, str] = field(default_factory=dict)  # cache key -> "set" / "delete" (done, or would be done)
    published: int = 0
    poison_resent: int = 0
    rechecks: int = 0  # consistent re-reads of items after their cache write (the live-table check)
    rewrites: int = 0  # writes again because an item changed between the redrive's read and its write
    backfill_needed: bool = False
    failed_keys: dict[str, str] = field(default_factory=dict)  # cache key -> why it is not resynced yet

    def to_dict(self, *, with_keys: bool = True) -> dict[str, Any]:
        """The outcome; ``with_keys=False`` (log lines) counts the cache keys instead of naming them: keys are made
        of item attribute values, which log lines never carry."""
        out: dict[str, Any] = {"messageId": self.message_id, "kind": self.kind, "deleted": self.deleted}
        if self.reason:
            out["reason"] = self.reason
        out["keys"] = self.keys if with_keys else len(self.keys)
        if self.failed_keys:
            out["failedKeys"] = self.failed_keys if with_keys else len(self.failed_keys)
        out["published"] = self.published
        out["rechecks"] = self.rechecks
        if self.rewrites:
            out["rewrites"] = self.rewrites
        if self.poison_resent:
            out["poisonResent"] = self.poison_resent
        return out


@dataclass
class RedriveSummary:
    """The run's counts (in a dry run: what would be done) and every message that stays, with its reason."""

    queue_url: str
    dry_run: bool
    messages_read: int = 0
    keys_resynced: int = 0  # distinct cache keys
    rechecks: int = 0
    rewrites: int = 0
    messages_published: int = 0
    messages_deleted: int = 0
    poison_resent: int = 0
    stopped: str | None = None
    messages: list[MessageOutcome] = field(default_factory=list)
    _keys: set[str] = field(default_factory=set, repr=False)  # distinct keys: messages can share keys

    def add(self, outcome: MessageOutcome) -> None:
        self.messages.append(outcome)
        self._keys.update(outcome.keys)
        self.keys_resynced = len(self._keys)
        self.rechecks += outcome.rechecks
        self.rewrites += outcome.rewrites
        self.messages_published += outcome.published
        self.poison_resent += outcome.poison_resent
        self.messages_deleted += outcome.deleted

    @property
    def kept(self) -> list[MessageOutcome]:
        """Messages that stay in the queue: as they were, or re-sent as poison records with the current reason."""
        return [outcome for outcome in self.messages if not outcome.deleted or outcome.poison_resent]

    @property
    def backfill_needed(self) -> bool:
        return any(outcome.backfill_needed for outcome in self.messages)

    def to_dict(self, *, with_keys: bool = True) -> dict[str, Any]:
        """The summary (the handler's response); ``with_keys=False`` for the log line (see ``MessageOutcome``)."""
        out: dict[str, Any] = {
            "queueUrl": self.queue_url,
            "dryRun": self.dry_run,
            "messagesRead": self.messages_read,
            "keysResynced": self.keys_resynced,
            "recheckReads": self.rechecks,
            "rewrites": self.rewrites,
            "messagesPublished": self.messages_published,
            "messagesDeleted": self.messages_deleted,
            "poisonResent": self.poison_resent,
            "kept": [{"messageId": o.message_id, "kind": o.kind, "reason": o.reason} for o in self.kept],
            "messages": [outcome.to_dict(with_keys=with_keys) for outcome in self.messages],
        }
        if self.stopped:
            out["stopped"] = self.stopped
        if self.backfill_needed:
            out["hint"] = BACKFILL_HINT
        return out

    def text(self) -> str:
        """A readable report for the terminal, one aligned column of counts."""
        would = "would be " if self.dry_run else ""
        rows = [
            ("messages read", self.messages_read),
            (f"keys {would}resynced", self.keys_resynced),
            ("table re-reads after writes", self.rechecks),
            (f"keys {would}written again (changed meanwhile)", self.rewrites),
            (f"messages {would}published", self.messages_published),
            (f"queue messages {would}deleted", self.messages_deleted),
            (f"poison records {would}re-sent", self.poison_resent),
            ("queue messages kept", len(self.kept)),
        ]
        width = max(len(label) for label, _ in rows) + 2
        lines = [f"Redrive of {self.queue_url}{' (dry run: nothing changed)' if self.dry_run else ''}"]
        lines += [f"  {label:<{width}}{value:>6}" for label, value in rows]
        for kept in self.kept:
            lines.append(f"    - {kept.message_id} ({kept.kind}): {kept.reason}")
            lines += [f"        {key}: {cause}" for key, cause in kept.failed_keys.items()]
        if self.stopped:
            lines.append(f"  stopped early: {self.stopped}")
        if self.backfill_needed:
            lines.append(f"  hint: {BACKFILL_HINT}")
        return "\n".join(lines)
