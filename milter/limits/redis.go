package limits

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/splitrelay/splitrelay/rules"
)

// Redis is the Store shared by a fleet of gateways (redis.lua.go has the
// data model). While Redis cannot be reached it tempfails relay
// recipients, or with redis_unavailable = "local" counts in the embedded
// store of [state] dir meanwhile, and pushes what it counted there to
// Redis when Redis is back (redis_push.go). go-redis redials by itself:
// after a failure the store waits retryAfter before trying Redis again
// (so that a dead Redis costs one timeout per second, not one per
// recipient).
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	where  string    // for reports: the address
	local  *Embedded // redis_unavailable = "local"; nil: tempfail
	log    *slog.Logger
	obs    Observer
	now    func() time.Time

	down      atomic.Bool
	downSince atomic.Int64 // Unix ns of the last failure
	localTx   sync.Map     // transactions reserved in the local store

	// The background work of the local fallback: watching for Redis to
	// come back, pushing the outage's usage (redis_push.go). Close stops
	// it and waits.
	bgMu     sync.Mutex
	closed   bool
	stop     chan struct{}
	bg       sync.WaitGroup
	watching atomic.Bool
	pushing  atomic.Bool
	pushAt   atomic.Int64 // Unix ns when the last push began

	statsMu  sync.Mutex
	statsAt  time.Time
	statsVal Stats
}

var _ Store = (*Redis)(nil)

var errBadReply = errors.New("limits: unexpected reply from redis")

const (
	redisTimeout = time.Second
	retryAfter   = time.Second
	// KeyPrefix is the prefix of every key; {splitrelay} is a Cluster hash
	// tag.
	KeyPrefix = "splitrelay:{splitrelay}"
)

// quietLogger drops go-redis's own log lines (dial retries, pool
// messages): the store logs each outage once, with its consequence.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func init() { redis.SetLogger(quietLogger{}) }

// NewRedisClient builds the go-redis client of a [state] redis URL:
// Sentinel when it has a master_name parameter, Cluster when it has addr
// parameters, a single server otherwise.
func NewRedisClient(rawURL string) (redis.UniversalClient, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, "", errors.New("state.redis: not a URL") // url's error would repeat a password
	}
	q := u.Query()
	switch {
	case q.Has("master_name"):
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, "", fmt.Errorf("state.redis: %w", err)
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.MaxRetries, o.DialerRetries = redisTimeout, redisTimeout, redisTimeout, 1, 1
		return redis.NewFailoverClient(o), "sentinel " + u.Host + " master " + o.MasterName, nil
	case q.Has("addr"):
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, "", fmt.Errorf("state.redis: %w", err)
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.MaxRetries, o.DialerRetries = redisTimeout, redisTimeout, redisTimeout, 1, 1
		return redis.NewClusterClient(o), fmt.Sprintf("cluster %v", o.Addrs), nil
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, "", fmt.Errorf("state.redis: %w", err)
	}
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.MaxRetries, o.DialerRetries = redisTimeout, redisTimeout, redisTimeout, 1, 1
	return redis.NewClient(o), "redis " + o.Addr, nil
}

// OpenRedis connects to [state] redis. It does not wait for Redis: an
// unreachable server is handled per redis_unavailable, and logged.
func OpenRedis(st rules.State, log *slog.Logger, obs Observer, now func() time.Time) (*Redis, error) {
	rdb, where, err := NewRedisClient(st.Redis)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	if obs == nil {
		obs = nopObserver{}
	}
	r := &Redis{rdb: rdb, prefix: KeyPrefix, where: where, log: log, obs: obs, now: now, stop: make(chan struct{})}
	if st.RedisUnavailable == "local" {
		if r.local, err = openEmbedded(st.Dir, log, obs, now, true); err != nil {
			rdb.Close()
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*redisTimeout)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		r.failed("ping", err)
	} else {
		log.Info("relay counters in redis", KeyRedis, where)
		r.push() // what an earlier run counted locally and could not push
	}
	return r, nil
}

