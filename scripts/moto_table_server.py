"""moto's server, with its DynamoDB transactions made linear in the items they touch.

For the memory benchmark (scripts/rss.sh) only; the tests use moto as it is.

moto 5.2 snapshots every table a TransactWriteItems names with `copy.deepcopy`, so that it
can put the table back if the transaction is cancelled. The table holds its stream shard,
which holds every stream record since the table was created: each status write copied the
whole history of the table. With 500 releases that took one moto process to 8 GiB and made
the controller's store calls time out. Here the snapshot leaves the stream shard out (the
copy shares it), and a cancelled transaction removes the records it had appended, so what a
client sees is unchanged: the items and the stream are as moto would leave them.

usage: python moto_table_server.py [moto_server arguments...]
"""

import copy
import sys
import types

import moto.dynamodb.models as dynamodb
from moto.dynamodb.models.table import Table
from moto.server import main


def _deepcopy(value, memo=None):
    """copy.deepcopy, except that a table's stream shard is shared, not copied."""
    memo = {} if memo is None else memo
    if isinstance(value, Table) and getattr(value, "stream_shard", None) is not None:
        memo[id(value.stream_shard)] = value.stream_shard
    return copy.deepcopy(value, memo)


# The module's own `copy.deepcopy` calls (the transaction's snapshot among them).
dynamodb.copy = types.SimpleNamespace(deepcopy=_deepcopy, copy=copy.copy)

_transact_write_items = dynamodb.DynamoDBBackend.transact_write_items


def transact_write_items(self, transact_items):
    names = {
        op.get("TableName") for item in transact_items for op in item.values() if isinstance(op, dict)
    }
    shards = {
        name: self.tables[name].stream_shard
        for name in names
        if name in self.tables and self.tables[name].stream_shard is not None
    }
    lengths = {name: len(shard.items) for name, shard in shards.items()}
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        # moto put the snapshot back; it shares the shard, whose new records go too.
        for name, shard in shards.items():
            del shard.items[lengths[name] :]
            if name in self.tables:
                self.tables[name].stream_shard = shard
        raise


dynamodb.DynamoDBBackend.transact_write_items = transact_write_items

if __name__ == "__main__":
    sys.exit(main())
