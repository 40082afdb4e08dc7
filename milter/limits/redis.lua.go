package limits

import "github.com/redis/go-redis/v9"

// The Redis side of the limits, as Lua scripts: each runs atomically in
// Redis, so the check and the reservation of every gateway of a fleet are
// one step. Every key carries the hash tag {splitrelay} so that a Cluster
// keeps them in one slot; KEYS[1] is that prefix. Every key expires by
// itself (TTL: a day and 10 minutes after its last write; transactions 2
// hours), so nothing needs cleaning if every gateway disappears.
//
//	P:u:USER:m   ZSET committed messages (member tx, score commit ms)
//	P:u:USER:r   ZSET unique recipients (member recipient hash, score ms last committed)
//	P:u:USER:p   HASH reserved recipients -> number of transactions holding them
//	P:u:USER:pm  reserved messages
//	P:users      ZSET users (score ms last active), for show and the metrics
//	P:org:d, P:org:p   HASH slot -> recipients (minutes / 10 seconds), with :sum and :last
//	P:org:pend   reserved organisation recipients
//	P:tx:TX      HASH user, msg, k:HASH per reserved recipient
//	P:txs        ZSET open transactions by deadline (released by the next reserve after it)
//	P:merged     ZSET transactions pushed after an outage (member tx, score commit ms)
//
// Windows are exact to the millisecond for users (sorted sets) and roll
// per minute / 10 seconds for the organisation, stamped with the
// gateway's clock (keep gateways NTP-synchronised).

const luaCommon = `
local P = KEYS[1]
local DAY = 86400000
local TTL = DAY + 600000
local TXTTL = 7200000

local function num(v) return tonumber(v or 0) or 0 end

-- roll drops the slots of an organisation window that left it and
-- returns the window's sum and the current slot.
local function roll(name, width, n, now)
  local h, sk, lk = P..':org:'..name, P..':org:'..name..':sum', P..':org:'..name..':last'
  local slot = math.floor(now / width)
  local lastv = redis.call('GET', lk)
  local last = tonumber(lastv or slot)
  local sum = num(redis.call('GET', sk))
  if slot > last then
    if slot - last >= n then
      redis.call('DEL', h)
      sum = 0
    else
      for s = last - n + 1, slot - n do
        local v = redis.call('HGET', h, tostring(s))
        if v then
          sum = sum - tonumber(v)
          redis.call('HDEL', h, tostring(s))
        end
      end
    end
    last = slot
  end
  if sum < 0 then sum = 0 end
  if last ~= tonumber(lastv or -1) then
    redis.call('SET', lk, tostring(last), 'PX', TTL)
    redis.call('SET', sk, tostring(sum), 'PX', TTL)
  end
  return sum, slot
end

local function orgadd(name, width, n, now, k)
  local sum, slot = roll(name, width, n, now)
  local h = P..':org:'..name
  redis.call('HINCRBY', h, tostring(slot), k)
  redis.call('PEXPIRE', h, TTL)
  redis.call('SET', P..':org:'..name..':sum', tostring(sum + k), 'PX', TTL)
end

-- orgat adds k recipients to slot of time ms of an organisation window,
-- if that slot is still in the window (what a gateway counted while
-- Redis was down, at the time it counted it). Returns k, or 0 when the
-- slot has left the window.
local function orgat(name, width, n, now, ms, k)
  local sum, slot = roll(name, width, n, now)
  local s = math.floor(ms / width)
  if s > slot then s = slot end -- a clock that stepped back: the newest slot
  if s <= slot - n then return 0 end
  local h = P..':org:'..name
  redis.call('HINCRBY', h, tostring(s), k)
  redis.call('PEXPIRE', h, TTL)
  redis.call('SET', P..':org:'..name..':sum', tostring(sum + k), 'PX', TTL)
  return k
end

local function decr(key, by)
  local v = redis.call('DECRBY', key, by)
  if v <= 0 then redis.call('DEL', key) end
end

-- finish commits (commit = true) or releases transaction tx.
local function finish(tx, commit, now)
  local t = P..':tx:'..tx
  local h = redis.call('HGETALL', t)
  redis.call('ZREM', P..':txs', tx)
  if #h == 0 then return 0 end
  local user, msg, keys = '', false, {}
  for i = 1, #h, 2 do
    local f = h[i]
    if f == 'user' then user = h[i+1]
    elseif f == 'msg' then msg = true
    elseif string.sub(f, 1, 2) == 'k:' then keys[#keys+1] = string.sub(f, 3) end
  end
  redis.call('DEL', t)
  local n = #keys
  if n > 0 then decr(P..':org:pend', n) end
  if commit and n > 0 then
    orgadd('d', 60000, 1440, now, n)
    orgadd('p', 10000, 60, now, n)
  end
  if user ~= '' then
    local U = P..':u:'..user
    if msg then
      decr(U..':pm', 1)
      if commit then redis.call('ZADD', U..':m', now, tx) end
    end
    for _, k in ipairs(keys) do
      if redis.call('HINCRBY', U..':p', k, -1) <= 0 then redis.call('HDEL', U..':p', k) end
      if commit then redis.call('ZADD', U..':r', now, k) end
    end
    if commit then
      redis.call('PEXPIRE', U..':m', TTL)
      redis.call('PEXPIRE', U..':r', TTL)
      redis.call('ZADD', P..':users', now, user)
      redis.call('PEXPIRE', P..':users', TTL)
    end
  end
  return 1
end

-- sweep releases a few transactions whose deadline passed (a gateway that
-- died with transactions open).
local function sweep(now)
  local dead = redis.call('ZRANGEBYSCORE', P..':txs', '-inf', now, 'LIMIT', 0, 10)
  for _, tx in ipairs(dead) do finish(tx, false, now) end
end
`