// available reports whether to try Redis now.
func (r *Redis) available() bool {
	return !r.down.Load() || time.Since(time.Unix(0, r.downSince.Load())) >= retryAfter
}

// failed records that Redis could not be reached.
func (r *Redis) failed(op string, err error) {
	r.downSince.Store(time.Now().UnixNano())
	if !r.down.Swap(true) {
		if r.local != nil {
			r.log.Error("redis unavailable: counting relay limits locally, this gateway alone, until it is back",
				KeyRedis, r.where, KeyOp, op, keyErr, err, KeyRedisUnavailable, "local")
			r.obs.Fallback(true)
			r.background(r.watch)
		} else {
			r.log.Error("redis unavailable: relay recipients are deferred (451 4.3.0) until it is back",
				KeyRedis, r.where, KeyOp, op, keyErr, err, KeyRedisUnavailable, "tempfail")
		}
	}
}

// ok records that Redis answered, and pushes what was counted locally
// meanwhile. Cheap when there is nothing to push (two atomic loads): it
// runs after every reservation.
func (r *Redis) ok() {
	if r.down.Swap(false) {
		r.log.Warn("redis is back: relay limits are shared again", KeyRedis, r.where)
		if r.local != nil {
			r.obs.Fallback(false)
			r.push()
		}
		return
	}
	// Notes left by the last push: transactions that were still counting
	// locally when it began, or a push that failed.
	if r.local != nil && r.local.c.journalLen.Load() > 0 && time.Since(time.Unix(0, r.pushAt.Load())) >= pushRetry {
		r.push()
	}
}

func (r *Redis) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*redisTimeout)
}

// Reserve implements rules.Limiter.
func (r *Redis) Reserve(res rules.Reservation) (rules.Exceeded, error) {
	if _, ok := r.localTx.Load(res.Tx); ok {
		return r.local.Reserve(res)
	}
	if r.available() {
		ctx, cancel := r.ctx()
		defer cancel()
		now := r.now()
		lim := res.Limits
		start := time.Now()
		n, err := reserveScript.Run(ctx, r.rdb, []string{r.prefix},
			res.Tx, res.User, strconv.FormatUint(hashKey(res.Rcpt), 16), now.UnixMilli(),
			lim.UserMessagesPerDay, lim.UserRecipientsPerDay, lim.OrgRecipientsPerDay, lim.OrgRecipientsPer10Minutes,
			now.Add(txTimeout).UnixMilli()).Int()
		r.obs.StoreOp("redis", "reserve", time.Since(start), err != nil)
		if err == nil {
			r.ok()
			return rules.Exceeded(n), nil
		}
		r.failed("reserve", err)
		if r.local == nil {
			return rules.NotExceeded, fmt.Errorf("redis %s: %w", r.where, err)
		}
	} else if r.local == nil {
		return rules.NotExceeded, fmt.Errorf("redis %s unavailable", r.where)
	}
	// redis_unavailable = "local". A transaction that already holds
	// reservations in Redis keeps its count there: the local store only
	// sees what follows.
	r.localTx.Store(res.Tx, true)
	start := time.Now()
	ex, err := r.local.Reserve(res)
	r.obs.StoreOp("local", "reserve", time.Since(start), err != nil)
	return ex, err
}

func (r *Redis) finish(tx, how string) error {
	_, local := r.localTx.LoadAndDelete(tx)
	if local {
		if how == "commit" {
			r.local.Commit(tx)
		} else {
			r.local.Release(tx)
		}
	}
	// The transaction may have reserved in Redis before an outage began:
	// finish it there too (a no-op otherwise). What cannot reach Redis
	// now is released by the transaction's deadline there.
	if !r.available() {
		if local {
			return nil
		}
		return fmt.Errorf("redis %s unavailable", r.where)
	}
	ctx, cancel := r.ctx()
	defer cancel()
	start := time.Now()
	err := finishScript.Run(ctx, r.rdb, []string{r.prefix}, tx, how, r.now().UnixMilli()).Err()
	r.obs.StoreOp("redis", how, time.Since(start), err != nil)
	if err != nil {
		r.failed(how, err)
		if local {
			return nil
		}
		return fmt.Errorf("redis %s: %s: %w", r.where, how, err)
	}
	r.ok()
	return nil
}

