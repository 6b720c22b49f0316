package marathon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of StreamConfig.
const (
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultMinBackoff        = 500 * time.Millisecond
	DefaultMaxBackoff        = 30 * time.Second
	DefaultQueueLimit        = 1 << 16
)

var (
	// ErrIdleTimeout is the cause of a reconnect after the stream sent no
	// byte, not even a heartbeat, for the idle timeout.
	ErrIdleTimeout = errors.New("event stream idle: no data for three heartbeat intervals")
	// ErrQueueOverflow is the cause of a reconnect after the consumer fell
	// so far behind that the queue reached its limit. The queued events
	// are dropped; a Resync follows.
	ErrQueueOverflow = errors.New("event queue overflow: consumer too slow")
	// ErrNotReady is the cause of a reconnect after Marathon accepted the
	// stream and closed it before any event: it is not the leader or not
	// ready yet (§4.3).
	ErrNotReady = errors.New("event stream closed before the first event (marathon not ready)")
)

// StreamConfig configures a Stream. The zero value subscribes to every
// event type with the defaults.
type StreamConfig struct {
	// EventTypes are sent as repeated event_type parameters; empty means
	// every event. A non-empty filter always gets event_stream_attached
	// added, because the first event of a connection is what proves the
	// subscription live (§5 step 3); expect other clients' attachments
	// too. DefaultEventTypes is the §5 set.
	EventTypes []string
	// HeartbeatInterval is Marathon's heartbeat period (10 s unless its
	// Jetty servlet is configured otherwise).
	HeartbeatInterval time.Duration
	// IdleTimeout closes and reopens a connection that delivered no byte
	// for this long, the wait for the response headers included. Default
	// 3 × HeartbeatInterval.
	IdleTimeout time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay: after the n-th
	// consecutive failure the stream waits a uniformly random time in
	// [0, min(MaxBackoff, MinBackoff·2ⁿ)) ("full jitter"). A connection
	// that delivered an event resets n. Defaults 500 ms and 30 s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// QueueLimit bounds the events waiting for the consumer. When it is
	// reached the queue is dropped and the stream reconnects, followed by
	// a Resync. Default 65536.
	QueueLimit int
	// MaxFrameBytes bounds one event. Default DefaultMaxFrameBytes.
	MaxFrameBytes int
	// Rand returns a number in [0, 1) for the jitter. Default
	// math/rand/v2.Float64.
	Rand func() float64
}

func (cfg StreamConfig) withDefaults() StreamConfig {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 3 * cfg.HeartbeatInterval
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.QueueLimit <= 0 {
		cfg.QueueLimit = DefaultQueueLimit
	}
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if len(cfg.EventTypes) > 0 && !slices.Contains(cfg.EventTypes, EventStreamAttached) {
		cfg.EventTypes = append(slices.Clip(cfg.EventTypes), EventStreamAttached)
	}
	return cfg
}

// Stream is a subscription to Marathon's event stream that stays up until
// its context ends. Events arrive on Events() in the order Marathon sent
// them, with *Resync and *Disconnected markers between connections:
//
//	[Disconnected, …], Resync, E1, E2, …, Disconnected, [Disconnected, …], Resync, En, …
//
// (Disconnected first when the initial connection fails.) A Resync also
// follows an event that could not be decoded: the subscription is intact,
// but a change was not understood. Markers the consumer has not received
// yet are coalesced: it sees the latest Disconnected of a run of failures.
//
// The socket reader never waits for the consumer: it hands events to an
// in-order queue (bounded by StreamConfig.QueueLimit) that a second
// goroutine feeds into the channel.
type Stream struct {
	c     *Client
	cfg   StreamConfig
	clock Clock
	out   chan Event
	done  chan struct{}
	q     *eventQueue

	connections atomic.Int64
	received    atomic.Int64
	disconnects atomic.Int64
	overflows   atomic.Int64
	undecodable atomic.Int64
}

