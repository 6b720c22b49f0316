package marathon

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sseConn is the server side of one event-stream connection.
type sseConn struct {
	n int // connection number, from 1
	w http.ResponseWriter
	r *http.Request
}

func (c *sseConn) flush() { c.w.(http.Flusher).Flush() }

// event writes one event the way Jetty frames it (§4.2) and flushes.
func (c *sseConn) event(typ, data string) {
	fmt.Fprintf(c.w, "event: %s\r\ndata: %s\r\n\r\n", typ, data)
	c.flush()
}

// heartbeat writes Jetty's heartbeat: "\r", flush, "\n", flush.
func (c *sseConn) heartbeat() {
	fmt.Fprint(c.w, "\r")
	c.flush()
	fmt.Fprint(c.w, "\n")
	c.flush()
}

func (c *sseConn) attached() {
	c.event(EventStreamAttached, fmt.Sprintf(`{"remoteAddress":"conn%d","eventType":"event_stream_attached","timestamp":"2020-01-01T00:00:00.000Z"}`, c.n))
}

// wait blocks until the client goes away or d passes; false if the client
// went away.
func (c *sseConn) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.r.Context().Done():
		return false
	case <-t.C:
		return true
	}
}

// sseServer is a Marathon leader serving /v2/events with a script per
// connection.
type sseServer struct {
	srv    *httptest.Server
	conns  atomic.Int64
	script func(c *sseConn)

	mu       sync.Mutex
	auths    []string
	accepts  [][]string
	queries  []url.Values
	connTime []time.Time
}

func newSSEServer(t *testing.T, script func(c *sseConn)) *sseServer {
	s := &sseServer{script: script}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/events" {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		s.auths = append(s.auths, r.Header.Get("Authorization"))
		s.accepts = append(s.accepts, r.Header.Values("Accept"))
		s.queries = append(s.queries, r.URL.Query())
		s.connTime = append(s.connTime, time.Now())
		s.mu.Unlock()
		// Jetty's EventSourceServlet: exact Accept match or 405.
		if !slices.Contains(r.Header.Values("Accept"), "text/event-stream") {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		n := int(s.conns.Add(1))
		w.Header().Set("Content-Type", "text/event-stream;charset=UTF-8")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		s.script(&sseConn{n: n, w: w, r: r})
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sseServer) seen() (auths []string, accepts [][]string, queries []url.Values) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.auths), slices.Clone(s.accepts), slices.Clone(s.queries)
}

// fastStream is a StreamConfig with short times for tests.
func fastStream() StreamConfig {
	return StreamConfig{
		HeartbeatInterval: time.Second,
		MinBackoff:        time.Millisecond,
		MaxBackoff:        5 * time.Millisecond,
	}
}

// next receives one event or fails the test after a while.
func next(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("event channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return nil
}

// expectTypes receives len(want) events and checks their types.
func expectTypes(t *testing.T, ch <-chan Event, want ...string) []Event {
	t.Helper()
	var got []Event
	var types []string
	for range want {
		ev := next(t, ch)
		got = append(got, ev)
		types = append(types, ev.EventType())
	}
	if !reflect.DeepEqual(types, want) {
		t.Fatalf("event types = %v, want %v", types, want)
	}
	return got
}

func subscribe(t *testing.T, c *Client, cfg StreamConfig) (*Stream, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := c.Subscribe(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.Done():
		case <-time.After(10 * time.Second):
			t.Error("stream did not stop")
		}
	})
	return s, cancel
}

