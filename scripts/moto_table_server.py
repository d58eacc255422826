"""moto's server, with its DynamoDB transactions made linear in the items they touch.

For the memory benchmark (scripts/rss.sh) only; the tests use moto as it is.

moto 5.2 snapshots every table a TransactWriteItems names with `copy.deepcopy`, so that it
can put the table back if the transaction is cancelled: every status write copied the whole
table, and the table's stream shard with every stream record since the table was created. With
500 to 1,000 releases one moto process grew to 8-9 GiB, spent all its time copying, and the
controller's store calls timed out. Here a transaction saves only the items it names (a copy
of each, or that it was absent) and a cancelled one puts exactly those back, and removes the
stream records it had appended; so what a client sees is what moto would show.

usage: python moto_table_server.py [moto_server arguments...]
"""

import copy
import sys
import threading
import types

import moto.dynamodb.models as dynamodb
from moto.dynamodb.models.table import Table
from moto.server import main

# While a transaction runs in this thread, moto's whole-table snapshot is skipped (the table
# itself stands in for its copy, so moto's own rollback changes nothing).
_in_transaction = threading.local()


def _deepcopy(value, memo=None):
    if isinstance(value, Table) and getattr(_in_transaction, "active", False):
        return value
    return copy.deepcopy(value, memo)


# The module's own `copy.deepcopy` calls (the transaction's snapshot among them).
dynamodb.copy = types.SimpleNamespace(deepcopy=_deepcopy, copy=copy.copy)

_transact_write_items = dynamodb.DynamoDBBackend.transact_write_items


def _key_of(table, op_type, op):
    if op_type == "Put":
        return {name: op["Item"][name] for name in table.table_key_attrs if name in op["Item"]}
    return op.get("Key")


def transact_write_items(self, transact_items):
    saved = []  # (table, hash key, range key, a copy of the item or None)
    shards = {}
    for entry in transact_items:
        for op_type, op in entry.items():
            if not isinstance(op, dict) or op.get("TableName") not in self.tables:
                continue
            table = self.tables[op["TableName"]]
            key = _key_of(table, op_type, op)
            if not key:
                continue
            try:
                hash_key, range_key = self.get_keys_value(table, key)
            except Exception:  # moto's own validation reports it
                continue
            item = table.get_item(hash_key, range_key)
            saved.append((table, hash_key, range_key, copy.deepcopy(item)))
            if table.stream_shard is not None:
                shards[id(table)] = (table.stream_shard, len(table.stream_shard.items))
    _in_transaction.active = True
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for table, hash_key, range_key, item in reversed(saved):
            if range_key is not None:
                if item is None:
                    table.items.get(hash_key, {}).pop(range_key, None)
                else:
                    table.items[hash_key][range_key] = item
            elif item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
        for shard, length in shards.values():
            del shard.items[length:]
        raise
    finally:
        _in_transaction.active = False


dynamodb.DynamoDBBackend.transact_write_items = transact_write_items

if __name__ == "__main__":
    sys.exit(main())