// reserveScript: ARGV tx, user, rcpt hash, now ms, user_messages,
// user_recipients, org_day, org_peak, deadline ms. Returns the
// rules.Exceeded value (0: reserved).
var reserveScript = redis.NewScript(luaCommon + `
local tx, user, rc = ARGV[1], ARGV[2], ARGV[3]
local now = tonumber(ARGV[4])
local lum, lur, lod, lop = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
sweep(now)
local t = P..':tx:'..tx
if redis.call('HEXISTS', t, 'k:'..rc) == 1 then return 0 end
local pend = num(redis.call('GET', P..':org:pend'))
local peak = roll('p', 10000, 60, now)
if lop > 0 and peak + pend + 1 > lop then return 4 end
local day = roll('d', 60000, 1440, now)
if lod > 0 and day + pend + 1 > lod then return 3 end
if user ~= '' then
  local U = P..':u:'..user
  local cut = now - DAY
  redis.call('ZREMRANGEBYSCORE', U..':m', '-inf', cut)
  redis.call('ZREMRANGEBYSCORE', U..':r', '-inf', cut)
  local newmsg = redis.call('HEXISTS', t, 'msg') == 0
  if newmsg and lum > 0 and redis.call('ZCARD', U..':m') + num(redis.call('GET', U..':pm')) + 1 > lum then
    return 1
  end
  if lur > 0 and not redis.call('ZSCORE', U..':r', rc) then
    local pn, held = 0, false
    for _, f in ipairs(redis.call('HKEYS', U..':p')) do
      if f == rc then held = true end
      if not redis.call('ZSCORE', U..':r', f) then pn = pn + 1 end
    end
    if not held and redis.call('ZCARD', U..':r') + pn + 1 > lur then return 2 end
  end
  if newmsg then
    redis.call('INCR', U..':pm')
    redis.call('PEXPIRE', U..':pm', TXTTL)
    redis.call('HSET', t, 'msg', '1')
  end
  redis.call('HINCRBY', U..':p', rc, 1)
  redis.call('PEXPIRE', U..':p', TXTTL)
  redis.call('HSET', t, 'user', user)
  redis.call('ZADD', P..':users', now, user)
  redis.call('PEXPIRE', P..':users', TTL)
end
redis.call('HSET', t, 'k:'..rc, '1')
redis.call('PEXPIRE', t, TXTTL)
redis.call('INCR', P..':org:pend')
redis.call('PEXPIRE', P..':org:pend', TXTTL)
redis.call('ZADD', P..':txs', ARGV[9], tx)
redis.call('PEXPIRE', P..':txs', TXTTL)
return 0
`)

// finishScript: ARGV tx, "commit" or "release", now ms.
var finishScript = redis.NewScript(luaCommon + `
return finish(ARGV[1], ARGV[2] == 'commit', tonumber(ARGV[3]))
`)