func TestStreamRedirectToLeaderKeepsCredentials(t *testing.T) {
	const statusJSON = `{"slaveId":"s","taskId":"a.1","taskStatus":"TASK_RUNNING","appId":"/a","host":"h","ipAddresses":[],"ports":[],"eventType":"status_update_event","timestamp":"t"}`
	tests := []struct {
		name string
		cfg  func(standby string) Config
		want string
	}{
		{"basic in config", func(u string) Config { return Config{URLs: []string{u}, Username: "user", Password: "pass"} }, "Basic dXNlcjpwYXNz"},
		{"basic in URL", func(u string) Config {
			p, _ := url.Parse(u)
			p.User = url.UserPassword("user", "pass")
			return Config{URLs: []string{p.String()}}
		}, "Basic dXNlcjpwYXNz"},
		{"dcos token", func(u string) Config { return Config{URLs: []string{u}, Token: "tok"} }, "token=tok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leader := newSSEServer(t, func(c *sseConn) {
				c.attached()
				c.event(EventStatusUpdate, statusJSON)
				c.wait(time.Minute)
			})
			lu, _ := url.Parse(leader.srv.URL)
			lu.Host = "localhost:" + lu.Port() // a different host: net/http would drop Authorization
			var standbyAuth atomic.Value
			standby := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				standbyAuth.Store(r.Header.Get("Authorization"))
				// LeaderProxyFilter: 302 with an absolute Location, query kept.
				w.Header().Set("Location", lu.String()+r.URL.RequestURI())
				w.WriteHeader(http.StatusFound)
			}))
			defer standby.Close()
			c := newTestClient(t, tc.cfg(standby.URL))
			cfg := fastStream()
			cfg.EventTypes = []string{EventStatusUpdate, EventInstanceChanged}
			s, _ := subscribe(t, c, cfg)
			evs := expectTypes(t, s.Events(), EventResync, EventStreamAttached, EventStatusUpdate)
			if r := evs[0].(*Resync); r.Connection != 1 || r.Reason != "connected" || !strings.Contains(r.URL, "localhost:"+lu.Port()) {
				t.Errorf("resync = %+v", r)
			}
			auths, accepts, queries := leader.seen()
			if auths[0] != tc.want || standbyAuth.Load() != tc.want {
				t.Errorf("Authorization: leader %q standby %q, want %q", auths[0], standbyAuth.Load(), tc.want)
			}
			if !reflect.DeepEqual(accepts[0], []string{"text/event-stream"}) {
				t.Errorf("Accept = %q", accepts[0])
			}
			wantTypes := []string{EventStatusUpdate, EventInstanceChanged, EventStreamAttached}
			if got := queries[0]["event_type"]; !reflect.DeepEqual(got, wantTypes) {
				t.Errorf("event_type = %v, want %v", got, wantTypes)
			}
		})
	}
}

func TestStreamFailoverAcrossURLs(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html><title>Error 502 Could not determine the current leader</title></html>")
	}))
	defer bad.Close()
	good := newSSEServer(t, func(c *sseConn) {
		c.attached()
		c.wait(time.Minute)
	})
	c := newTestClient(t, Config{URLs: []string{downURL(t), bad.URL, good.srv.URL}})
	s, _ := subscribe(t, c, fastStream())
	expectTypes(t, s.Events(), EventResync, EventStreamAttached)
	if c.URL() != good.srv.URL {
		t.Errorf("current URL = %s", c.URL())
	}
}

func TestStreamIdleReconnect(t *testing.T) {
	const hb = 100 * time.Millisecond // idle timeout 300 ms
	const beating = 700 * time.Millisecond
	var lastByte atomic.Int64
	srv := newSSEServer(t, func(c *sseConn) {
		c.attached()
		if c.n == 1 {
			// Heartbeats keep the connection alive past the idle timeout…
			for start := time.Now(); time.Since(start) < beating; {
				c.heartbeat()
				lastByte.Store(time.Now().UnixNano())
				if !c.wait(hb / 4) {
					return
				}
			}
			// …then silence: the client must give up and reconnect.
		}
		c.wait(time.Minute)
	})
	c := newTestClient(t, Config{URLs: []string{srv.srv.URL}})
	cfg := fastStream()
	cfg.HeartbeatInterval = hb
	s, _ := subscribe(t, c, cfg)
	evs := expectTypes(t, s.Events(), EventResync, EventStreamAttached, EventDisconnected, EventResync, EventStreamAttached)
	if d := evs[2].(*Disconnected); !errors.Is(d.Err, ErrIdleTimeout) {
		t.Errorf("disconnect cause = %v", d.Err)
	}
	if evs[4].(*StreamAttachmentEvent).RemoteAddress != "conn2" {
		t.Error("second attach is not from the second connection")
	}
	srv.mu.Lock()
	first, second := srv.connTime[0], srv.connTime[1]
	srv.mu.Unlock()
	if lived := second.Sub(first); lived < beating {
		t.Errorf("reconnected after %v, while heartbeats were still flowing", lived)
	}
	silent := second.Sub(time.Unix(0, lastByte.Load()))
	if silent < 3*hb-30*time.Millisecond || silent > 3*hb+1500*time.Millisecond {
		t.Errorf("reconnected %v after the last byte, want about %v", silent, 3*hb)
	}
}

