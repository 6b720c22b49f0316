package emulator

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// Fixtures (read-only, shared with the other packages).
const fixtures = "../../../../shared/fixtures/marathon/"

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(fixtures + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// harness is a Marathon emulator with two fake agents behind an
// httptest server.
type harness struct {
	t      *testing.T
	s      *Server
	srv    *httptest.Server
	agents []*FakeAgent
	client *http.Client
	// auth is sent as Authorization unless a request sets its own.
	auth string
}

func newHarness(t *testing.T, mods ...func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, client: &http.Client{Timeout: 30 * time.Second}}
	cfg := Config{Log: testLogger(t)}
	for i := 1; i <= 2; i++ {
		a := NewFakeAgent(FakeAgentConfig{ID: fmt.Sprintf("agent-S%d", i), IP: fmt.Sprintf("198.18.0.%d", i), ContainerSubnet: fmt.Sprintf("10.99.%d", i)})
		h.agents = append(h.agents, a)
		cfg.Agents = append(cfg.Agents, AgentConfig{Hostname: fmt.Sprintf("agent%d", i), ID: fmt.Sprintf("agent-S%d", i), Agent: a})
	}
	for _, m := range mods {
		m(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		cancel()
		h.srv.Close()
		s.Wait()
	})
	return h
}

// do sends a request and returns the response (body read) and body.
func (h *harness) do(method, path, body string, hdr ...string) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if h.auth != "" {
		req.Header.Set("Authorization", h.auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Del(hdr[i])
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, b
}

// json sends a request and decodes a JSON answer.
func (h *harness) json(method, path, body string) (int, any) {
	h.t.Helper()
	resp, b := h.do(method, path, body)
	var v any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &v); err != nil {
			h.t.Fatalf("%s %s: %d %v: %s", method, path, resp.StatusCode, err, b)
		}
	}
	return resp.StatusCode, v
}

// mustJSON is json that also checks the status code.
func (h *harness) mustJSON(method, path, body string, want int) any {
	h.t.Helper()
	code, v := h.json(method, path, body)
	if code != want {
		h.t.Fatalf("%s %s: %d, want %d: %v", method, path, code, want, v)
	}
	return v
}

// sseFrame is one frame of an event stream: an event or a heartbeat.
type sseFrame struct {
	raw       string
	typ       string
	data      map[string]any
	heartbeat bool
}

// stream is an open /v2/events connection read frame by frame.
type stream struct {
	t      *testing.T
	resp   *http.Response
	frames chan sseFrame
	errc   chan error
}

// stream opens an event stream and waits until the server subscribed
// it (events published before that are lost, as with Marathon).
func (h *harness) stream(query string) *stream {
	h.t.Helper()
	subs := func() int {
		h.s.bus.mu.Lock()
		defer h.s.bus.mu.Unlock()
		return len(h.s.bus.subs)
	}
	before := subs()
	st := openStream(h.t, h.srv.URL+"/v2/events"+query, nil)
	eventually(h.t, "the stream to be subscribed", func() bool { return subs() > before })
	return st
}

func openStream(t *testing.T, url string, hdr http.Header) *stream {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("event stream: %s: %s", resp.Status, b)
	}
	st := &stream{t: t, resp: resp, frames: make(chan sseFrame, 100000), errc: make(chan error, 1)}
	go st.read()
	t.Cleanup(func() { resp.Body.Close() })
	return st
}

// read splits the body into frames: "event: T\r\ndata: J\r\n\r\n" or a
// lone "\r\n" heartbeat.
func (st *stream) read() {
	defer close(st.frames)
	br := bufio.NewReader(st.resp.Body)
	var cur []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			st.errc <- err
			return
		}
		if line == "\r\n" {
			if len(cur) == 0 {
				st.frames <- sseFrame{raw: line, heartbeat: true}
				continue
			}
			f := sseFrame{raw: strings.Join(cur, "") + line}
			for _, l := range cur {
				switch {
				case strings.HasPrefix(l, "event: "):
					f.typ = strings.TrimSuffix(strings.TrimPrefix(l, "event: "), "\r\n")
				case strings.HasPrefix(l, "data: "):
					_ = json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimPrefix(l, "data: "), "\r\n")), &f.data)
				}
			}
			cur = nil
			st.frames <- f
			continue
		}
		cur = append(cur, line)
	}
}

