package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/kerneltest"
	"github.com/weft-sdn/weft/internal/netns"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(kerneltest.RunWithCommands(m, "weft-lab-bin-", &binDir, "weft", "weft-cni"))
}

func testPrefix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "wl" + hex.EncodeToString(b) + "-"
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// hostState is what the lab must leave as it found it.
type hostState struct {
	links, mounts, tables []string
}

func snapshot(t *testing.T, prefix string) hostState {
	t.Helper()
	var s hostState
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			s.links = append(s.links, strings.TrimSuffix(f[1], ":"))
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, prefix) {
			s.mounts = append(s.mounts, l)
		}
	}
	if out, err := exec.Command("nft", "list", "tables").Output(); err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				s.tables = append(s.tables, l)
			}
		}
	}
	sort.Strings(s.links)
	return s
}

// assertNothingLeft checks namespaces, mounts, links, nftables tables and
// processes against the state before the lab.
func assertNothingLeft(t *testing.T, prefix string, before hostState, procs []Process) {
	t.Helper()
	if left, err := netns.List(prefix); err != nil || len(left) > 0 {
		t.Errorf("namespaces left: %v %v", left, err)
	}
	after := snapshot(t, prefix)
	if len(after.mounts) > 0 {
		t.Errorf("mounts left: %v", after.mounts)
	}
	if strings.Join(after.links, ",") != strings.Join(before.links, ",") {
		t.Errorf("host links changed: %v -> %v", before.links, after.links)
	}
	if strings.Join(after.tables, ",") != strings.Join(before.tables, ",") {
		t.Errorf("nftables tables changed: %v -> %v", before.tables, after.tables)
	}
	for _, p := range procs {
		if p.Alive() {
			t.Errorf("process %d still runs", p.PID)
		}
	}
}

func TestUpStatusDown(t *testing.T) {
	kerneltest.RequireRoot(t)
	ctx := context.Background()
	prefix := testPrefix()
	before := snapshot(t, prefix)
	dir := t.TempDir()
	l, err := Up(ctx, Options{Nodes: 2, StateDir: dir, BinDir: binDir, Prefix: prefix, ControllerListen: freeAddr(t), MarathonListen: freeAddr(t), ManagerListen: freeAddr(t)})
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	procs := l.processes()
	t.Cleanup(func() { _ = l.Down(context.Background()) })

	r, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Nodes) != 2 || r.Nodes[0].Agent != "ready" || r.Nodes[1].Agent != "ready" || r.Nodes[0].VTEP == "" {
		t.Fatalf("status: %+v", r.Nodes)
	}
	// A second lab in the same state dir is refused.
	if _, err := Up(ctx, Options{Nodes: 1, StateDir: dir, BinDir: binDir, Prefix: testPrefix(), ControllerListen: freeAddr(t), MarathonListen: freeAddr(t), ManagerListen: freeAddr(t)}); err == nil {
		t.Fatal("a second lab in the same state dir was accepted")
	}
	// Down as a new process would do it: from the state file alone.
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := loaded.Down(ctx); err != nil {
		t.Fatalf("down: %v", err)
	}
	assertNothingLeft(t, prefix, before, procs)
	if left := processesNaming(dir); len(left) > 0 {
		t.Errorf("processes of the lab still run: %+v", left)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); !os.IsNotExist(err) {
		t.Errorf("state file left: %v", err)
	}
	if err := loaded.Down(ctx); err != nil {
		t.Errorf("second down: %v", err)
	}
}

// `weft lab up` killed half-way: `weft lab down` still removes all it made.
func TestDownAfterUpCrashed(t *testing.T) {
	kerneltest.RequireRoot(t)
	prefix := testPrefix()
	before := snapshot(t, prefix)
	dir := t.TempDir()
	weft := filepath.Join(binDir, "weft")
	up := exec.Command(weft, "lab", "up", "--nodes", "3", "--state-dir", dir, "--controller-listen", freeAddr(t), "--marathon-listen", freeAddr(t), "--manager-listen", freeAddr(t), "--prefix", prefix)
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it as soon as it has started the controller and at least one
	// agent (mid-way through the agents).
	var st State
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(filepath.Join(dir, stateFile))
		if err == nil && json.Unmarshal(b, &st) == nil && st.Controller.PID > 0 && len(st.Nodes) >= 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = up.Process.Signal(syscall.SIGKILL)
	_ = up.Wait()
	if st.Controller.PID == 0 {
		t.Fatal("up never started the controller")
	}
	if st.Prefix != prefix {
		t.Fatalf("lab prefix %q, want %q", st.Prefix, prefix)
	}
	down, err := exec.Command(weft, "lab", "down", "--state-dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("lab down: %v\n%s", err, down)
	}
	// Also the daemons `up` started but had not recorded yet.
	if left := processesNaming(dir); len(left) > 0 {
		t.Errorf("processes of the lab still run: %+v", left)
	}
	procs := []Process{st.Controller}
	for _, n := range st.Nodes {
		procs = append(procs, n.Agent, n.Emulator)
	}
	assertNothingLeft(t, prefix, before, procs)
}
