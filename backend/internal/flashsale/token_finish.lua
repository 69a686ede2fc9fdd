-- Last step for a reservation (sale slot), after the shard has settled the unit.
-- KEYS[1] token, KEYS[2] deadlines, KEYS[3] sale stats, KEYS[4] sold-out flag
-- ARGV[1] mode "paid" or "expired", ARGV[2] token id, ARGV[3] tombstone TTL (ms) of an expired token
-- paid:    the order is written: the token is deleted (only now), the deadline removed, ordered + 1.
-- expired: the unit is back in its shard: the token becomes "returned" and is kept as a tombstone
--          for the TTL (so a late checkout answers "expired"), the deadline removed,
--          expired_returned + 1, the return epoch bumped and the sold-out flag cleared.
-- Counters move only on the state transition, so a repeated call changes nothing.
-- Returns "ok" or "noop".
local st = redis.call('HGET', KEYS[1], 'state')
if ARGV[1] == 'paid' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  if st ~= 'paid' then
    return 'noop'
  end
  redis.call('DEL', KEYS[1])
  redis.call('HINCRBY', KEYS[3], 'ordered', 1)
  return 'ok'
end
if ARGV[1] ~= 'expired' then
  return redis.error_reply('token_finish: unknown mode ' .. tostring(ARGV[1]))
end
if st ~= 'expired' then
  if st == nil or st == false or st == 'returned' then
    redis.call('ZREM', KEYS[2], ARGV[2])
  end
  return 'noop'
end
redis.call('HSET', KEYS[1], 'state', 'returned')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'expired_returned', 1)
redis.call('HINCRBY', KEYS[3], 'epoch', 1)
redis.call('DEL', KEYS[4])
return 'ok'
