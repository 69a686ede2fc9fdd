-- Last step of closing a ticket decided without a win (sale slot), after its claim was closed in
-- every shard (shard_settle.lua, close mode).
-- KEYS[1] closing set, KEYS[2] result, KEYS[3] sale stats, KEYS[4] sold-out flag
-- ARGV[1] ticket, ARGV[2] units the ticket's claims gave back (its "u" markers over all shards),
-- ARGV[3] "closing" (the ticket is in the closing set) or "orphan" (a claim whose ticket record is
-- gone; ARGV[2] then counts only units this caller moved itself)
-- closing: only the call that removes the ticket from the set accounts for it, so a repeated or
--          concurrent close counts once. Units given back move the return epoch on (supply for
--          the admission cap) and clear the sold-out flag; a ticket that ended stranded without a
--          unit gives its admission back (stranded_unclaimed, subtracted by attempt_gate.lua).
-- Returns "ok" or "noop".
local units = tonumber(ARGV[2])
if ARGV[3] == 'closing' then
  if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
    return 'noop'
  end
  if units == 0 and redis.call('HGET', KEYS[2], 'reason') == 'stranded' then
    redis.call('HINCRBY', KEYS[3], 'stranded_unclaimed', 1)
  end
elseif ARGV[3] ~= 'orphan' then
  return redis.error_reply('claims_closed: unknown mode ' .. tostring(ARGV[3]))
end
if units > 0 then
  redis.call('HINCRBY', KEYS[3], 'epoch', units)
  redis.call('DEL', KEYS[4])
end
return 'ok'
