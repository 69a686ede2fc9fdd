-- Moves a claimed unit on, once (shard slot).
-- KEYS[1] stock shard, KEYS[2] shard claims, KEYS[3] shard stats
-- ARGV[1] ticket, ARGV[2] mode: "order" (r -> o: paid), "return" (r -> x: expired, the unit goes
-- back to the shard) or "release" (r -> u: a claim the ticket may not keep, the unit goes back)
-- Returns "ok" (moved now), "done" (moved before) or "bad:<state>" (the claim is elsewhere).
local st = redis.call('HGET', KEYS[2], ARGV[1])
local to = ({order = 'o', ['return'] = 'x', release = 'u'})[ARGV[2]]
if not to then
  return redis.error_reply('shard_settle: unknown mode ' .. tostring(ARGV[2]))
end
if st == to then
  return 'done'
end
if st ~= 'r' then
  return 'bad:' .. tostring(st)
end
redis.call('HSET', KEYS[2], ARGV[1], to)
redis.call('HINCRBY', KEYS[3], 'reserved', -1)
if to == 'o' then
  redis.call('HINCRBY', KEYS[3], 'ordered', 1)
elseif to == 'x' then
  redis.call('INCR', KEYS[1])
  redis.call('HINCRBY', KEYS[3], 'returned', 1)
else
  redis.call('INCR', KEYS[1])
  redis.call('HINCRBY', KEYS[3], 'released', 1)
end
return 'ok'
