package link

import (
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// RetireGroup is the kernel link group ("ip link show group N") that holds
// macvlan-swarm's links waiting to be deleted. A retired link is down, so it
// carries no traffic and holds no MAC on its parent: a new endpoint with the
// same address is not blocked by it. See the note at the top of delete.go
// for why deletion is batched.
const RetireGroup uint32 = 0x6d767377 // "mvsw"

// ReapOps is the part of the kernel the Reaper uses; *Handle implements it,
// and the driver's unit tests pass a fake.
type ReapOps interface {
	List() ([]Info, error)
	Retire(name string, group uint32) error
	Delete(name string) error
	DeleteGroup(group uint32) error
}

// Reaper retires and deletes links in batches, in its own goroutine, so that
// the ~15 ms the kernel spends per unregister is paid once per batch, and no
// request waits on the kernel for a link it is done with: while the engine
// tears many namespaces down, even setting a link down can wait a second
// for the kernel's RTNL lock.
type Reaper struct {
	ops     ReapOps
	log     *slog.Logger
	delay   time.Duration
	observe func(deleted int, took time.Duration)

	mu       sync.Mutex
	pending  []doomed
	lastTake time.Time       // when Take last handed a link out
	inflight map[string]bool // names of the batch being reaped
	done     *sync.Cond      // signalled when a batch ends
	reaping  sync.Mutex      // one batch at a time

	kick chan struct{}
	quit chan struct{}
	exit chan struct{}
	once sync.Once
}

// NewReaper starts a reaper that gathers retired links for delay before one
// group delete. observe, if not nil, is told after each batch that deleted
// links how many it deleted and how long the kernel took (for metrics).
func NewReaper(ops ReapOps, log *slog.Logger, delay time.Duration, observe func(deleted int, took time.Duration)) *Reaper {
	r := &Reaper{
		ops:     ops,
		log:     log,
		delay:   delay,
		observe: observe,
		kick:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		exit:    make(chan struct{}),
	}
	r.done = sync.NewCond(&r.mu)
	go r.loop()
	return r
}

// doomed is a link the reaper is to delete if it still carries mark. One
// with a reuse key may be taken for a new endpoint first (Take).
type doomed struct {
	name, mark string
	reuse      string    // RetireReusable's key; "" never reused
	at         time.Time // when it was queued
}

// ReuseGrace is how long a link offered for reuse waits, at least, for a
// Join to take it (Take) before a batch deletes it. Under churn the next Join
// comes within a millisecond or two of the last DeleteEndpoint; a batch (the
// reaper's delay after the first retire) deletes every reusable link older
// than this, and keeps the younger ones for the batch after.
const ReuseGrace = 5 * time.Millisecond

// While Joins are taking retired links (one was taken in the last
// ReuseBusy), a reusable link waits up to ReuseHold instead: a Join that is
// late by more than ReuseGrace (a garbage collection, a slow commit, a busy
// CPU) then still finds one, and no group delete takes the kernel's RTNL
// lock in the middle of the churn. With no Join taking links (a service
// scaled down, nothing started) the links go after ReuseGrace as before.
const (
	ReuseHold = 100 * time.Millisecond
	ReuseBusy = time.Second
)

// Retire queues the link called name for deletion and returns at once. The
// reaper deletes it with its next batch if it still carries mark (checked on
// the link then: a link of that name made since by someone else is left
// alone). A link that is gone by then (it went with its container's
// namespace) needs nothing. A queued link holds no MAC on its parent: the
// engine's move back to the host namespace took it down, and the driver
// creates links down.
func (r *Reaper) Retire(name, mark string) { r.RetireReusable(name, mark, "") }

// RetireReusable is Retire for a link that a new endpoint may take instead
// of a new link of its own (see the note in reuse.go): Take(key) hands it
// out while it waits. key says what the link fits (its parent and mode).
func (r *Reaper) RetireReusable(name, mark, key string) {
	r.mu.Lock()
	r.pending = append(r.pending, doomed{name: name, mark: mark, reuse: key, at: time.Now()})
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Pending is how many links wait for the next batch.
func (r *Reaper) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// Queued names the links waiting for a batch or being reaped now.
func (r *Reaper) Queued() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]bool, len(r.pending)+len(r.inflight))
	for _, d := range r.pending {
		out[d.name] = true
	}
	for name := range r.inflight {
		out[name] = true
	}
	return out
}

// Forget takes the link called name off the queue, and waits if the batch
// being reaped holds it, so that a link created again under that name (an
// endpoint joined again) is not deleted for the old one. It returns at once
// when the reaper has nothing of that name.
func (r *Reaper) Forget(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = slices.DeleteFunc(r.pending, func(d doomed) bool { return d.name == name })
	for r.inflight[name] {
		r.done.Wait()
	}
}