// Commit counts the transaction in Redis (and locally for what it
// reserved there during an outage).
func (r *Redis) Commit(tx string) error { return r.finish(tx, "commit") }

// Release drops the transaction's reservations. If Redis cannot be
// reached, they expire with the transaction's deadline (txTimeout).
func (r *Redis) Release(tx string) { r.finish(tx, "release") }

// Show reads the shared counters.
func (r *Redis) Show(user string) (Report, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	now := r.now()
	vals, err := showScript.Run(ctx, r.rdb, []string{r.prefix}, now.UnixMilli(), user).Slice()
	if err != nil {
		return Report{}, fmt.Errorf("redis %s: %w", r.where, err)
	}
	rep := Report{Store: r.where, At: now, Users: []Usage{}}
	if len(vals) < 3 || (len(vals)-3)%6 != 0 {
		return Report{}, fmt.Errorf("redis %s: unexpected reply of %d values", r.where, len(vals))
	}
	i64 := func(v any) int {
		switch x := v.(type) {
		case int64:
			return int(x)
		case string:
			n, _ := strconv.ParseInt(x, 10, 64)
			return int(n)
		}
		return 0
	}
	rep.Org = OrgUsage{Day: i64(vals[0]), TenMinutes: i64(vals[1]), Pending: i64(vals[2])}
	for i := 3; i < len(vals); i += 6 {
		u := Usage{User: fmt.Sprint(vals[i]), Messages: i64(vals[i+1]), Recipients: i64(vals[i+2]),
			PendingMessages: i64(vals[i+3]), PendingRecipients: i64(vals[i+4])}
		if ms := i64(vals[i+5]); ms > 0 {
			u.NextExpiry = time.UnixMilli(int64(ms)).Add(24 * time.Hour)
		}
		rep.Users = append(rep.Users, u)
	}
	sortUsers(rep.Users)
	return rep, nil
}

// Reset clears a user's shared counters (and local ones).
func (r *Redis) Reset(user string) (bool, error) {
	if r.local != nil {
		r.local.Reset(user)
	}
	ctx, cancel := r.ctx()
	defer cancel()
	n, err := resetScript.Run(ctx, r.rdb, []string{r.prefix}, user).Int()
	if err != nil {
		return false, fmt.Errorf("redis %s: %w", r.where, err)
	}
	return n == 1, nil
}

// Stats reads the shared counters at most every 30 seconds (every user is
// read: cheap for thousands, a few milliseconds of Redis at 100k).
func (r *Redis) Stats(lim rules.Limits) (Stats, error) {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	if time.Since(r.statsAt) < 30*time.Second {
		return r.statsVal, nil
	}
	rep, err := r.Show("")
	if err != nil {
		return r.statsVal, err
	}
	s := Stats{Near: map[string]int{rules.UserMessages.String(): 0, rules.UserRecipients.String(): 0},
		OrgDay: rep.Org.Day, OrgPeak: rep.Org.TenMinutes}
	for _, u := range rep.Users {
		if near(u.Messages, lim.UserMessagesPerDay) {
			s.Near[rules.UserMessages.String()]++
		}
		if near(u.Recipients, lim.UserRecipientsPerDay) {
			s.Near[rules.UserRecipients.String()]++
		}
	}
	r.statsAt, r.statsVal = time.Now(), s
	return s, nil
}

// Close stops the background work (a push in progress ends after its
// current batch), then closes the local store and the client.
func (r *Redis) Close() error {
	r.bgMu.Lock()
	if r.closed {
		r.bgMu.Unlock()
		return nil
	}
	r.closed = true
	close(r.stop)
	r.bgMu.Unlock()
	r.bg.Wait()
	if r.local != nil {
		r.local.Close()
	}
	return r.rdb.Close()
}
