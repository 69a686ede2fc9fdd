-- Shared by the scripts that consume a challenge; KEYS[1] is always the challenge key
-- (a string "<user>\n<difficulty>" with a TTL, in the sale's slot).
-- take_challenge(user, zeros) checks the binding to the user (the sale is in the key) and that the
-- answer's SHA-256 has at least the challenge's difficulty in leading zero bits (computed by the
-- caller, since Lua here has no SHA-256), then deletes the challenge: single use. A missing,
-- foreign or wrong one is left as it is and reported.
local function take_challenge(user, zeros)
  local v = redis.call('GET', KEYS[1])
  if not v then
    return 'missing'
  end
  local owner, difficulty = string.match(v, '^(.*)\n(%d+)$')
  if owner ~= user then
    return 'mismatch'
  end
  if zeros < tonumber(difficulty) then
    return 'wrong'
  end
  redis.call('DEL', KEYS[1])
  return 'ok'
end