// Take hands out the most recently retired link queued with key, taking it
// off the queue; the caller re-arms it (Handle.Rearm) or, if that fails,
// retires it again. ok is false when none waits.
func (r *Reaper) Take(key string) (name, mark string, ok bool) {
	if key == "" {
		return "", "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.pending) - 1; i >= 0; i-- {
		if d := r.pending[i]; d.reuse == key {
			r.pending = slices.Delete(r.pending, i, i+1)
			r.lastTake = time.Now()
			return d.name, d.mark, true
		}
	}
	return "", "", false
}

func (r *Reaper) loop() {
	defer close(r.exit)
	for {
		select {
		case <-r.quit:
			r.Reap()
			return
		case <-r.kick:
		}
		select {
		case <-r.quit:
			r.Reap()
			return
		case <-time.After(r.delay):
		}
		// Reusable links retired in the last ReuseGrace (ReuseHold while
		// Joins are taking links) may still be taken by a Join on its way:
		// they wait for the next batch.
		r.reap(time.Now().Add(-r.reuseWait()))
		if r.Pending() > 0 {
			select {
			case r.kick <- struct{}{}:
			default:
			}
		}
	}
}

// reuseWait is how long a reusable link waits for a Join now.
func (r *Reaper) reuseWait() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.lastTake.IsZero() && time.Since(r.lastTake) < ReuseBusy {
		return ReuseHold
	}
	return ReuseGrace
}

// Reap deletes the queued links (those offered for reuse too) and every
// marked link in RetireGroup now: each queued link that still carries its
// mark is set down and moved into RetireGroup, then the group goes in one
// request. If a link without
// macvlan-swarm's mark sits in the group (someone else chose the same group
// number), it deletes its own links one by one and leaves the other alone.
func (r *Reaper) Reap() { r.reap(time.Time{}) }

// reap is Reap, except that links offered for reuse and queued after cutoff
// stay queued; the zero time is all of them.
func (r *Reaper) reap(cutoff time.Time) {
	r.reaping.Lock()
	defer r.reaping.Unlock()
	r.mu.Lock()
	queued := r.pending
	r.pending = nil
	if !cutoff.IsZero() {
		all := queued
		queued = nil
		for _, d := range all {
			if d.reuse == "" || d.at.Before(cutoff) {
				queued = append(queued, d)
			} else {
				r.pending = append(r.pending, d)
			}
		}
		if len(queued) == 0 {
			// Nothing old enough: no need to ask the kernel anything.
			r.mu.Unlock()
			return
		}
	}
	r.inflight = make(map[string]bool, len(queued))
	for _, q := range queued {
		r.inflight[q.name] = true
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inflight = nil
		r.done.Broadcast()
		r.mu.Unlock()
	}()
	infos, err := r.ops.List()
	if err != nil {
		r.log.Warn("could not list links to delete retired ones; will retry", "err", err)
		r.mu.Lock()
		r.pending = append(queued, r.pending...)
		r.mu.Unlock()
		return
	}
	byName := make(map[string]int, len(infos))
	for i, info := range infos {
		byName[info.Name] = i
	}
	for _, q := range queued {
		i, ok := byName[q.name]
		if !ok {
			continue
		}
		if infos[i].Alias != q.mark {
			r.log.Warn("a link queued for deletion no longer carries its mark; left alone", "link", q.name, "alias", infos[i].Alias)
			continue
		}
		if err := r.ops.Retire(q.name, RetireGroup); err != nil {
			if !errors.Is(err, ErrNotFound) {
				r.log.Warn("could not retire host link; deleting it alone", "link", q.name, "err", err)
				if err := r.ops.Delete(q.name); err != nil {
					r.log.Warn("could not delete host link", "link", q.name, "err", err)
				}
			}
			continue
		}
		infos[i].Group = RetireGroup
	}
	var ours []string
	foreign := false
	for _, i := range infos {
		if i.Group != RetireGroup {
			continue
		}
		if i.Ours() {
			ours = append(ours, i.Name)
		} else {
			foreign = true
		}
	}
	if len(ours) == 0 {
		return
	}
	start := time.Now()
	if foreign {
		r.log.Warn("a link without macvlan-swarm's mark is in its link group; deleting ours one by one", "group", RetireGroup)
	} else {
		err := r.ops.DeleteGroup(RetireGroup)
		if err == nil {
			r.finished(len(ours), start)
			return
		}
		r.log.Warn("group delete failed; deleting links one by one", "err", err)
	}
	deleted := 0
	for _, name := range ours {
		if err := r.ops.Delete(name); err != nil {
			r.log.Warn("could not delete host link", "link", name, "err", err)
			continue
		}
		deleted++
	}
	r.finished(deleted, start)
}

// finished logs a batch and tells the observer.
func (r *Reaper) finished(deleted int, start time.Time) {
	took := time.Since(start)
	r.log.Info("deleted retired host links", "count", deleted, "took", took.Round(time.Microsecond))
	if r.observe != nil && deleted > 0 {
		r.observe(deleted, took)
	}
}

// Stop deletes what is pending and ends the loop.
func (r *Reaper) Stop() {
	r.once.Do(func() { close(r.quit) })
	<-r.exit
}
