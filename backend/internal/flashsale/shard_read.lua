-- Reads a shard's stock and counters in one atomic step (shard slot; writes nothing), so a ledger
-- summed over shards always balances whatever moves between the reads of different shards.
-- KEYS[1] stock shard, KEYS[2] shard stats
-- Returns {stock, reserved, ordered, returned, released}.
local s = redis.call('HMGET', KEYS[2], 'reserved', 'ordered', 'returned', 'released')
return {redis.call('GET', KEYS[1]) or '0', s[1] or '0', s[2] or '0', s[3] or '0', s[4] or '0'}