// StreamStats are counters of a Stream.
type StreamStats struct {
	// Connections counts connections that delivered an event.
	Connections int64
	// Received counts Marathon events read from the socket.
	Received int64
	// Disconnects counts lost or failed connections.
	Disconnects int64
	// Overflows counts queue overflows.
	Overflows int64
	// Undecodable counts events that could not be decoded (each answered
	// with a Resync).
	Undecodable int64
	// Queued is the number of events waiting for the consumer now, and
	// MaxQueued the most there ever were.
	Queued    int
	MaxQueued int
}

// Subscribe starts a Stream. Its goroutines run until ctx ends; then the
// Events channel is closed (events still queued are dropped) and Done is
// closed.
func (c *Client) Subscribe(ctx context.Context, cfg StreamConfig) (*Stream, error) {
	cfg = cfg.withDefaults()
	for _, t := range cfg.EventTypes {
		if t == "" || strings.ContainsAny(t, "&=#") {
			return nil, fmt.Errorf("subscribe: bad event type %q", t)
		}
	}
	s := &Stream{
		c:     c,
		cfg:   cfg,
		clock: c.clock,
		out:   make(chan Event),
		done:  make(chan struct{}),
		q:     newEventQueue(cfg.QueueLimit),
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.run(ctx)
	}()
	go func() {
		defer wg.Done()
		s.dispatch(ctx)
	}()
	go func() {
		wg.Wait()
		close(s.out)
		close(s.done)
	}()
	return s, nil
}

// Events subscribes to the given event types (all if none) with the default
// StreamConfig and returns the event channel; see Subscribe and Stream.
func (c *Client) Events(ctx context.Context, types []string) (<-chan Event, error) {
	s, err := c.Subscribe(ctx, StreamConfig{EventTypes: types})
	if err != nil {
		return nil, err
	}
	return s.Events(), nil
}

// Events returns the channel of events and markers. It is closed when the
// stream's context ends.
func (s *Stream) Events() <-chan Event { return s.out }

// Done is closed when the stream's goroutines have exited.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Stats returns the stream's counters.
func (s *Stream) Stats() StreamStats {
	n, peak := s.q.lens()
	return StreamStats{
		Connections: s.connections.Load(),
		Received:    s.received.Load(),
		Disconnects: s.disconnects.Load(),
		Overflows:   s.overflows.Load(),
		Undecodable: s.undecodable.Load(),
		Queued:      n,
		MaxQueued:   peak,
	}
}

// run connects, reads and reconnects until ctx ends.
func (s *Stream) run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		live, err := s.connectAndRead(ctx)
		if ctx.Err() != nil {
			return
		}
		if live {
			failures = 0
		}
		delay := backoffDelay(failures, s.cfg.MinBackoff, s.cfg.MaxBackoff, s.cfg.Rand())
		failures++
		s.disconnects.Add(1)
		s.q.push(&Disconnected{Err: err, Delay: delay, At: s.clock.Now()})
		s.c.log.Warn("marathon: event stream lost, reconnecting", "err", err, "delay", delay)
		if !sleepCtx(ctx, s.clock, delay) {
			return
		}
	}
}

// backoffDelay returns the full-jitter delay after the given number of
// consecutive failures: r·min(max, min·2^failures), r in [0, 1).
func backoffDelay(failures int, min, max time.Duration, r float64) time.Duration {
	ceil := min
	for i := 0; i < failures && ceil < max; i++ {
		ceil *= 2
	}
	if ceil > max || ceil <= 0 {
		ceil = max
	}
	if !(r >= 0) { // also NaN
		r = 0
	}
	if r >= 1 {
		r = 0
	}
	return time.Duration(r * float64(ceil))
}