// showScript: ARGV now ms, user ("" for all active users). Returns the
// organisation's day, peak and pending counts, then per user: name,
// messages, recipients, reserved messages, reserved recipients, oldest
// entry ms (0 when none).
var showScript = redis.NewScript(luaCommon + `
local now, only = tonumber(ARGV[1]), ARGV[2]
local cut = now - DAY
local out = {}
out[1] = roll('d', 60000, 1440, now)
out[2] = roll('p', 10000, 60, now)
out[3] = num(redis.call('GET', P..':org:pend'))
redis.call('ZREMRANGEBYSCORE', P..':users', '-inf', cut - TXTTL)
local users
if only ~= '' then users = {only} else users = redis.call('ZRANGE', P..':users', 0, -1) end
for _, user in ipairs(users) do
  local U = P..':u:'..user
  redis.call('ZREMRANGEBYSCORE', U..':m', '-inf', cut)
  redis.call('ZREMRANGEBYSCORE', U..':r', '-inf', cut)
  local m, r = redis.call('ZCARD', U..':m'), redis.call('ZCARD', U..':r')
  local pm = num(redis.call('GET', U..':pm'))
  local pr = 0
  for _, f in ipairs(redis.call('HKEYS', U..':p')) do
    if not redis.call('ZSCORE', U..':r', f) then pr = pr + 1 end
  end
  local oldest = 0
  for _, k in ipairs({U..':m', U..':r'}) do
    local o = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
    if #o == 2 and (oldest == 0 or tonumber(o[2]) < oldest) then oldest = tonumber(o[2]) end
  end
  if m + r + pm + pr > 0 then
    out[#out+1] = user
    out[#out+1] = m
    out[#out+1] = r
    out[#out+1] = pm
    out[#out+1] = pr
    out[#out+1] = tostring(oldest)
  end
end
return out
`)

// resetScript: ARGV user. Returns 1 when something was counted.
var resetScript = redis.NewScript(luaCommon + `
local U = P..':u:'..ARGV[1]
local had = redis.call('ZCARD', U..':m') + redis.call('ZCARD', U..':r')
redis.call('DEL', U..':m', U..':r')
if had > 0 then return 1 end
return 0
`)

// pushScript adds what a gateway counted locally while Redis was down
// (redis_push.go). ARGV now ms, then per transaction: tx, user, commit
// ms, organisation recipients, n, n recipient hashes. A transaction is
// added once (P:merged): pushing it again adds nothing. Messages are
// members of P:u:USER:m by tx and recipients of P:u:USER:r by hash, so
// one that Redis counted already (the transaction also committed there,
// or another gateway sent to the recipient) counts once; a recipient
// keeps its latest time. Returns transactions added, transactions already
// merged, messages added, recipients added, organisation recipients
// added (to the day window).
var pushScript = redis.NewScript(luaCommon + `
local now = tonumber(ARGV[1])
local cut = now - DAY
local M = P..':merged'
redis.call('ZREMRANGEBYSCORE', M, '-inf', cut)
local txs, dup, msgs, rcpts, orgn = 0, 0, 0, 0, 0
local i = 2
while i + 4 <= #ARGV do
  local tx, user, ms, k, n = ARGV[i], ARGV[i+1], tonumber(ARGV[i+2]), tonumber(ARGV[i+3]), tonumber(ARGV[i+4])
  local first = i + 5
  i = first + n
  if ms > now then ms = now end
  if ms <= cut then
    -- out of every window: nothing to add
  elseif redis.call('ZADD', M, 'NX', ms, tx) == 0 then
    dup = dup + 1
  else
    txs = txs + 1
    if k > 0 then
      orgn = orgn + orgat('d', 60000, 1440, now, ms, k)
      orgat('p', 10000, 60, now, ms, k)
    end
    if user ~= '' then
      local U = P..':u:'..user
      redis.call('ZREMRANGEBYSCORE', U..':m', '-inf', cut)
      redis.call('ZREMRANGEBYSCORE', U..':r', '-inf', cut)
      msgs = msgs + redis.call('ZADD', U..':m', 'NX', ms, tx)
      for j = first, first + n - 1 do
        local s = redis.call('ZSCORE', U..':r', ARGV[j])
        if not s then rcpts = rcpts + 1 end
        if not s or tonumber(s) < ms then redis.call('ZADD', U..':r', ms, ARGV[j]) end
      end
      redis.call('PEXPIRE', U..':m', TTL)
      if n > 0 then redis.call('PEXPIRE', U..':r', TTL) end
      local s = redis.call('ZSCORE', P..':users', user)
      if not s or tonumber(s) < ms then redis.call('ZADD', P..':users', ms, user) end
      redis.call('PEXPIRE', P..':users', TTL)
    end
  end
end
if redis.call('EXISTS', M) == 1 then redis.call('PEXPIRE', M, TTL) end
return {txs, dup, msgs, rcpts, orgn}
`)
