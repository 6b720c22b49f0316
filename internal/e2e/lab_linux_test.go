package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/kerneltest"
	"github.com/weft-sdn/weft/internal/lab"
	"github.com/weft-sdn/weft/internal/netns"
)

// upLab brings up a lab from the built binaries and takes it down at the
// end of the test, checking that nothing of it is left.
func upLab(t *testing.T, nodes int, quarantine time.Duration, mods ...func(*lab.Options)) *lab.Lab {
	t.Helper()
	kerneltest.RequireRoot(t)
	prefix := randomPrefix()
	opts := lab.Options{
		Nodes: nodes, StateDir: filepath.Join(t.TempDir(), "lab"), BinDir: binDir, Prefix: prefix,
		ControllerListen: freeAddr(t), MarathonListen: freeAddr(t), ManagerListen: freeAddr(t), Quarantine: quarantine, Spares: 2,
	}
	for _, m := range mods {
		m(&opts)
	}
	l, err := lab.Up(context.Background(), opts)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		// Every task's processes must go with the lab: note the tasks'
		// namespaces, then look for anything still in one after down.
		var taskNS []uint64
		for _, n := range l.Nodes {
			nss, _ := filepath.Glob(filepath.Join(n.EmulatorRoot, "*", "ns"))
			for _, ns := range nss {
				var st syscall.Stat_t
				if syscall.Stat(ns, &st) == nil {
					taskNS = append(taskNS, st.Ino)
				}
			}
		}
		if err := l.Down(context.Background()); err != nil {
			t.Errorf("lab down: %v", err)
		}
		if left := processesIn(taskNS); len(left) > 0 {
			t.Errorf("task processes left after down: %v", left)
		}
		if left, _ := netns.List(prefix); len(left) > 0 {
			t.Errorf("namespaces left after down: %v", left)
		}
	})
	return l
}

func run(t *testing.T, l *lab.Lab, req lab.TaskRequest) lab.Task {
	t.Helper()
	task, err := l.RunTask(context.Background(), req)
	if err != nil {
		t.Fatalf("task %s: %v", req.Name, err)
	}
	if len(task.IPs) == 0 {
		t.Fatalf("task %s: no address in its TaskStatus network_infos", req.Name)
	}
	return task
}

// reach reports whether task from reaches addr (one ping, bound to ifname
// when given).
func reach(l *lab.Lab, from, ifname, addr string) bool {
	cmd := []string{"ping", "-c", "1", "-W", "1"}
	if ifname != "" {
		cmd = append(cmd, "-I", ifname)
	}
	var out bytes.Buffer
	code, err := l.Exec(context.Background(), from, append(cmd, addr), nil, &out, &out)
	return err == nil && code == 0
}