// sleepCtx waits for d on clock; false if ctx ended first.
func sleepCtx(ctx context.Context, clock Clock, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// connection is an open event-stream response.
type connection struct {
	resp   *http.Response
	cancel context.CancelCauseFunc
	ctx    context.Context
	wd     *watchdog
}

func (cn *connection) close() {
	cn.cancel(nil)
	_ = cn.resp.Body.Close()
	cn.wd.stop()
}

// open connects to the first URL that accepts the subscription.
func (s *Stream) open(ctx context.Context) (*connection, error) {
	query := url.Values{}
	if len(s.cfg.EventTypes) > 0 {
		query["event_type"] = s.cfg.EventTypes
	}
	header := http.Header{
		"Accept":        {"text/event-stream"},
		"Cache-Control": {"no-cache"},
	}
	var conn *connection
	err := s.c.failover(ctx, func(ctx context.Context, ep *endpoint) (bool, error) {
		cctx, cancel := context.WithCancelCause(ctx)
		wd := startWatchdog(s.clock, s.cfg.IdleTimeout, cancel)
		u := ep.url("/v2/events", query)
		fail := func(retry bool, err error) (bool, error) {
			wd.stop()
			if errors.Is(context.Cause(cctx), ErrIdleTimeout) {
				err = fmt.Errorf("GET %s: %w", u.Redacted(), ErrIdleTimeout)
			}
			cancel(nil)
			return retry && ctx.Err() == nil, err
		}
		resp, err := s.c.send(cctx, ep, http.MethodGet, u, header)
		if err != nil {
			return fail(true, err)
		}
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
			_ = resp.Body.Close()
			return fail(resp.StatusCode >= 500, newAPIError(http.MethodGet, resp.Request.URL.Redacted(), resp.StatusCode, body))
		}
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
			_ = resp.Body.Close()
			return fail(true, fmt.Errorf("GET %s: content type %q, want text/event-stream", resp.Request.URL.Redacted(), resp.Header.Get("Content-Type")))
		}
		conn = &connection{resp: resp, cancel: cancel, ctx: cctx, wd: wd}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// connectAndRead opens a connection and reads it until it fails. live
// reports whether the connection delivered an event.
func (s *Stream) connectAndRead(ctx context.Context) (live bool, err error) {
	conn, err := s.open(ctx)
	if err != nil {
		return false, err
	}
	defer conn.close()
	where := conn.resp.Request.URL.Redacted()
	s.c.log.Debug("marathon: event stream open", "url", where)
	fr := NewFrameReaderSize(&activityReader{r: conn.resp.Body, wd: conn.wd}, s.cfg.MaxFrameBytes)
	for {
		f, err := fr.Next()
		if err != nil {
			switch {
			case errors.Is(context.Cause(conn.ctx), ErrIdleTimeout):
				err = fmt.Errorf("%s: %w", where, ErrIdleTimeout)
			case errors.Is(err, io.EOF) && !live:
				err = fmt.Errorf("%s: %w", where, ErrNotReady)
			case errors.Is(err, io.EOF):
				err = fmt.Errorf("%s: event stream closed by marathon: %w", where, err)
			default:
				err = fmt.Errorf("%s: read event stream: %w", where, err)
			}
			return live, err
		}
		if strings.TrimSpace(f.Data) == "" {
			continue
		}
		ev, derr := DecodeEvent(f.Event, []byte(f.Data))
		s.received.Add(1)
		switch {
		case !live:
			live = true
			n := s.connections.Add(1)
			reason := "connected"
			if n > 1 {
				reason = "reconnected"
			}
			s.q.push(&Resync{Reason: reason, URL: where, Connection: int(n), At: s.clock.Now()})
			s.c.log.Info("marathon: event stream live", "url", where, "connection", n)
		case derr != nil:
			// The subscription is intact, but a change was not understood:
			// the consumer re-reads the state, no reconnect needed.
			s.q.push(&Resync{Reason: "undecodable event", URL: where, Connection: int(s.connections.Load()), At: s.clock.Now()})
		}
		if derr != nil {
			s.undecodable.Add(1)
			s.c.log.Warn("marathon: undecodable event, resync", "url", where, "event", f.Event, "err", derr)
			continue
		}
		if !s.q.push(ev) {
			s.overflows.Add(1)
			return live, fmt.Errorf("%s: %w (limit %d)", where, ErrQueueOverflow, s.cfg.QueueLimit)
		}
	}
}

// dispatch feeds the queue into the channel, in order.
func (s *Stream) dispatch(ctx context.Context) {
	for {
		ev, ok := s.q.pop(ctx)
		if !ok {
			return
		}
		select {
		case s.out <- ev:
		case <-ctx.Done():
			return
		}
	}
}

// eventQueue is an in-order queue between the reader and the dispatcher.
// Only Marathon events count toward the limit; markers always fit.
type eventQueue struct {
	mu     sync.Mutex
	items  []Event
	head   int
	events int // queued Marathon events (markers excluded)
	limit  int
	peak   int
	notify chan struct{}
}

// isMarker tells whether ev is one of the Stream's own markers.
func isMarker(ev Event) bool {
	switch ev.(type) {
	case *Resync, *Disconnected:
		return true
	}
	return false
}

func newEventQueue(limit int) *eventQueue {
	return &eventQueue{limit: limit, notify: make(chan struct{}, 1)}
}

// push appends ev. Markers always fit; a Marathon event that does not
// fit empties the queue and reports false: the caller reconnects and
// resyncs.
func (q *eventQueue) push(ev Event) bool {
	q.mu.Lock()
	n := len(q.items) - q.head
	if n > 0 {
		// Coalesce adjacent markers the consumer has not seen yet, so a
		// stuck consumer does not grow the queue: the latest Disconnected
		// says enough, and the first Resync already asks for everything.
		tail := &q.items[len(q.items)-1]
		switch ev.(type) {
		case *Disconnected:
			if _, ok := (*tail).(*Disconnected); ok {
				*tail = ev
				q.mu.Unlock()
				return true
			}
		case *Resync:
			if _, ok := (*tail).(*Resync); ok {
				q.mu.Unlock()
				return true
			}
		}
	}
	if !isMarker(ev) {
		if q.events >= q.limit {
			clear(q.items)
			q.items, q.head, q.events = q.items[:0], 0, 0
			q.mu.Unlock()
			return false
		}
		q.events++
	}
	q.items = append(q.items, ev)
	if n+1 > q.peak {
		q.peak = n + 1
	}
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return true
}

// pop removes the oldest event, waiting for one; false when ctx ended.
func (q *eventQueue) pop(ctx context.Context) (Event, bool) {
	for {
		q.mu.Lock()
		if q.head < len(q.items) {
			ev := q.items[q.head]
			q.items[q.head] = nil
			q.head++
			if !isMarker(ev) {
				q.events--
			}
			if q.head == len(q.items) {
				q.items, q.head = q.items[:0], 0
			} else if q.head >= 1024 && q.head*2 >= len(q.items) {
				n := copy(q.items, q.items[q.head:])
				clear(q.items[n:])
				q.items, q.head = q.items[:n], 0
			}
			q.mu.Unlock()
			return ev, true
		}
		q.mu.Unlock()
		select {
		case <-q.notify:
		case <-ctx.Done():
			return nil, false
		}
	}
}

func (q *eventQueue) lens() (n, peak int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head, q.peak
}

// watchdog cancels a connection that received no byte for its timeout.
type watchdog struct {
	clock   Clock
	timeout time.Duration
	last    atomic.Int64
	cancel  context.CancelCauseFunc
	stopc   chan struct{}
	done    chan struct{}
	once    sync.Once
}

func startWatchdog(clock Clock, timeout time.Duration, cancel context.CancelCauseFunc) *watchdog {
	w := &watchdog{clock: clock, timeout: timeout, cancel: cancel, stopc: make(chan struct{}), done: make(chan struct{})}
	w.touch()
	go w.run()
	return w
}

func (w *watchdog) touch() { w.last.Store(w.clock.Now().UnixNano()) }

func (w *watchdog) run() {
	defer close(w.done)
	t := w.clock.NewTimer(w.timeout)
	defer t.Stop()
	for {
		select {
		case <-w.stopc:
			return
		case <-t.C():
			idle := w.clock.Now().Sub(time.Unix(0, w.last.Load()))
			if idle >= w.timeout {
				w.cancel(ErrIdleTimeout)
				return
			}
			t.Reset(w.timeout - idle)
		}
	}
}

// stop ends the watchdog and waits for its goroutine.
func (w *watchdog) stop() {
	w.once.Do(func() { close(w.stopc) })
	<-w.done
}

// activityReader tells the watchdog about every byte that arrives.
type activityReader struct {
	r  io.Reader
	wd *watchdog
}

func (a *activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.wd.touch()
	}
	return n, err
}
