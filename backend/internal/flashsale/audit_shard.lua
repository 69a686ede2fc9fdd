-- Reads one shard for the audit in one atomic step (shard slot; writes nothing): its stock, its
-- counters and the number of claim markers in each state, so the audit can check
-- initial_i == stock_i + claims r + claims o and compare every counter with the markers exactly,
-- whatever moves while the other shards are read.
-- KEYS[1] stock shard, KEYS[2] shard claims, KEYS[3] shard stats
-- Returns {stock, reserved, ordered, returned, released, r, o, x, u, -, other}.
local s = redis.call('HMGET', KEYS[3], 'reserved', 'ordered', 'returned', 'released')
local n = {r = 0, o = 0, x = 0, u = 0, ['-'] = 0}
local other = 0
for _, st in ipairs(redis.call('HVALS', KEYS[2])) do
  if n[st] then
    n[st] = n[st] + 1
  else
    other = other + 1
  end
end
return {redis.call('GET', KEYS[1]) or '0', s[1] or '0', s[2] or '0', s[3] or '0', s[4] or '0',
  n.r, n.o, n.x, n.u, n['-'], other}
