"""Every Lua script Godel runs. Each touches only the keys it is given (KEYS) plus, for
REAP, the processing lists named from ARGV[1]; each runs atomically on the server."""

from __future__ import annotations

# Claim up to ARGV[1] ids from the right of pending and renew this worker's lease.
CLAIM = """
local items = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[1]), -1)
if #items > 0 then
  redis.call('LTRIM', KEYS[1], 0, -#items - 1)
  redis.call('RPUSH', KEYS[2], unpack(items))
end
local now = redis.call('TIME')
redis.call('ZADD', KEYS[3], tonumber(now[1]) + tonumber(ARGV[2]), ARGV[3])
return items
"""

# Renew a lease (idle workers blocked in BLMOVE still need to look alive).
HEARTBEAT = """
local now = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(now[1]) + tonumber(ARGV[1]), ARGV[2])
return 1
"""

# Move due retries back to pending.
PROMOTE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', t, 'LIMIT', 0, tonumber(ARGV[1]))
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
  redis.call('LPUSH', KEYS[2], unpack(due))
end
return #due
"""

# Return the claims of workers whose lease expired to the consuming end of pending.
REAP = """
local now = redis.call('TIME')
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', tonumber(now[1]))
local moved = 0
for _, w in ipairs(dead) do
  local key = ARGV[1] .. w
  local items = redis.call('LRANGE', key, 0, -1)
  if #items > 0 then
    redis.call('RPUSH', KEYS[2], unpack(items))
    moved = moved + #items
  end
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], w)
end
return moved
"""

# Give back everything this worker holds (graceful stop, or the ledger refused its acks).
REQUEUE_OWN = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
if #items > 0 then redis.call('RPUSH', KEYS[2], unpack(items)) end
redis.call('DEL', KEYS[1])
return #items
"""

# Remove every occurrence of the ARGV ids from the list KEYS[1], keeping the others in
# order: one pass, where LREM per id would be quadratic on long dead lists.
REMOVE_IDS = """
local drop = {}
for _, v in ipairs(ARGV) do drop[v] = true end
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local keep = {}
for _, v in ipairs(items) do
  if not drop[v] then keep[#keep + 1] = v end
end
local removed = #items - #keep
if removed > 0 then
  redis.call('DEL', KEYS[1])
  for i = 1, #keep, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(keep, i, math.min(i + 999, #keep)))
  end
end
return removed
"""