func TestStreamResyncAfterReconnectOnFirstEvent(t *testing.T) {
	var bSent atomic.Int64
	srv := newSSEServer(t, func(c *sseConn) {
		switch c.n {
		case 1:
			c.event(EventAppTerminated, `{"appId":"/a","eventType":"app_terminated_event","timestamp":"t"}`)
			// Return: Marathon closes the stream (leader abdication).
		default:
			for range 5 {
				c.heartbeat()
				c.wait(20 * time.Millisecond)
			}
			bSent.Store(time.Now().UnixNano())
			c.event(EventAppTerminated, `{"appId":"/b","eventType":"app_terminated_event","timestamp":"t"}`)
			c.wait(time.Minute)
		}
	})
	c := newTestClient(t, Config{URLs: []string{srv.srv.URL}})
	s, _ := subscribe(t, c, fastStream())
	ch := s.Events()
	evs := expectTypes(t, ch, EventResync, EventAppTerminated, EventDisconnected)
	if evs[1].(*AppTerminatedEvent).AppID != "/a" || evs[2].(*Disconnected).Err == nil {
		t.Errorf("events = %+v", evs)
	}
	r := next(t, ch)
	got := time.Now()
	rs, ok := r.(*Resync)
	if !ok || rs.Connection != 2 || rs.Reason != "reconnected" {
		t.Fatalf("after the disconnect: %+v", r)
	}
	if sent := time.Unix(0, bSent.Load()); bSent.Load() == 0 || got.Before(sent) {
		t.Errorf("resync delivered before the new connection's first event was sent")
	}
	if b := next(t, ch).(*AppTerminatedEvent); b.AppID != "/b" {
		t.Errorf("after resync: %+v", b)
	}
	if st := s.Stats(); st.Connections != 2 || st.Disconnects != 1 || st.Received != 2 {
		t.Errorf("stats = %+v", st)
	}
}

func TestStreamBackoffBoundedWithJitter(t *testing.T) {
	var mu sync.Mutex
	var hits []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits = append(hits, time.Now())
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "Too many concurrent requests! Allowed: 1.")
	}))
	defer srv.Close()
	c := newTestClient(t, Config{URLs: []string{srv.URL}})
	cfg := StreamConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}
	rs := []float64{0.999, 0.999, 0.999, 0.5, 0.999, 0}
	var i atomic.Int64
	cfg.Rand = func() float64 { return rs[int(i.Add(1)-1)%len(rs)] }
	s, cancel := subscribe(t, c, cfg)
	want := []time.Duration{9990 * time.Microsecond, 19980 * time.Microsecond, 39960 * time.Microsecond, 20 * time.Millisecond, 39960 * time.Microsecond, 0}
	var delays []time.Duration
	for range want {
		d, ok := next(t, s.Events()).(*Disconnected)
		if !ok {
			t.Fatal("not a Disconnected marker")
		}
		if StatusCode(d.Err) != http.StatusServiceUnavailable {
			t.Errorf("cause = %v", d.Err)
		}
		delays = append(delays, d.Delay)
	}
	cancel()
	if !reflect.DeepEqual(delays, want) {
		t.Errorf("delays = %v, want %v", delays, want)
	}
	mu.Lock()
	defer mu.Unlock()
	for k := 1; k < len(hits) && k < len(want); k++ {
		if gap := hits[k].Sub(hits[k-1]); gap < want[k-1]-2*time.Millisecond {
			t.Errorf("reconnect %d after %v, before its delay %v", k, gap, want[k-1])
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	min, max := 100*time.Millisecond, 3*time.Second
	for failures := 0; failures < 80; failures++ {
		ceil := min * time.Duration(math.Pow(2, float64(min2(failures, 40))))
		if ceil > max || ceil <= 0 {
			ceil = max
		}
		for _, r := range []float64{0, 0.25, 0.5, 0.999999, 1, -1, math.NaN()} {
			d := backoffDelay(failures, min, max, r)
			if d < 0 || d >= ceil || d > max {
				t.Fatalf("backoffDelay(%d, r=%v) = %v, ceiling %v", failures, r, d, ceil)
			}
		}
		if d := backoffDelay(failures, min, max, 0.5); d != ceil/2 {
			t.Fatalf("backoffDelay(%d, 0.5) = %v, want %v", failures, d, ceil/2)
		}
	}
}

func min2(a, b int) int {
	if a < b {
		return a
	}
	return b
}

func TestStreamNotReadyBacksOff(t *testing.T) {
	srv := newSSEServer(t, func(c *sseConn) {
		if c.n <= 3 {
			return // 200 then EOF: not the leader yet
		}
		c.attached()
		c.wait(time.Minute)
	})
	c := newTestClient(t, Config{URLs: []string{srv.srv.URL}})
	cfg := fastStream()
	cfg.MinBackoff, cfg.MaxBackoff = 2*time.Millisecond, time.Second
	cfg.Rand = func() float64 { return 0.5 }
	s, _ := subscribe(t, c, cfg)
	ch := s.Events()
	var delays []time.Duration
	for range 3 {
		d := next(t, ch).(*Disconnected)
		if !errors.Is(d.Err, ErrNotReady) {
			t.Errorf("cause = %v", d.Err)
		}
		delays = append(delays, d.Delay)
	}
	if want := []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}; !reflect.DeepEqual(delays, want) {
		t.Errorf("delays = %v, want %v", delays, want)
	}
	expectTypes(t, ch, EventResync, EventStreamAttached)
}

