-- Marks a stranded ticket for one more XADD (sale slot): the order service may have died between
-- the gate and its XADD. Duplicate stream messages are harmless (the worker's already-done check),
-- but they are bounded: at most ARGV[3] requeues per ticket, one per interval.
-- KEYS[1] result, KEYS[2] queue
-- ARGV[1] ticket, ARGV[2] now (unix ms), ARGV[3] max requeues, ARGV[4] stale: the ticket is
-- acted on only if it was (re)enqueued at or before this instant (unix ms)
-- Returns the ticket's user when the caller should XADD it again, "exhausted" when the ticket is
-- still undecided after its last requeue (the caller ends it), or false.
-- The staleness is checked here, not only in the caller's read of the queue: two sweepers that
-- read the queue at once would otherwise end a ticket right after the other one requeued it.
local r = redis.call('HMGET', KEYS[1], 'status', 'user', 'requeues')
if r[1] ~= 'queued' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return false
end
local since = redis.call('ZSCORE', KEYS[2], ARGV[1])
if since and tonumber(since) > tonumber(ARGV[4]) then
  return false
end
if tonumber(r[3] or '0') >= tonumber(ARGV[3]) then
  return 'exhausted'
end
redis.call('HINCRBY', KEYS[1], 'requeues', 1)
redis.call('ZADD', KEYS[2], 'XX', ARGV[2], ARGV[1])
return r[2]
