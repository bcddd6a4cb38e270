"""The Redis store's Lua scripts: each one decision, atomic on the server.

Numbers go back to Python as strings (a Lua number returned to Redis is cut to an integer).
Window keys: KEYS[1] a sorted set entry -> time, KEYS[2] a hash entry -> amount, KEYS[3] the
running total. Directory keys: KEYS[1] id -> fields (JSON), KEYS[2] digest -> id, KEYS[3] the
version, KEYS[4] id -> last_used, KEYS[5] id -> digest, KEYS[6] id -> created_at.
"""

from __future__ import annotations

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# When enough of a window's oldest entries (KEYS: entry -> time, entry -> amount) will have aged
# out for ``excess`` more to fit: seconds from ``now`` (``span`` if they never will).
_FREE_AFTER = """
local function free_after(times, amounts, excess, span, now)
  local start = 0
  while excess > 1e-9 do
    local page = redis.call('ZRANGE', times, start, start + 99, 'WITHSCORES')
    if #page == 0 then break end
    for i = 1, #page, 2 do
      excess = excess - tonumber(redis.call('HGET', amounts, page[i]) or '0')
      if excess <= 1e-9 then return math.max(0, tonumber(page[i + 1]) + span - now) end
    end
    start = start + 100
  end
  return span
end
"""

RESERVE = _NOW + _FREE_AFTER + """
local limit, need, span = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cutoff = now - span
local total = tonumber(redis.call('GET', KEYS[3]) or '0')
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
for _, id in ipairs(expired) do
  total = total - tonumber(redis.call('HGET', KEYS[2], id) or '0')
  redis.call('HDEL', KEYS[2], id)
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff) end
if redis.call('ZCARD', KEYS[1]) == 0 then total = 0 end
local reset = span
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #oldest > 0 then reset = math.max(0, tonumber(oldest[2]) + span - now) end
local ttl = math.ceil(span * 1000) + 1000
local ok, wait = 0, 0
if total + need <= limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[2])
  total = total + need
  ok = 1
else
  wait = free_after(KEYS[1], KEYS[2], total + need - limit, span, now)
end
if total <= 1e-9 and ok == 0 and redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
else
  redis.call('SET', KEYS[3], tostring(total), 'PX', ttl)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return {ok, tostring(now), tostring(wait), tostring(total), tostring(reset)}
"""

SETTLE = """
local old = redis.call('HGET', KEYS[2], ARGV[1])
if not old then return 0 end
local actual = tonumber(ARGV[2])
local total = tonumber(redis.call('GET', KEYS[3]) or '0') + actual - tonumber(old)
if actual <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
redis.call('SET', KEYS[3], tostring(total), 'KEEPTTL')
return 1
"""

# The admission of one request, in one step: the client's spend (when it has a budget), then each
# window checked in turn; all reserved, or none. ARGV[1] is 1 when KEYS[1], KEYS[2] are the client's
# day and month spend and ARGV[2], ARGV[3] its daily and monthly budget ('' for none): the first
# window (the budget hold) then admits what the tighter budget has left, plus its need, less a hair.
# Then three keys per window (as RESERVE) and four arguments: limit, need, span, entry id.
# Returns {refused (0, or the 1-based window that did not fit), now, day, month, then per window
# checked: wait, used, reset}.
RESERVE_ALL = _NOW + _FREE_AFTER + """
local b = 0
local day, month = 0, 0
if ARGV[1] == '1' then
  b = 2
  day = tonumber(redis.call('GET', KEYS[1]) or '0')
  month = tonumber(redis.call('GET', KEYS[2]) or '0')
end
local out = {0, tostring(now), tostring(day), tostring(month)}
local seen = {}
local function keep(w, reserve)
  if reserve then
    redis.call('ZADD', w.k1, now, w.entry)
    redis.call('HSET', w.k2, w.entry, w.amount)
    w.total = w.total + w.need
  elseif w.total <= 1e-9 and w.empty then
    redis.call('DEL', w.k1, w.k2, w.k3)
    return
  end
  redis.call('SET', w.k3, tostring(w.total), 'PX', w.ttl)
  redis.call('PEXPIRE', w.k1, w.ttl)
  redis.call('PEXPIRE', w.k2, w.ttl)
end
for i = 0, (#ARGV - 3) / 4 - 1 do
  local w = {k1 = KEYS[b + 3 * i + 1], k2 = KEYS[b + 3 * i + 2], k3 = KEYS[b + 3 * i + 3],
             amount = ARGV[4 * i + 5], entry = ARGV[4 * i + 7]}
  local limit, need, span = tonumber(ARGV[4 * i + 4]), tonumber(ARGV[4 * i + 5]), tonumber(ARGV[4 * i + 6])
  w.need = need
  w.ttl = math.ceil(span * 1000) + 1000
  if i == 0 and b == 2 then
    local left = nil
    if ARGV[2] ~= '' then left = tonumber(ARGV[2]) - day end
    if ARGV[3] ~= '' then
      local m = tonumber(ARGV[3]) - month
      if left == nil or m < left then left = m end
    end
    limit = left + need - 1e-9
  end
  local cutoff = now - span
  local total = tonumber(redis.call('GET', w.k3) or '0')
  local expired = redis.call('ZRANGEBYSCORE', w.k1, '-inf', cutoff)
  for _, id in ipairs(expired) do
    total = total - tonumber(redis.call('HGET', w.k2, id) or '0')
    redis.call('HDEL', w.k2, id)
  end
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', w.k1, '-inf', cutoff) end
  local reset = span
  local oldest = redis.call('ZRANGE', w.k1, 0, 0, 'WITHSCORES')
  w.empty = #oldest == 0
  if w.empty then total = 0 else reset = math.max(0, tonumber(oldest[2]) + span - now) end
  w.total = total
  seen[#seen + 1] = w
  if total + need <= limit then
    out[#out + 1] = '0'
    out[#out + 1] = tostring(total + need)
    out[#out + 1] = tostring(reset)
  else
    local wait = free_after(w.k1, w.k2, total + need - limit, span, now)
    out[1] = i + 1
    out[#out + 1] = tostring(wait)
    out[#out + 1] = tostring(total)
    out[#out + 1] = tostring(reset)
    for _, v in ipairs(seen) do keep(v, false) end
    return out
  end
end
for _, v in ipairs(seen) do keep(v, true) end
return out
"""