// next returns the next frame (heartbeats included).
func (st *stream) next(timeout time.Duration) (sseFrame, bool) {
	select {
	case f, ok := <-st.frames:
		return f, ok
	case <-time.After(timeout):
		return sseFrame{}, false
	}
}

// event returns the next event, skipping heartbeats.
func (st *stream) event() sseFrame {
	st.t.Helper()
	for {
		f, ok := st.next(10 * time.Second)
		if !ok {
			st.t.Fatal("no event within 10 s (or stream closed)")
		}
		if !f.heartbeat {
			return f
		}
	}
}

// until collects events up to and including the first one for which
// stop is true.
func (st *stream) until(stop func(sseFrame) bool) []sseFrame {
	st.t.Helper()
	var out []sseFrame
	for {
		f := st.event()
		out = append(out, f)
		if stop(f) {
			return out
		}
	}
}

// attached waits for the stream's own event_stream_attached.
func (st *stream) attached() sseFrame {
	st.t.Helper()
	f := st.event()
	if f.typ != "event_stream_attached" {
		st.t.Fatalf("first event %s, want event_stream_attached", f.typ)
	}
	return f
}

func isType(typ string) func(sseFrame) bool {
	return func(f sseFrame) bool { return f.typ == typ }
}

// describe renders an event compactly for sequence comparisons.
func describe(f sseFrame) string {
	str := func(k string) string { s, _ := f.data[k].(string); return s }
	switch f.typ {
	case "status_update_event":
		return "status:" + str("taskStatus")
	case "instance_changed_event":
		return "instance:" + str("condition")
	case "deployment_info", "deployment_step_success":
		step, _ := f.data["currentStep"].(map[string]any)
		acts, _ := step["actions"].([]any)
		if len(acts) > 0 {
			a, _ := acts[0].(map[string]any)
			return f.typ + ":" + fmt.Sprint(a["action"])
		}
	}
	return f.typ
}

func describeAll(fs []sseFrame) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, describe(f))
	}
	return out
}

// forInstance keeps the events of one instance (instance id prefix of
// instanceId or taskId).
func forInstance(fs []sseFrame, instanceID string) []sseFrame {
	var out []sseFrame
	for _, f := range fs {
		id, _ := f.data["instanceId"].(string)
		if id == "" {
			id, _ = f.data["taskId"].(string)
		}
		if id != "" && strings.HasPrefix(id, instanceID) {
			out = append(out, f)
		}
	}
	return out
}

// instanceIDs lists the distinct instance ids of instance_changed_event,
// in order of appearance.
func instanceIDs(fs []sseFrame) []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range fs {
		if f.typ != "instance_changed_event" {
			continue
		}
		id, _ := f.data["instanceId"].(string)
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// keys returns the sorted keys of a JSON object.
func keys(v any) []string {
	m, _ := v.(map[string]any)
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// compareKeys checks that got has the keys of want, except those of
// mayLack, and nothing else than want's keys and extra.
func compareKeys(t *testing.T, what string, got, want any, extra, mayLack []string) {
	t.Helper()
	g, w := map[string]bool{}, map[string]bool{}
	for _, k := range keys(got) {
		g[k] = true
	}
	for _, k := range keys(want) {
		w[k] = true
	}
	for k := range w {
		if !g[k] && !contains(mayLack, k) {
			t.Errorf("%s: missing key %q (got %v)", what, k, keys(got))
		}
	}
	for k := range g {
		if !w[k] && !contains(extra, k) {
			t.Errorf("%s: unexpected key %q (fixture %v)", what, k, keys(want))
		}
	}
}

func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
