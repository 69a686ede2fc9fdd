-- Takes one unit from a stock shard for a ticket, at most once per ticket and shard (shard slot).
-- KEYS[1] stock shard (integer), KEYS[2] shard claims (ticket -> state), KEYS[3] shard stats
-- ARGV[1] ticket
-- Claim states: r reserved, o ordered, x expired and returned, u released, - seen empty.
-- A ticket that found this shard empty once keeps finding it empty ("-"), so two workers that
-- process the same ticket at once walk the shards in the same order and stop at the same claim:
-- a ticket can never hold units in two shards.
-- Returns {"claimed"|"empty", state before the call ("new" when none), stock after}.
local st = redis.call('HGET', KEYS[2], ARGV[1])
if st then
  local left = redis.call('GET', KEYS[1]) or '0'
  if st == 'r' or st == 'o' or st == 'x' then
    return {'claimed', st, left}
  end
  return {'empty', st, left}
end
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  local left = redis.call('DECR', KEYS[1])
  redis.call('HSET', KEYS[2], ARGV[1], 'r')
  redis.call('HINCRBY', KEYS[3], 'reserved', 1)
  return {'claimed', 'new', tostring(left)}
end
redis.call('HSET', KEYS[2], ARGV[1], '-')
return {'empty', 'new', '0'}
