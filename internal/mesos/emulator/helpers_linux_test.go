//go:build linux

package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/weft-sdn/weft/internal/kerneltest"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain doubles as the CNI plugin of these tests: the emulator runs
// plugins with CNI_COMMAND set, which `go test` never does.
func TestMain(m *testing.M) {
	if os.Getenv("CNI_COMMAND") != "" {
		os.Exit(runTestPlugin())
	}
	os.Exit(m.Run())
}

// pluginBehaviour is what the test plugin does for one command; it is
// read from <plugin dir>/behaviour/<plugin name>.json.
type pluginBehaviour struct {
	Exit   int    `json:"exit"`
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
}

type pluginBehaviours struct {
	Add *pluginBehaviour `json:"add,omitempty"`
	Del *pluginBehaviour `json:"del,omitempty"`
}

// pluginRecord is what the test plugin saw, saved in
// <plugin dir>/records/.
type pluginRecord struct {
	Command string   `json:"command"`
	Argv    []string `json:"argv"`
	Env     []string `json:"env"`
	Stdin   string   `json:"stdin"`
	// Netns is "unset", "live" (CNI_NETNS is an nsfs file other than the
	// plugin's own netns) or "bad".
	Netns string `json:"netns"`
	Nanos int64  `json:"nanos"`
}

// defaultResult is the 0.2.0 result the test plugin prints for ADD.
const defaultResult = `{"cniVersion":"0.2.0","ip4":{"ip":"10.99.0.5/24","gateway":"10.99.0.1","routes":[{"dst":"0.0.0.0/0"}]},"ip6":{"ip":"fd99::5/64"},"dns":{"nameservers":["10.99.0.1"],"search":["lab.weft"]}}`

func runTestPlugin() int {
	self := os.Args[0]
	dir, name := filepath.Dir(self), filepath.Base(self)
	stdin, _ := io.ReadAll(os.Stdin)
	rec := pluginRecord{Command: os.Getenv("CNI_COMMAND"), Argv: os.Args, Env: os.Environ(), Stdin: string(stdin), Netns: "unset", Nanos: time.Now().UnixNano()}
	if p, ok := os.LookupEnv("CNI_NETNS"); ok {
		rec.Netns = "bad"
		var st, own unix.Stat_t
		var fs unix.Statfs_t
		if unix.Statfs(p, &fs) == nil && fs.Type == unix.NSFS_MAGIC && unix.Stat(p, &st) == nil &&
			unix.Stat("/proc/self/ns/net", &own) == nil && st.Ino != own.Ino {
			rec.Netns = "live"
		}
	}
	data, _ := json.Marshal(rec)
	recName := fmt.Sprintf("%s-%s-%s-%s-%d.json", rec.Command, os.Getenv("CNI_CONTAINERID"), os.Getenv("CNI_IFNAME"), name, rec.Nanos)
	if err := os.WriteFile(filepath.Join(dir, "records", recName), data, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 99
	}
	if name == "weft-veth" {
		if code := vethPlugin(rec.Command); code != 0 {
			return code
		}
	}
	var bs pluginBehaviours
	if b, err := os.ReadFile(filepath.Join(dir, "behaviour", name+".json")); err == nil {
		_ = json.Unmarshal(b, &bs)
	}
	b := &pluginBehaviour{}
	switch rec.Command {
	case "ADD":
		if bs.Add != nil {
			b = bs.Add
		} else {
			b.Stdout = defaultResult
		}
	case "DEL":
		if bs.Del != nil {
			b = bs.Del
		}
	}
	fmt.Fprint(os.Stdout, b.Stdout)
	fmt.Fprint(os.Stderr, b.Stderr)
	return b.Exit
}

// vethPlugin really attaches: a veth whose host end (wv<cid>, 10.99.0.1/24)
// stays in the plugin's network namespace and whose other end becomes
// CNI_IFNAME (10.99.0.5/24) in CNI_NETNS. DEL deletes the host end and
// succeeds when it is gone.
func vethPlugin(command string) int {
	cid := os.Getenv("CNI_CONTAINERID")
	if len(cid) < 8 {
		return 90
	}
	host, tmp := "wv"+cid[:8], "wt"+cid[:8]
	run := func(args ...string) error {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v: %s\n", strings.Join(args, " "), err, out)
		}
		return err
	}
	switch command {
	case "ADD":
		nsArg := "--net=" + os.Getenv("CNI_NETNS")
		ifName := os.Getenv("CNI_IFNAME")
		for _, cmd := range [][]string{
			{"ip", "link", "add", host, "type", "veth", "peer", "name", tmp},
			{"ip", "link", "set", tmp, "netns", os.Getenv("CNI_NETNS")},
			{"nsenter", nsArg, "ip", "link", "set", tmp, "name", ifName},
			{"nsenter", nsArg, "ip", "addr", "add", "10.99.0.5/24", "dev", ifName},
			{"nsenter", nsArg, "ip", "link", "set", ifName, "up"},
			{"ip", "addr", "add", "10.99.0.1/24", "dev", host},
			{"ip", "link", "set", host, "up"},
		} {
			if run(cmd...) != nil {
				return 91
			}
		}
	case "DEL":
		if _, err := net.InterfaceByName(host); err == nil && run("ip", "link", "del", host) != nil {
			return 92
		}
	}
	return 0
}

