package limits

import (
	"context"
	"strconv"
	"time"
)

// Pushing the outage's usage. With redis_unavailable = "local" a gateway
// counts alone while Redis is down; the transactions it commits then are
// noted (outage.go), and when Redis answers again (the first successful
// operation, or the watcher's ping) a goroutine pushes the notes to
// Redis with pushScript and forgets them. Without this the fleet's
// counters would never see what the gateway relayed meanwhile, and a
// user could exceed the daily limits by as much.
//
// A push is idempotent per transaction: the script adds a transaction at
// most once, guarded by P:merged (redis.lua.go), in the same atomic step
// as the counts, so a gateway that crashes after pushing but before
// forgetting its notes (they are forgotten in the file at the next flush)
// pushes them again without counting anything twice, organisation
// windows included. Reserve stays O(1): it only starts the goroutine.

const (
	// pushBatch bounds one script run (Redis runs it atomically, holding
	// off every other client meanwhile): transactions, and their
	// recipients.
	pushBatch, pushBatchRcpts = 200, 5000
	// pushRetry spaces pushes of notes that the last push left (a failed
	// one, or transactions that were still counting locally then).
	pushRetry = 10 * time.Second
)

// background runs f in a goroutine that Close waits for; not after Close.
func (r *Redis) background(f func()) {
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	if r.closed {
		return
	}
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		f()
	}()
}

// watch pings Redis once a retryAfter while it is down, so that the
// outage's usage is pushed when Redis is back even if this gateway has
// no mail to relay then (the other gateways would under-count until it
// had). It leaves the hot path's own retries (available) alone. One
// watcher at a time.
func (r *Redis) watch() {
	for r.watching.CompareAndSwap(false, true) {
		stopped := r.watchDown()
		r.watching.Store(false)
		// A failure while this watcher was ending started none (it saw
		// one running): look again.
		if stopped || !r.down.Load() {
			return
		}
	}
}

// watchDown pings until Redis answers; true when Close stopped it.
func (r *Redis) watchDown() (stopped bool) {
	tick := time.NewTicker(retryAfter)
	defer tick.Stop()
	for r.down.Load() {
		select {
		case <-r.stop:
			return true
		case <-tick.C:
		}
		ctx, cancel := r.ctx()
		err := r.rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			r.ok()
		}
	}
	return false
}

// push starts pushing the outage's notes, unless there are none or a push
// is running.
func (r *Redis) push() {
	if r.local == nil || r.local.c.journalLen.Load() == 0 || !r.pushing.CompareAndSwap(false, true) {
		return
	}
	r.pushAt.Store(time.Now().UnixNano())
	r.background(func() {
		defer r.pushing.Store(false)
		r.pushNotes()
	})
}

// pushed is what pushScript reports: transactions added, transactions
// Redis already had (an earlier push), messages, unique recipients not
// counted yet, organisation recipients.
type pushed struct{ txs, already, msgs, rcpts, org int64 }

func (p *pushed) add(q pushed) {
	p.txs, p.already, p.msgs, p.rcpts, p.org = p.txs+q.txs, p.already+q.already, p.msgs+q.msgs, p.rcpts+q.rcpts, p.org+q.org
}

// pushNotes pushes the notes in batches and forgets each batch Redis
// took, then logs the outage's usage once.
func (r *Redis) pushNotes() {
	ids, notes := r.local.c.outages()
	var tot pushed
	var err error
	for len(ids) > 0 && err == nil && !r.stopping() { // stopping: the rest at the next start
		n, k := 0, 0
		for n < len(ids) && n < pushBatch && (n == 0 || k+len(notes[n].rcpts) <= pushBatchRcpts) {
			k += len(notes[n].rcpts)
			n++
		}
		var p pushed
		if p, err = r.pushSome(notes[:n], ids[:n]); err == nil {
			r.local.c.forget(ids[:n])
			tot.add(p)
			ids, notes = ids[n:], notes[n:]
		}
	}
	r.local.flush() // forget them in the file too, now
	attrs := []any{KeyRedis, r.where, KeyTransactions, tot.txs, KeyMessages, tot.msgs, KeyRecipients, tot.rcpts,
		KeyOrgRecipients, tot.org, KeyAlreadyPushed, tot.already}
	if tot.txs+tot.already > 0 {
		r.log.Warn("pushed the relay usage counted locally during the outage to redis", attrs...)
	}
	if err != nil {
		r.log.Error("cannot push the relay usage counted locally during the outage to redis; will retry",
			append(attrs, KeyLeft, len(ids), keyErr, err)...)
	}
}

// stopping reports whether Close has begun.
func (r *Redis) stopping() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// pushSome runs pushScript for one batch.
func (r *Redis) pushSome(notes []*outage, ids []string) (pushed, error) {
	now := r.now()
	args := make([]any, 0, 1+5*len(notes))
	args = append(args, now.UnixMilli())
	for i, o := range notes {
		args = append(args, ids[i], o.user, o.ms, o.org, len(o.rcpts))
		for _, h := range o.rcpts {
			args = append(args, strconv.FormatUint(h, 16))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*redisTimeout)
	defer cancel()
	start := time.Now()
	v, err := pushScript.Run(ctx, r.rdb, []string{r.prefix}, args...).Int64Slice()
	r.obs.StoreOp("redis", "push", time.Since(start), err != nil)
	if err != nil {
		return pushed{}, err
	}
	if len(v) != 5 {
		return pushed{}, errBadReply
	}
	return pushed{v[0], v[1], v[2], v[3], v[4]}, nil
}