// The demo's scenario: tasks on the default network, on blue by label, with
// a static address, with two interfaces; blue reaches blue across nodes,
// red is isolated from blue though both use 10.10.0.0/24.
func TestLabDemoScenario(t *testing.T) {
	l := upLab(t, 3, 10*time.Second)
	ctx := context.Background()
	cli := l.Client()
	for _, name := range []string{"blue", "red"} {
		if _, err := cli.CreateNetwork(ctx, api.Network{Meta: api.Meta{Name: name}, Subnets: []api.Subnet{{CIDR: "10.10.0.0/24"}}}); err != nil {
			t.Fatal(err)
		}
	}
	// Explicit addresses first: an explicit request for an address in the
	// dynamic range loses to an earlier automatic allocation of it.
	b2 := run(t, l, lab.TaskRequest{Name: "blue2", Node: "node3", Networks: []string{"blue"}, IP: "10.10.0.50"})
	b1 := run(t, l, lab.TaskRequest{Name: "blue1", Node: "node2", Networks: []string{"blue"}})
	r1 := run(t, l, lab.TaskRequest{Name: "red1", Node: "node2", Networks: []string{"red"}, IP: b1.IPs[0]})
	multi := run(t, l, lab.TaskRequest{Name: "multi", Node: "node1", Networks: []string{"blue", "red"}})
	web := run(t, l, lab.TaskRequest{Name: "web", Node: "node1"})

	if !strings.HasPrefix(web.IPs[0], "10.32.") {
		t.Errorf("web on the default network got %v", web.IPs)
	}
	if b2.IPs[0] != "10.10.0.50" {
		t.Errorf("static address not honoured: %v", b2.IPs)
	}
	if len(multi.IPs) != 2 || len(multi.Networks) != 2 {
		t.Fatalf("multi: %+v", multi)
	}
	if r1.IPs[0] != b1.IPs[0] {
		t.Errorf("red1 did not get blue1's address in red: %v", r1.IPs)
	}
	// Address discovery: the status addresses are the ports' addresses.
	ports, err := cli.List(ctx, "ports", map[string][]string{"network": {"blue"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ports.Items) != 3 {
		t.Errorf("%d blue ports, want 3", len(ports.Items))
	}

	// Every interface reaches every interface of its network, on any node,
	// and none of another network, even at the same address. The matrix
	// checks who answers, so overlapping addresses cannot fool it.
	var eps []lab.Endpoint
	var probes []lab.Reach
	ok := false
	for deadline := time.Now().Add(15 * time.Second); !ok && time.Now().Before(deadline); {
		if eps, probes, err = l.Matrix(ctx); err != nil {
			t.Fatal(err)
		}
		ok = true
		for _, p := range probes {
			if p.OK != (p.FromNet == p.Network) {
				ok = false
			}
		}
	}
	var matrix strings.Builder
	_ = lab.WriteMatrix(&matrix, eps, probes)
	for _, p := range probes {
		if p.OK != (p.FromNet == p.Network) {
			t.Errorf("%s/%s (%s) -> %s/%s (%s) %s: reached %v", p.From, p.FromIf, p.FromNet, p.To, p.ToIf, p.Network, p.Addr, p.OK)
		}
	}
	if len(probes) < 20 {
		t.Errorf("only %d probes", len(probes))
	}
	t.Logf("connectivity:\n%s", matrix.String())
}

// A killed task's port and address are released; the address rests in
// quarantine, then is handed out again.
func TestLabTaskKillReleasesAfterQuarantine(t *testing.T) {
	const quarantine = 3 * time.Second
	l := upLab(t, 2, quarantine)
	ctx := context.Background()
	cli := l.Client()
	// One host address: 10.20.0.2 (.1 is the gateway).
	if _, err := cli.CreateNetwork(ctx, api.Network{Meta: api.Meta{Name: "tiny"}, Subnets: []api.Subnet{{CIDR: "10.20.0.0/30"}}}); err != nil {
		t.Fatal(err)
	}
	t1 := run(t, l, lab.TaskRequest{Name: "t1", Node: "node1", Networks: []string{"tiny"}})
	if t1.IPs[0] != "10.20.0.2" {
		t.Fatalf("t1 got %v", t1.IPs)
	}
	if err := l.KillTask(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	eventually(t, 10*time.Second, "t1's port and reservation released", func() error {
		ports, err := cli.List(ctx, "ports", map[string][]string{"network": {"tiny"}})
		if err != nil {
			return err
		}
		res, err := cli.List(ctx, "ip-reservations", map[string][]string{"network": {"tiny"}})
		if err != nil {
			return err
		}
		if len(ports.Items)+len(res.Items) > 0 {
			return fmt.Errorf("%d ports and %d reservations left", len(ports.Items), len(res.Items))
		}
		return nil
	})
	// In quarantine: no automatic allocation gets it.
	if _, err := l.RunTask(ctx, lab.TaskRequest{Name: "t2", Node: "node1", Networks: []string{"tiny"}}); err == nil || !strings.Contains(err.Error(), "tiny") {
		t.Fatalf("t2 during quarantine: %v, want an exhaustion error naming tiny", err)
	}
	if time.Since(released) > quarantine {
		t.Fatal("the test was too slow to observe the quarantine")
	}
	_ = l.KillTask(ctx, "t2")
	time.Sleep(time.Until(released.Add(quarantine + 500*time.Millisecond)))
	var t3 lab.Task
	eventually(t, 10*time.Second, "t3 after quarantine", func() error {
		var err error
		t3, err = l.RunTask(ctx, lab.TaskRequest{Name: "t3", Node: "node1", Networks: []string{"tiny"}})
		if err != nil {
			_ = l.KillTask(ctx, "t3")
		}
		return err
	})
	if t3.IPs[0] != "10.20.0.2" {
		t.Fatalf("t3 got %v, want the released 10.20.0.2", t3.IPs)
	}
}

// The emulator crashes and restarts while tasks run: a task that died
// meanwhile is an orphan, cleaned up (CNI DEL: its port released); the live
// task is kept and still reachable.
func TestLabEmulatorRestartCleansOrphans(t *testing.T) {
	l := upLab(t, 2, time.Second)
	ctx := context.Background()
	cli := l.Client()
	if _, err := cli.CreateNetwork(ctx, api.Network{Meta: api.Meta{Name: "blue"}, Subnets: []api.Subnet{{CIDR: "10.10.0.0/24"}}}); err != nil {
		t.Fatal(err)
	}
	live := run(t, l, lab.TaskRequest{Name: "live", Node: "node1", Networks: []string{"blue"}})
	doomed := run(t, l, lab.TaskRequest{Name: "doomed", Node: "node1", Networks: []string{"blue"}})
	run(t, l, lab.TaskRequest{Name: "peer", Node: "node2", Networks: []string{"blue"}})
	if doomed.PID == 0 {
		t.Fatal("no pid for the doomed task")
	}
	// The emulator crashes; meanwhile the doomed task dies.
	if err := l.RestartEmulator(ctx, "node1", func() error {
		return syscall.Kill(doomed.PID, syscall.SIGKILL)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the orphan's port released", func() error {
		ports, err := cli.List(ctx, "ports", map[string][]string{"network": {"blue"}})
		if err != nil {
			return err
		}
		if len(ports.Items) != 2 {
			return fmt.Errorf("%d blue ports, want 2 (live, peer)", len(ports.Items))
		}
		return nil
	})
	if tk, err := l.FindTask(ctx, "live"); err != nil || tk.State != "TASK_RUNNING" || tk.Netns == "" {
		t.Errorf("live task after the restart: %+v %v", tk, err)
	}
	if tk, err := l.FindTask(ctx, "doomed"); err == nil && tk.Netns != "" {
		t.Errorf("the orphan is still attached: %+v", tk)
	}
	if !reach(l, "peer", "", live.IPs[0]) {
		t.Errorf("the live task is unreachable after the emulator restart")
	}
}

// processesIn lists the pids whose network namespace inode is one of inos.
func processesIn(inos []uint64) []int {
	if len(inos) == 0 {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name()+"/ns/net", &st) != nil {
			continue
		}
		if slices.Contains(inos, st.Ino) {
			out = append(out, pid)
		}
	}
	return out
}
