package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	mesosemu "github.com/weft-sdn/weft/internal/mesos/emulator"
)

func TestMainUsage(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"--help"}, 0, "-agents"},
		{[]string{"--bogus"}, 2, "flag provided but not defined"},
		{[]string{"extra"}, 2, "unexpected arguments: extra"},
		{[]string{"--agents", "nosocket"}, 2, "want name=unix:"},
		{[]string{"--agents", "n=unix:"}, 2, "want name=unix:"},
		{[]string{"--basic-auth", "nocolon"}, 2, "want user:pass"},
		{[]string{"--log-level", "loud"}, 2, "--log-level"},
		{[]string{"--leader-url", "ftp://x"}, 2, "leader url"},
		{[]string{"--agents", "n=unix:/nonexistent/agent.sock", "--agent-timeout", "300ms"}, 1, "agent n: no answer"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if code := Main(t.Context(), tt.args, &stdout, &stderr); code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("Main(%q) = %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), tt.code, tt.stderr)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// runMain runs Main until the test ends and returns its base URL.
func runMain(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, append([]string{"--listen", "127.0.0.1:0", "--log-level", "warn"}, args...), &stdout, testWriter{t})
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("Main returned %d", code)
		}
	})
	re := regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)
	var addr string
	eventually(t, "Main to listen", func() bool {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			addr = m[1]
			return true
		}
		return false
	})
	return "http://" + addr
}

func TestMainServesAgentsOverUnixSockets(t *testing.T) {
	stub := &stubAgent{containers: map[string]*mesosemu.Container{}}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: stub}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	base := runMain(t, "--agents", "node1=unix:"+sock, "--heartbeat", "1s", "--agent-poll", "20ms", "--token", "t0k")
	post := func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "token=t0k")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := post("POST", "/v2/apps", `{"id":"/x","cmd":"sleep 1","networks":[{"mode":"container","name":"dcos"}]}`); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	var tasks struct {
		Tasks []map[string]any `json:"tasks"`
	}
	eventually(t, "the task to run", func() bool {
		_, b := post("GET", "/v2/apps/x/tasks", "")
		_ = json.Unmarshal(b, &tasks)
		return len(tasks.Tasks) == 1 && tasks.Tasks[0]["state"] == "TASK_RUNNING"
	})
	task := tasks.Tasks[0]
	if task["host"] != "node1" || task["slaveId"] != "stub-S0" || get(task, "ipAddresses", 0, "ipAddress") != "10.1.2.3" {
		t.Errorf("task %v", task)
	}
	if code, _ := post("GET", "/ping", ""); code != 200 {
		t.Errorf("ping with token: %d", code)
	}
}

func TestMainStandby(t *testing.T) {
	leader := newHarness(t)
	base := runMain(t, "--leader-url", leader.srv.URL)
	resp, err := http.Get(base + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "pong" || resp.Header.Get("X-Marathon-Via") == "" {
		t.Errorf("proxied ping: %s %q %v", resp.Status, b, resp.Header)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}
	resp, err = client.Get(base + "/v2/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || resp.Header.Get("Location") != leader.srv.URL+"/v2/events" {
		t.Errorf("events on standby: %s %v", resp.Status, resp.Header)
	}
}

func TestListenAndServe(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:0", Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx) }()
	eventually(t, "the listener", func() bool { return s.Addr() != "" })
	resp, err := http.Get("http://" + s.Addr() + "/v2/leader")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != `{"leader":"`+s.Addr()+`"}` {
		t.Errorf("leader %s", b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

func TestBusBacklog(t *testing.T) {
	for _, drop := range []bool{false, true} {
		b := newBus(2, drop, testLogger(t))
		sub := b.subscribe("1.2.3.4", nil)
		for i := range 3 {
			b.publish(event{typ: "e", data: []byte{byte('0' + i)}})
		}
		_, subscribed := b.subs[sub]
		closed := false
		select {
		case <-sub.done:
			closed = true
		default:
		}
		if subscribed != drop || closed == drop || len(sub.ch) != 2 {
			t.Errorf("dropEvents=%v: subscribed %v closed %v backlog %d", drop, subscribed, closed, len(sub.ch))
		}
	}
}
