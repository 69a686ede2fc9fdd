-- Ends a ticket without a win, and manages the sold-out flag (sale slot).
-- KEYS[1] result, KEYS[2] sale stats, KEYS[3] in-flight per user, KEYS[4] queue, KEYS[5] sold-out flag,
-- KEYS[6] closing (tickets decided without a win whose shard claims are still to be closed)
-- ARGV[1] mode, ARGV[2] ticket, ARGV[3] return epoch read before the shards were probed,
-- ARGV[4] lost reason, ARGV[5] now (unix ms), ARGV[6] result TTL (ms)
-- Modes:
--   flag      set the sold-out flag if no unit went back to a shard since the epoch was read
--   sold_out  the ticket ends sold_out (every shard was found empty by this ticket's walk, which
--             left a "-" marker in each, so no claim for it can follow) and the flag is set as in
--             flag mode
--   lost      the ticket ends lost with the reason, and goes into the closing set in the same
--             call: whoever decided it (or the sweep, should that one die) then closes its claim
--             in every shard (claims_closed.lua), giving back a unit a worker took for it
-- The epoch counts every unit put back into a shard (expiry returns and releases). Whoever puts a
-- unit back bumps it and clears the flag after the unit is in the shard, so a flag set from a
-- probe that raced with a return is either refused here or cleared right after.
-- Returns the status this call gave the ticket ("lost" or "sold_out"), "done" when it had a final
-- status already (nothing is changed then), "missing" for an unknown ticket, or "flag"/"noflag"
-- in flag mode.
local mode = ARGV[1]
local function flag()
  if (redis.call('HGET', KEYS[2], 'epoch') or '0') == ARGV[3] then
    redis.call('SET', KEYS[5], '1')
    return 'flag'
  end
  return 'noflag'
end
if mode == 'flag' then
  return flag()
end
local r = redis.call('HMGET', KEYS[1], 'status', 'user')
if not r[1] then
  return 'missing'
end
if r[1] ~= 'queued' then
  return 'done'
end
local status = 'lost'
if mode == 'sold_out' then
  status = 'sold_out'
  flag()
  redis.call('HSET', KEYS[1], 'status', 'sold_out', 'decided_at', ARGV[5])
  redis.call('HINCRBY', KEYS[2], 'sold_out', 1)
elseif mode == 'lost' then
  redis.call('HSET', KEYS[1], 'status', 'lost', 'reason', ARGV[4], 'decided_at', ARGV[5])
  redis.call('HINCRBY', KEYS[2], 'lost', 1)
  redis.call('ZADD', KEYS[6], ARGV[5], ARGV[2])
else
  return redis.error_reply('worker_finish: unknown mode ' .. tostring(mode))
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZREM', KEYS[4], ARGV[2])
if redis.call('HINCRBY', KEYS[3], r[2], -1) <= 0 then
  redis.call('HDEL', KEYS[3], r[2])
end
return status