func TestStreamSlowConsumerDoesNotSlowTheReader(t *testing.T) {
	const total = 10000
	pad := strings.Repeat("x", 500) // 6 MB in all
	written := make(chan struct{})
	srv := newSSEServer(t, func(c *sseConn) {
		if c.n > 1 {
			t.Error("reconnected")
			return
		}
		c.attached()
		for i := 1; i <= total; i++ {
			fmt.Fprintf(c.w, "event: status_update_event\r\ndata: {\"taskId\":\"app.%d\",\"taskStatus\":\"TASK_RUNNING\",\"appId\":\"/app\",\"message\":%q,\"ports\":[%d],\"eventType\":\"status_update_event\",\"timestamp\":\"t\"}\r\n\r\n", i, pad, i)
		}
		c.flush()
		close(written)
		c.wait(time.Minute)
	})
	c := newTestClient(t, Config{URLs: []string{srv.srv.URL}})
	s, _ := subscribe(t, c, fastStream())
	// The consumer sleeps: it reads nothing until the server has written
	// everything, which needs the reader to keep draining the socket.
	select {
	case <-written:
	case <-time.After(30 * time.Second):
		t.Fatalf("server could not write its events; stats %+v", s.Stats())
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.Stats().Received < total+1 {
		if time.Now().After(deadline) {
			t.Fatalf("reader did not take every event while the consumer slept: %+v", s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := s.Stats(); st.MaxQueued < total {
		t.Errorf("stats = %+v", st)
	}
	ch := s.Events()
	expectTypes(t, ch, EventResync, EventStreamAttached)
	for i := 1; i <= total; i++ {
		ev := next(t, ch)
		su, ok := ev.(*StatusUpdateEvent)
		if !ok || len(su.Ports) != 1 || su.Ports[0] != i {
			t.Fatalf("event %d = %T %+v", i, ev, ev)
		}
		if i%1000 == 0 {
			time.Sleep(time.Millisecond) // still slow
		}
	}
	if st := s.Stats(); st.Disconnects != 0 || st.Overflows != 0 || st.Queued != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestStreamQueueOverflowReconnectsAndResyncs(t *testing.T) {
	srv := newSSEServer(t, func(c *sseConn) {
		c.attached()
		if c.n == 1 {
			for i := 0; i < 500; i++ {
				c.event(EventAppTerminated, fmt.Sprintf(`{"appId":"/a%d","eventType":"app_terminated_event","timestamp":"t"}`, i))
			}
		}
		c.wait(time.Minute)
	})
	c := newTestClient(t, Config{URLs: []string{srv.srv.URL}})
	cfg := fastStream()
	cfg.QueueLimit = 100
	s, _ := subscribe(t, c, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Overflows == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no overflow: %+v", s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	ch := s.Events()
	var before int
	for {
		ev := next(t, ch)
		if d, ok := ev.(*Disconnected); ok {
			if !errors.Is(d.Err, ErrQueueOverflow) {
				t.Errorf("cause = %v", d.Err)
			}
			break
		}
		before++ // at most the event the dispatcher already held
	}
	if before > 1 {
		t.Errorf("%d events before the overflow marker; the queue was not dropped", before)
	}
	evs := expectTypes(t, ch, EventResync, EventStreamAttached)
	if evs[0].(*Resync).Connection != 2 {
		t.Errorf("resync = %+v", evs[0])
	}
}

func TestStreamErrorsAreReported(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		check   func(err error) bool
	}{
		{"401", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", `basic realm="Mesosphere"`)
			w.WriteHeader(http.StatusUnauthorized)
		}, func(err error) bool { return StatusCode(err) == http.StatusUnauthorized }},
		{"wrong content type", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html></html>")
		}, func(err error) bool { return strings.Contains(err.Error(), "want text/event-stream") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			c := newTestClient(t, Config{URLs: []string{srv.URL}})
			s, _ := subscribe(t, c, fastStream())
			d, ok := next(t, s.Events()).(*Disconnected)
			if !ok || !tc.check(d.Err) {
				t.Errorf("got %+v", d)
			}
		})
	}
}

func TestStreamUndecodableEventResyncs(t *testing.T) {
	srv := newSSEServer(t, func(c *sseConn) {
		c.attached()
		c.event(EventStatusUpdate, `{"eventType":"status_update_event","ports":["x"]}`)
		c.event(EventStatusUpdate, `not json`)
		c.event(EventAppTerminated, `{"appId":"/after","eventType":"app_terminated_event","timestamp":"t"}`)
		c.event("future_event", `{"eventType":"future_event","timestamp":12345}`)
		c.wait(time.Minute)
	})
	c := newTestClient(t, Config{URLs: []string{srv.srv.URL}})
	s, _ := subscribe(t, c, fastStream())
	ch := s.Events()
	expectTypes(t, ch, EventResync, EventStreamAttached)
	// Two undecodable events in a row: one Resync (coalesced, or two if the
	// dispatcher was quick), then the stream goes on without reconnecting.
	ev := next(t, ch)
	for {
		r, ok := ev.(*Resync)
		if !ok {
			break
		}
		if r.Reason != "undecodable event" || r.Connection != 1 {
			t.Errorf("resync = %+v", r)
		}
		ev = next(t, ch)
	}
	if a, ok := ev.(*AppTerminatedEvent); !ok || a.AppID != "/after" {
		t.Fatalf("after the resync: %+v", ev)
	}
	if raw, ok := next(t, ch).(*RawEvent); !ok || raw.EventType() != "future_event" || raw.Timestamp != "" {
		t.Errorf("unknown type with an odd field: %+v", raw)
	}
	if st := s.Stats(); st.Undecodable != 2 || st.Disconnects != 0 || st.Connections != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestStreamStopsWithContext(t *testing.T) {
	srv := newSSEServer(t, func(c *sseConn) {
		c.attached()
		for c.wait(5 * time.Millisecond) {
			c.heartbeat()
		}
	})
	c := newTestClient(t, Config{URLs: []string{srv.srv.URL}})
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := c.Events(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	expectTypes(t, ch, EventResync, EventStreamAttached)
	cancel()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("channel not closed after cancel")
		}
	}
}

func TestSubscribeRejectsBadTypes(t *testing.T) {
	c := newTestClient(t, Config{URLs: []string{"http://m1:8080"}})
	if _, err := c.Subscribe(context.Background(), StreamConfig{EventTypes: []string{"a&b"}}); err == nil {
		t.Error("bad event type accepted")
	}
}

func TestEventQueueCoalescesMarkersAndOverflows(t *testing.T) {
	q := newEventQueue(3)
	d1, d2 := &Disconnected{Delay: 1}, &Disconnected{Delay: 2}
	r1, r2 := &Resync{Reason: "connected"}, &Resync{Reason: "undecodable event"}
	e := func(id string) Event { return &AppTerminatedEvent{AppID: id} }
	for _, ev := range []Event{d1, d2, r1, r2} {
		q.push(ev)
	}
	for _, ev := range []Event{e("a"), e("b"), e("c")} {
		if !q.push(ev) {
			t.Fatal("event refused below the limit")
		}
	}
	if n, _ := q.lens(); n != 5 {
		t.Fatalf("queued %d, want 5 (d2, r1, a, b, c)", n)
	}
	ctx := context.Background()
	var got []Event
	for range 5 {
		ev, _ := q.pop(ctx)
		got = append(got, ev)
	}
	if got[0] != d2 || got[1] != r1 || got[2].(*AppTerminatedEvent).AppID != "a" || got[4].(*AppTerminatedEvent).AppID != "c" {
		t.Errorf("queue order = %+v", got)
	}
	for _, id := range []string{"x", "y", "z"} {
		q.push(e(id))
	}
	if q.push(e("overflow")) {
		t.Fatal("event accepted over the limit")
	}
	if n, peak := q.lens(); n != 0 || peak != 5 {
		t.Errorf("after overflow: %d queued, peak %d", n, peak)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok := q.pop(cctx); ok {
		t.Error("pop on an empty queue with a canceled context")
	}
}

// manualClock is a Clock whose time moves only with Advance.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
}

type manualTimer struct {
	c      *manualClock
	ch     chan time.Time
	at     time.Time
	active bool
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{c: c, ch: make(chan time.Time, 1), at: c.now.Add(d), active: true}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves time and fires the timers that are due.
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		if t.active && !t.at.After(c.now) {
			t.active = false
			t.ch <- c.now
		}
	}
}

// armedAt reports whether some timer is waiting to fire at at.
func (c *manualClock) armedAt(at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if t.active && t.at.Equal(at) {
			return true
		}
	}
	return false
}

func (t *manualTimer) C() <-chan time.Time { return t.ch }

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

func (t *manualTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.at, t.active = t.c.now.Add(d), true
	return was
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWatchdogWithInjectedClock drives the read-idle watchdog with a
// manual clock: bytes push the deadline out, three silent heartbeat
// intervals cancel the connection with ErrIdleTimeout.
func TestWatchdogWithInjectedClock(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &manualClock{now: t0}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	w := startWatchdog(clk, 30*time.Second, cancel)
	defer w.stop()
	waitFor(t, "the first timer", func() bool { return clk.armedAt(t0.Add(30 * time.Second)) })
	clk.Advance(20 * time.Second)
	w.touch() // a byte at 20 s
	clk.Advance(10 * time.Second)
	// The timer fired at 30 s, saw 10 s of silence and re-armed for 50 s.
	waitFor(t, "the re-armed timer", func() bool { return clk.armedAt(t0.Add(50 * time.Second)) })
	if ctx.Err() != nil {
		t.Fatal("canceled although a byte arrived 10 s ago")
	}
	clk.Advance(20 * time.Second)
	waitFor(t, "the cancel", func() bool { return ctx.Err() != nil })
	if !errors.Is(context.Cause(ctx), ErrIdleTimeout) {
		t.Errorf("cause = %v", context.Cause(ctx))
	}
}

// TestStreamBackoffUsesInjectedClock checks that the reconnect waits on
// the injected clock: without Advance the stream does not retry.
func TestStreamBackoffUsesInjectedClock(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &manualClock{now: t0}
	c := newTestClient(t, Config{URLs: []string{srv.URL}, Clock: clk})
	cfg := StreamConfig{MinBackoff: time.Second, MaxBackoff: time.Minute, Rand: func() float64 { return 0.5 }}
	s, _ := subscribe(t, c, cfg)
	for i, want := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second} {
		d := next(t, s.Events()).(*Disconnected)
		if d.Delay != want || !d.At.Equal(clk.Now()) {
			t.Fatalf("failure %d: delay %v at %v, want %v", i, d.Delay, d.At, want)
		}
		waitFor(t, "the backoff timer", func() bool { return clk.armedAt(clk.Now().Add(want)) })
		time.Sleep(20 * time.Millisecond)
		if got := hits.Load(); got != int64(i+1) {
			t.Fatalf("%d requests before the clock moved, want %d", got, i+1)
		}
		clk.Advance(want)
	}
}
