package mesosmanager

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/weft-sdn/weft/internal/api"
)

// releaseTimeout bounds the release of the lease at shutdown.
const releaseTimeout = 2 * time.Second

// Elector takes part in the election of one leader among the manager's
// replicas through a controller lease (PUT /v1/leases/{name}). The leader
// renews the lease every RenewInterval; the first renewal that fails ends
// its term at once (the context of the leading work is cancelled before
// anything else happens), and it campaigns again like a standby. A
// standby tries to take the lease every RenewInterval, so it takes over
// within TTL + RenewInterval of the leader's last renewal. Every decision
// is a compare-and-swap in the controller, so two replicas never hold the
// lease at once; a leader stops acting within two renew intervals of its
// last renewal (the renewal's own timeout included), before the TTL runs
// out.
type Elector struct {
	ctrl  Controller
	name  string
	id    string
	ttl   time.Duration
	renew time.Duration
	log   *slog.Logger
	clock Clock
	// onChange is called with true when a term starts and false when it
	// ends.
	onChange func(leading bool)

	mu     sync.Mutex
	status LeaderStatus
}

// LeaderStatus is the election state of a replica, as the introspection
// page shows it.
type LeaderStatus struct {
	// ID is this replica's identity.
	ID string `json:"id"`
	// Leading tells whether this replica leads now.
	Leading bool `json:"leading"`
	// Holder is the leader as last seen (this replica or another); empty
	// when unknown.
	Holder string `json:"holder,omitempty"`
	// Since is when this replica's current term began (when leading).
	Since time.Time `json:"since,omitzero"`
	// LastRenewal is the last successful take or renewal of the lease.
	LastRenewal time.Time `json:"last_renewal,omitzero"`
	Transitions int       `json:"transitions"`
	Terms       int       `json:"terms"`
	LastError   string    `json:"last_error,omitempty"`
	Lease       string    `json:"lease"`
	TTL         string    `json:"ttl"`
}

// NewElector returns an Elector for the lease name held as id.
func NewElector(ctrl Controller, name, id string, ttl time.Duration, log *slog.Logger, clock Clock, onChange func(bool)) *Elector {
	if clock == nil {
		clock = systemClock{}
	}
	if onChange == nil {
		onChange = func(bool) {}
	}
	e := &Elector{ctrl: ctrl, name: name, id: id, ttl: ttl, renew: ttl / 3, log: log, clock: clock, onChange: onChange}
	e.status = LeaderStatus{ID: id, Lease: name, TTL: ttl.String()}
	return e
}

// Status returns the election state.
func (e *Elector) Status() LeaderStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

// IsLeader tells whether this replica leads now.
func (e *Elector) IsLeader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status.Leading
}

// RenewInterval is how often the lease is renewed (and tried by a
// standby).
func (e *Elector) RenewInterval() time.Duration { return e.renew }

// Run campaigns until ctx ends. Each time this replica takes the lease it
// runs lead with a context that ends with the term; Run waits for lead to
// return before it campaigns again. If lead returns while the term lasts
// (it failed), the lease is given up and the replica waits two renew
// intervals before campaigning again, so that another replica may lead.
// At the end the lease is given up if held.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wait := e.renew
		if e.tryAcquire(ctx) {
			if !e.term(ctx, lead) {
				return
			}
		}
		t.Reset(wait)
	}
}

// tryAcquire takes or renews the lease once; it reports success.
func (e *Elector) tryAcquire(ctx context.Context) bool {
	actx, cancel := context.WithTimeout(ctx, e.renew)
	defer cancel()
	l, err := e.ctrl.AcquireLease(actx, e.name, e.id, e.ttl)
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		if errors.Is(err, api.ErrConflict) {
			e.status.LastError = ""
			if l.Holder != "" && l.Holder != e.status.Holder {
				e.log.Info("standby: another replica leads", "lease", e.name, "holder", l.Holder)
				e.status.Holder = l.Holder
			}
		} else if ctx.Err() == nil {
			if msg := err.Error(); msg != e.status.LastError {
				// Logged when it changes, not on every try.
				e.log.Warn("cannot take or renew the lease", "lease", e.name, "err", err)
				e.status.LastError = msg
			}
		}
		return false
	}
	e.status.Holder = l.Holder
	e.status.Transitions = l.Transitions
	e.status.LastRenewal = now
	e.status.LastError = ""
	return true
}

// term leads until a renewal fails, lead returns, or ctx ends. It returns
// false when ctx ended.
func (e *Elector) term(ctx context.Context, lead func(ctx context.Context)) bool {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	e.status.Leading = true
	e.status.Since = e.clock.Now()
	e.status.Terms++
	e.mu.Unlock()
	e.log.Info("leading: took the lease", "lease", e.name, "id", e.id, "ttl", e.ttl)
	e.onChange(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lead(lctx)
	}()
	end := func(reason string, release bool) {
		cancel()
		e.mu.Lock()
		e.status.Leading = false
		e.mu.Unlock()
		e.onChange(false)
		<-done
		if release {
			e.release(ctx)
		}
		e.log.Info("stopped leading", "lease", e.name, "id", e.id, "reason", reason)
	}
	tick := time.NewTicker(e.renew)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			end("shutting down", true)
			return false
		case <-done:
			end("the leading work stopped", true)
			// Let another replica lead for a while.
			select {
			case <-ctx.Done():
				return false
			case <-time.After(e.renew):
			}
			return true
		case <-tick.C:
			if !e.tryAcquire(ctx) {
				if ctx.Err() != nil {
					end("shutting down", true)
					return false
				}
				st := e.Status()
				e.log.Warn("lost the lease: stopping at once", "lease", e.name, "id", e.id, "holder", st.Holder, "err", st.LastError)
				end("renewal failed", false)
				return true
			}
		}
	}
}

// release gives the lease up, with its own short deadline (ctx may be
// over).
func (e *Elector) release(ctx context.Context) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := e.ctrl.ReleaseLease(rctx, e.name, e.id); err != nil {
		e.log.Warn("give up the lease", "lease", e.name, "err", err)
		return
	}
	e.mu.Lock()
	if e.status.Holder == e.id {
		e.status.Holder = ""
	}
	e.mu.Unlock()
}
