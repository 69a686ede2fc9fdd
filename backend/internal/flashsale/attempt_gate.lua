-- Admission of one attempt (sale slot).
-- KEYS[1] spent mark of the challenge, KEYS[2] sale hash, KEYS[3] sold-out flag, KEYS[4] sale stats,
-- KEYS[5] users (units held), KEYS[6] in-flight attempts per user, KEYS[7] queue (backlog),
-- KEYS[8] idempotency record, KEYS[9] result record of the new ticket
-- ARGV[1] user, ARGV[2] new ticket, ARGV[3] now (unix ms), ARGV[4] k (admitted < k x supply),
-- ARGV[5] max backlog, ARGV[6] idempotency TTL (ms), ARGV[7] busy Retry-After (s),
-- ARGV[8] challenge id, ARGV[9] "1" when the caller verified the challenge (MAC, sale, user,
-- expiry) and its answer, ARGV[10] the challenge's remaining life (ms, >= 1 when ARGV[9] is "1")
-- Returns {origin, outcome, ticket, retry_after}: origin "new" or "dup" (the first answer for the
-- same Idempotency-Key, unchanged); outcome admitted, sold_out, limit_reached, attempt_pending,
-- busy_backlog, busy_admission, or without a record: reused_key, no_sale, not_started, ended,
-- bad_challenge. A new admission has a fifth element: the sale's return epoch now (the worker
-- sets the sold-out flag against it, as worker_begin.lua's).
local prev = redis.call('HMGET', KEYS[8], 'outcome', 'ticket', 'retry_after', 'challenge')
if prev[1] then
  if prev[4] ~= ARGV[8] then
    return {'dup', 'reused_key', '', ''}
  end
  return {'dup', prev[1], prev[2] or '', prev[3] or ''}
end
local sale = redis.call('HMGET', KEYS[2], 'stock', 'per_user_limit', 'starts_at_ms', 'ends_at_ms')
if not sale[1] then
  return {'new', 'no_sale', '', ''}
end
local now = tonumber(ARGV[3])
if now < tonumber(sale[3]) then
  redis.call('HINCRBY', KEYS[4], 'rejected:not_started', 1)
  return {'new', 'not_started', '', ''}
end
if now >= tonumber(sale[4]) then
  redis.call('HINCRBY', KEYS[4], 'rejected:ended', 1)
  return {'new', 'ended', '', ''}
end
-- Spend the challenge: single use, the mark lives as long as the id could verify.
if ARGV[9] ~= '1' or not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[10]) then
  redis.call('HINCRBY', KEYS[4], 'rejected:bad_challenge', 1)
  return {'new', 'bad_challenge', '', ''}
end

-- From here the challenge is spent, so every answer is recorded under the Idempotency-Key.
local function answer(outcome, ticket, retry)
  redis.call('HSET', KEYS[8], 'outcome', outcome, 'ticket', ticket, 'retry_after', retry, 'challenge', ARGV[8])
  redis.call('PEXPIRE', KEYS[8], ARGV[6])
  if outcome ~= 'admitted' then
    redis.call('HINCRBY', KEYS[4], 'rejected:' .. outcome, 1)
  end
  return {'new', outcome, ticket, retry}
end

if redis.call('EXISTS', KEYS[3]) == 1 then
  return answer('sold_out', '', '')
end
local limit = tonumber(sale[2])
local held = tonumber(redis.call('HGET', KEYS[5], ARGV[1]) or '0')
if held >= limit then
  return answer('limit_reached', '', '')
end
local flying = tonumber(redis.call('HGET', KEYS[6], ARGV[1]) or '0')
if held + flying >= limit then
  return answer('attempt_pending', '', '')
end
if redis.call('ZCARD', KEYS[7]) >= tonumber(ARGV[5]) then
  return answer('busy_backlog', '', ARGV[7])
end
-- Supply grows by every unit put back into a shard (the epoch counts expiry returns and releases).
-- Tickets that ended stranded without taking a unit had no chance at one: they do not count.
local stats = redis.call('HMGET', KEYS[4], 'admitted', 'epoch', 'stranded_unclaimed')
local supply = tonumber(sale[1]) + tonumber(stats[2] or '0')
local used = tonumber(stats[1] or '0') - tonumber(stats[3] or '0')
if used >= math.ceil(tonumber(ARGV[4]) * supply) then
  return answer('busy_admission', '', ARGV[7])
end
redis.call('HINCRBY', KEYS[4], 'admitted', 1)
redis.call('HINCRBY', KEYS[6], ARGV[1], 1)
redis.call('ZADD', KEYS[7], now, ARGV[2])
redis.call('HSET', KEYS[9], 'status', 'queued', 'user', ARGV[1], 'created_at', ARGV[3])
local rep = answer('admitted', ARGV[2], '')
rep[5] = stats[2] or '0'
return rep
