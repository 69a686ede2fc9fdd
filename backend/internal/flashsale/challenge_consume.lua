-- Consumes a challenge on its own (sale slot); the snippet in challenge.lua is prepended.
-- KEYS[1] challenge
-- ARGV[1] user, ARGV[2] leading zero bits of SHA-256(prefix .. answer)
return take_challenge(ARGV[1], tonumber(ARGV[2]))
