-- Moves a claimed unit on, once (shard slot).
-- KEYS[1] stock shard, KEYS[2] shard claims, KEYS[3] shard stats
-- ARGV[1] ticket, ARGV[2] mode:
--   order   r -> o: paid. Returns "ok" (moved now), "done" (moved before) or "bad:<state>".
--   return  r -> x: expired, the unit goes back. Returns the same as order.
--   close   the ticket was decided without a win (the caller read that decision, which is final):
--           r -> u, the unit goes back ("released"); no marker -> "-", so no claim for the ticket
--           can ever be made here later ("closed"); "u" or "-" stay ("u", "-" ). A ticket
--           decided without a win never has "o" or "x" ("bad:<state>").
-- Only the close mode gives a unit back without a token, and only for a ticket whose decision is
-- not a win: a won ticket's unit leaves its claim through order or return alone.
local st = redis.call('HGET', KEYS[2], ARGV[1])
local mode = ARGV[2]
if mode == 'close' then
  if not st then
    redis.call('HSET', KEYS[2], ARGV[1], '-')
    return 'closed'
  end
  if st == 'u' or st == '-' then
    return st
  end
  if st ~= 'r' then
    return 'bad:' .. st
  end
  redis.call('HSET', KEYS[2], ARGV[1], 'u')
  redis.call('INCR', KEYS[1])
  redis.call('HINCRBY', KEYS[3], 'reserved', -1)
  redis.call('HINCRBY', KEYS[3], 'released', 1)
  return 'released'
end
local to = ({order = 'o', ['return'] = 'x'})[mode]
if not to then
  return redis.error_reply('shard_settle: unknown mode ' .. tostring(mode))
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
else
  redis.call('INCR', KEYS[1])
  redis.call('HINCRBY', KEYS[3], 'returned', 1)
end
return 'ok'
