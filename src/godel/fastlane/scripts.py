"""Every Lua script Godel runs. Each touches only the keys it is given (KEYS) plus, for
REAP, the processing lists named from ARGV[1]; each runs atomically on the server. In
cluster mode all of them are in the {godel} slot (see `keys`), ARGV[1]'s prefix included,
so every script runs on one node."""

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

# Ack a batch (LREM each of ARGV[4...] once from this worker's processing list), then claim
# as CLAIM does: one round trip between two batches instead of two.
ACK_CLAIM = f"""
for i = 4, #ARGV do redis.call('LREM', KEYS[2], 1, ARGV[i]) end
{CLAIM.lstrip()}"""

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

# Token buckets, all or nothing. KEYS are the buckets; ARGV holds four numbers per key:
# rate (tokens per second), burst (capacity), cost, extra. A missing bucket is full.
# When every bucket has its cost, all costs are taken, plus from each bucket up to `extra`
# more tokens it can spare (a lease the caller spends locally); returns {0, 0, extra_1,
# ...}. Else nothing is taken and it returns {i, wait_ms, wait_ms_1, ...}: the first bucket
# (1-based) that is short, the longest wait of any short one, and each bucket's own wait (0
# for one that had enough). Redis's clock, not the callers': every API instance sees the
# same time.
RATE_LIMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local levels = {}
local short, wait = 0, 0
for i = 1, #KEYS do
  local rate = tonumber(ARGV[4 * i - 3])
  local burst = tonumber(ARGV[4 * i - 2])
  local cost = tonumber(ARGV[4 * i - 1])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tokens = tonumber(state[1]) or burst
  local at = tonumber(state[2]) or now
  if now > at then tokens = math.min(burst, tokens + (now - at) * rate / 1000) end
  if tokens < cost then
    if short == 0 then short = i end
    wait = math.max(wait, math.ceil((cost - tokens) * 1000 / rate))
  end
  levels[i] = tokens - cost
end
if short > 0 then
  local reply = {short, wait}
  for i = 1, #KEYS do
    reply[i + 2] = math.max(0, math.ceil(-levels[i] * 1000 / tonumber(ARGV[4 * i - 3])))
  end
  return reply
end
local granted = {0, 0}
for i = 1, #KEYS do
  local rate = tonumber(ARGV[4 * i - 3])
  local burst = tonumber(ARGV[4 * i - 2])
  local extra = math.max(0, math.min(tonumber(ARGV[4 * i]), math.floor(levels[i])))
  granted[i + 2] = extra
  redis.call('HSET', KEYS[i], 'tokens', tostring(levels[i] - extra), 'at', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst * 1000 / rate) + 1000)
end
return granted
"""
