-- First step of the worker for one ticket (sale slot): the already-done and per-user checks, and
-- the return epoch the sold-out flag is set against.
-- KEYS[1] result record, KEYS[2] users (units held), KEYS[3] sale stats
-- ARGV[1] limit per user
-- Returns {state, epoch, user}: state "missing" (unknown ticket), "done" (already final),
-- "over_limit" or "go".
local r = redis.call('HMGET', KEYS[1], 'status', 'user')
local epoch = redis.call('HGET', KEYS[3], 'epoch') or '0'
if not r[1] then
  return {'missing', epoch, ''}
end
if r[1] ~= 'queued' then
  return {'done', epoch, r[2] or ''}
end
if tonumber(redis.call('HGET', KEYS[2], r[2]) or '0') >= tonumber(ARGV[1]) then
  return {'over_limit', epoch, r[2]}
end
return {'go', epoch, r[2]}