// labEnv is a config directory, a plugin directory of test plugins and
// a root directory, all under t.TempDir().
type labEnv struct {
	t         *testing.T
	base      string
	confDir   string
	pluginDir string
	// pluginsPath is the --network_cni_plugins_dir value: a search path
	// with an empty entry, a missing directory and a trailing slash.
	pluginsPath string
	root        string
}

var envSeq atomic.Int64

// haveTools tells whether every tool is on PATH. A missing tool fails the
// test under CI=true, where they are installed, so that the checks it
// guards never go unseen there.
func haveTools(t *testing.T, tools ...string) bool {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found; CI installs it", tool)
			}
			return false
		}
	}
	return true
}

func newLabEnv(t *testing.T, plugins ...string) *labEnv {
	t.Helper()
	kerneltest.RequireRoot(t)
	base := t.TempDir()
	e := &labEnv{t: t, base: base, confDir: filepath.Join(base, "conf"), pluginDir: filepath.Join(base, "plugins"), root: filepath.Join(base, "root")}
	e.pluginsPath = filepath.Join(base, "missing") + "::" + e.pluginDir + "/"
	for _, d := range []string{e.confDir, e.pluginDir, filepath.Join(e.pluginDir, "records"), filepath.Join(e.pluginDir, "behaviour")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plugins {
		if err := os.Symlink(exe, filepath.Join(e.pluginDir, p)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { e.sweep() })
	return e
}

// pluginPath is the path the emulator resolves a plugin to.
func (e *labEnv) pluginPath(name string) string { return e.pluginDir + "/" + name }

func (e *labEnv) writeConf(file, content string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.confDir, file), []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// bridgeConf is a network configuration using plugin typ.
func bridgeConf(name, typ string) string {
	return fmt.Sprintf(`{"name":%q,"type":%q,"bridge":"wb-%s","isGateway":true,"mtu":1420,"ipam":{"type":"host-local","subnet":"10.99.0.0/24","routes":[{"dst":"0.0.0.0/0"}]}}`, name, typ, name)
}

func (e *labEnv) setBehaviour(plugin string, b pluginBehaviours) {
	e.t.Helper()
	data, err := json.Marshal(b)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.pluginDir, "behaviour", plugin+".json"), data, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// records returns the plugin invocations for command and container, in
// time order.
func (e *labEnv) records(command, cid string) []pluginRecord {
	e.t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.pluginDir, "records"))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []pluginRecord
	for _, ent := range entries {
		if !strings.HasPrefix(ent.Name(), command+"-"+cid+"-") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(e.pluginDir, "records", ent.Name()))
		if err != nil {
			e.t.Fatal(err)
		}
		var r pluginRecord
		if err := json.Unmarshal(data, &r); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Nanos < out[j].Nanos })
	return out
}

// agent starts an Agent on the environment; it is closed at cleanup.
func (e *labEnv) agent(mod ...func(*Config)) *Agent {
	e.t.Helper()
	cfg := Config{
		NetworkCNIConfigDir:  e.confDir,
		NetworkCNIPluginsDir: e.pluginsPath,
		RootDir:              e.root,
		AgentID:              fmt.Sprintf("test-%d-S0", envSeq.Add(1)),
		Hostname:             "agent.test",
		AgentIP:              "198.18.0.1",
		Log:                  slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mod {
		m(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = a.Close() })
	return a
}

// sweep kills every task process recorded under the root, unmounts what
// is mounted there and releases the root's self bind mount.
func (e *labEnv) sweep() {
	entries, _ := os.ReadDir(e.root)
	for _, ent := range entries {
		rec, err := readRecord(filepath.Join(e.root, ent.Name(), recordFile))
		if err != nil || rec.Proc == nil {
			continue
		}
		if rec.Proc.alive() {
			_ = rec.Proc.kill()
		}
		var ws unix.WaitStatus
		for range 100 {
			if pid, err := unix.Wait4(rec.Proc.PID, &ws, unix.WNOHANG, nil); pid != 0 || err != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := ReleaseRoot(e.root); err != nil {
		e.t.Errorf("release root: %v", err)
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// killBehindBack kills and reaps a task process without the agent.
func killBehindBack(t *testing.T, pid int) {
	t.Helper()
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
}

// waitFor reads updates until one satisfies ok.
func waitFor(t *testing.T, sub *Subscription, ok func(StatusUpdate) bool) StatusUpdate {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case u, open := <-sub.C:
			if !open {
				t.Fatal("subscription closed")
			}
			if ok(u) {
				return u
			}
		case <-timeout:
			t.Fatal("timed out waiting for a status update")
		}
	}
}

func isMountPoint(t *testing.T, path string) bool {
	t.Helper()
	mounts, err := readMountInfo()
	if err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	for _, m := range mounts {
		if m.target == real {
			return true
		}
	}
	return false
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, os.ErrNotExist)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func contextWithCancel(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(parent)
}

// unixClient is an HTTP client dialing the unix socket at path.
func unixClient(path string) *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}
}

// doJSON sends a request and decodes the JSON answer into out.
func doJSON(t *testing.T, client *http.Client, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://agent"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, data)
	}
	return resp.StatusCode
}