# SETTLE for several reservations: three keys (as RESERVE) and two arguments (entry, actual) each.
SETTLE_ALL = """
for i = 0, #ARGV / 2 - 1 do
  local k1, k2, k3 = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local entry, actual = ARGV[2 * i + 1], tonumber(ARGV[2 * i + 2])
  local old = redis.call('HGET', k2, entry)
  if old then
    local total = tonumber(redis.call('GET', k3) or '0') + actual - tonumber(old)
    if actual <= 0 then
      redis.call('HDEL', k2, entry)
      redis.call('ZREM', k1, entry)
    else
      redis.call('HSET', k2, entry, ARGV[2 * i + 2])
    end
    redis.call('SET', k3, tostring(total), 'KEEPTTL')
  end
end
return 1
"""

# KEYS: day spend, month spend; ARGV: usd, when each expires (epoch seconds)
ADD_SPEND = """
redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('EXPIREAT', KEYS[1], ARGV[2])
redis.call('INCRBYFLOAT', KEYS[2], ARGV[1])
redis.call('EXPIREAT', KEYS[2], ARGV[3])
return 1
"""

SET_MARK = _NOW + """
local untl = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], tostring(untl), 'PXAT', math.ceil(untl * 1000))
return tostring(untl - now)
"""

MARKS_LEFT = _NOW + """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = tostring(math.max(0, tonumber(redis.call('GET', key) or '0') - now))
end
return out
"""

CLIENT_CREATE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[6], ARGV[1], ARGV[4])
redis.call('INCR', KEYS[3])
return 1
"""

# ARGV: id, or "" and a digest. Returns {fields, digest, created_at, last_used} or false.
CLIENT_GET = """
local id = ARGV[1]
if id == '' then id = redis.call('HGET', KEYS[2], ARGV[2]) end
if not id then return false end
local fields = redis.call('HGET', KEYS[1], id)
if not fields then return false end
return {fields, redis.call('HGET', KEYS[5], id), redis.call('HGET', KEYS[6], id), redis.call('HGET', KEYS[4], id)}
"""

CLIENT_UPDATE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return false end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[3])
return {ARGV[2], redis.call('HGET', KEYS[5], ARGV[1]), redis.call('HGET', KEYS[6], ARGV[1]),
        redis.call('HGET', KEYS[4], ARGV[1])}
"""

CLIENT_DELETE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local digest = redis.call('HGET', KEYS[5], ARGV[1])
if digest then redis.call('HDEL', KEYS[2], digest) end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('HDEL', KEYS[6], ARGV[1])
redis.call('INCR', KEYS[3])
return 1
"""

CLIENT_ROTATE = """
local fields = redis.call('HGET', KEYS[1], ARGV[1])
if not fields then return false end
local holder = redis.call('HGET', KEYS[2], ARGV[2])
if holder and holder ~= ARGV[1] then return 'exists' end
local old = redis.call('HGET', KEYS[5], ARGV[1])
if old then redis.call('HDEL', KEYS[2], old) end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[3])
return {fields, ARGV[2], redis.call('HGET', KEYS[6], ARGV[1]), redis.call('HGET', KEYS[4], ARGV[1])}
"""

# KEYS: last_used hash, the clients hash. Only clients of the directory get a last_used.
TOUCH = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > old then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""

SCRIPTS = {"reserve": RESERVE, "settle": SETTLE, "reserve_all": RESERVE_ALL, "settle_all": SETTLE_ALL,
           "add_spend": ADD_SPEND, "set_mark": SET_MARK, "marks_left": MARKS_LEFT,
           "client_create": CLIENT_CREATE, "client_get": CLIENT_GET,
           "client_update": CLIENT_UPDATE, "client_delete": CLIENT_DELETE, "client_rotate": CLIENT_ROTATE,
           "touch": TOUCH}
