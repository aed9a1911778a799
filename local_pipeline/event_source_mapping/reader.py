"""Reading the stream for the mapping: shard discovery and lineage, iterators, and records routed to their lanes."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from stream_processor.stream_records import lambda_record

from .filtering import FilterCriteria
from .lanes import Shard
from .reports import MappingReport
from .settings import MappingSettings

__all__ = ["StreamReader"]

GET_RECORDS_LIMIT = 1000  # DynamoDB Streams returns at most 1,000 records per GetRecords call


class StreamReader:
    """The stream's shards as the mapping knows them, read into lanes with ``DescribeStream`` / ``GetRecords``."""

    def __init__(self, stream_arn: str, settings: MappingSettings, streams_client: Any) -> None:
        self.stream_arn = stream_arn
        self.shards: dict[str, Shard] = {}
        self._settings = settings
        self._filter = FilterCriteria.from_patterns(settings.filter_patterns)
        self._streams = streams_client
        self._discovered = False

    def refresh(self) -> set[str]:
        """List the stream's shards, starting to track new ones; returns the ids listed."""
        listed: set[str] = set()
        request: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self._streams.describe_stream(**request)["StreamDescription"]
            for shard in description.get("Shards", []):
                shard_id = shard["ShardId"]
                listed.add(shard_id)
                if shard_id not in self.shards:
                    # The starting position applies to the shards open at creation; later (child) shards are
                    # read from their start, as Lambda does after a split.
                    start = self._settings.starting_position if not self._discovered else "TRIM_HORIZON"
                    factor = self._settings.parallelization_factor
                    state = Shard.new(shard_id, shard.get("ParentShardId"), start, factor)
                    state.iterator = self._shard_iterator(state)
                    self.shards[shard_id] = state
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            request["ExclusiveStartShardId"] = last
        self._discovered = True
        return listed

    def readable(self, shard: Shard, listed: set[str]) -> bool:
        """A child shard is read only once its parent is finished (or gone from the stream)."""
        parent = shard.parent_shard_id
        if parent is None or parent not in listed or parent not in self.shards:
            return True
        return self.shards[parent].finished

    def fill(self, shard: Shard, report: MappingReport) -> None:
        """Read on until each lane has a full batch, within the look-ahead, or the stream has nothing more now.

        Records no filter matches are counted in ``report`` and checkpointed, never queued.
        """
        batch_size = self._settings.batch_size
        while shard.wants_records(batch_size):
            if shard.iterator is None:
                shard.iterator = self._shard_iterator(shard)
            limit = min(GET_RECORDS_LIMIT, batch_size * len(shard.lanes) - shard.buffered)
            try:
                response = self._streams.get_records(ShardIterator=shard.iterator, Limit=limit)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ExpiredIteratorException":
                    raise
                shard.iterator = None  # iterators live 15 minutes; resume after the last record read
                continue
            records = response.get("Records", [])
            for raw in records:
                record = lambda_record(raw, self.stream_arn)
                delivered = self._filter.matches(record)
                report.records_filtered += not delivered
                shard.add(record, delivered=delivered)
            if records:
                shard.last_read = records[-1]["dynamodb"]["SequenceNumber"]
            shard.iterator = response.get("NextShardIterator")
            shard.ended = shard.iterator is None
            if not records:
                break

    def _shard_iterator(self, shard: Shard) -> str:
        request: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.shard_id}
        if shard.last_read is None:
            request["ShardIteratorType"] = shard.start
        else:
            request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.last_read)
        return self._streams.get_shard_iterator(**request)["ShardIterator"]
