package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/api/client"
	"github.com/weft-sdn/weft/internal/lab"
	marathonemu "github.com/weft-sdn/weft/internal/marathon/emulator"
)

// marathonDo sends a JSON request to the lab's Marathon emulator.
func marathonDo(t *testing.T, l *lab.Lab, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, l.MarathonURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

type marathonTask struct {
	ID          string `json:"id"`
	Host        string `json:"host"`
	State       string `json:"state"`
	IPAddresses []struct {
		IPAddress string `json:"ipAddress"`
		Protocol  string `json:"protocol"`
	} `json:"ipAddresses"`
}

func appTasks(t *testing.T, l *lab.Lab, app string) []marathonTask {
	t.Helper()
	var r struct {
		Tasks []marathonTask `json:"tasks"`
	}
	if code := marathonDo(t, l, http.MethodGet, "/v2/apps/"+app+"/tasks", nil, &r); code != http.StatusOK {
		t.Fatalf("tasks of %s: %d", app, code)
	}
	return r.Tasks
}

// containerReservations are the reservations of a network held for
// containers (not the agents' spares).
func containerReservations(t *testing.T, l *lab.Lab, network string) []api.IPReservation {
	t.Helper()
	all, _, err := client.ListItems[api.IPReservation](context.Background(), l.Client(), "ip-reservations", url.Values{"network": {network}})
	if err != nil {
		t.Fatal(err)
	}
	var out []api.IPReservation
	for _, r := range all {
		if !strings.HasPrefix(r.Owner, "spare:") {
			out = append(out, r)
		}
	}
	return out
}

func portCount(t *testing.T, l *lab.Lab, network string) int {
	t.Helper()
	p, err := l.Client().List(context.Background(), "ports", map[string][]string{"network": {network}})
	if err != nil {
		t.Fatal(err)
	}
	return len(p.Items)
}

// The seed's sample Marathon app (1.4 style, the contrail-cni-plugin
// network with every Contrail label), 3 instances on blue: each instance
// gets an address on blue that Marathon's task list shows, the instances
// reach each other; scaled to 1, two ports are released; a pod with two
// containers gets one address; deleting both leaves nothing.
func TestMarathonSampleAppLifecycle(t *testing.T) {
	l := upLab(t, 3, time.Second)
	ctx := context.Background()
	cli := l.Client()
	// What the sample's labels name must exist.
	if _, err := cli.CreateNetwork(ctx, api.Network{Meta: api.Meta{Name: "blue"}, Subnets: []api.Subnet{{CIDR: "5.5.5.0/24"}}}); err != nil {
		t.Fatal(err)
	}
	if err := cli.Create(ctx, "security-groups", api.SecurityGroup{Meta: api.Meta{Name: "security_groups_mesos"}, Rules: []api.SecurityGroupRule{{Direction: "ingress"}}}, nil); err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile("../../../shared/fixtures/contrail/contrail-controller/marathon-input-example.json")
	if err != nil {
		t.Fatal(err)
	}
	var app map[string]any
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&app); err != nil { // the file has prose after the JSON
		t.Fatal(err)
	}
	app["id"] = "/sample"
	app["instances"] = 3
	labels := app["ipAddress"].(map[string]any)["labels"].(map[string]any)
	labels["networks"] = "blue"
	if code := marathonDo(t, l, http.MethodPost, "/v2/apps", app, nil); code != http.StatusCreated {
		t.Fatalf("POST /v2/apps: %d", code)
	}

	var tasks []marathonTask
	eventually(t, 30*time.Second, "3 running instances with addresses", func() error {
		tasks = appTasks(t, l, "sample")
		running := 0
		for _, tk := range tasks {
			if tk.State == "TASK_RUNNING" && len(tk.IPAddresses) == 1 {
				running++
			}
		}
		if running != 3 {
			return fmt.Errorf("%d of 3 instances running with an address: %+v", running, tasks)
		}
		return nil
	})
	blue := netip.MustParsePrefix("5.5.5.0/24")
	hosts := map[string]bool{}
	for _, tk := range tasks {
		a := netip.MustParseAddr(tk.IPAddresses[0].IPAddress)
		if !blue.Contains(a) {
			t.Errorf("task %s got %s, outside blue's 5.5.5.0/24", tk.ID, a)
		}
		hosts[tk.Host] = true
	}
	if len(hosts) < 2 {
		t.Errorf("3 instances on %d node(s); the emulator spreads them", len(hosts))
	}
	if n := len(containerReservations(t, l, "blue")); n != 3 {
		t.Errorf("%d container reservations on blue, want 3", n)
	}
	// The instances reach each other.
	for _, from := range tasks {
		for _, to := range tasks {
			if from.ID == to.ID {
				continue
			}
			if !reach(l, from.ID, "", to.IPAddresses[0].IPAddress) {
				t.Errorf("%s cannot reach %s at %s", from.ID, to.ID, to.IPAddresses[0].IPAddress)
			}
		}
	}

	// Scale to 1: two instances are killed, their ports and addresses
	// released.
	if code := marathonDo(t, l, http.MethodPut, "/v2/apps/sample?force=true", map[string]any{"instances": 1}, nil); code >= 300 {
		t.Fatalf("scale: %d", code)
	}
	eventually(t, 30*time.Second, "scaled to 1", func() error {
		if n := len(appTasks(t, l, "sample")); n != 1 {
			return fmt.Errorf("%d tasks", n)
		}
		if n := portCount(t, l, "blue"); n != 1 {
			return fmt.Errorf("%d ports on blue", n)
		}
		if n := len(containerReservations(t, l, "blue")); n != 1 {
			return fmt.Errorf("%d container reservations on blue", n)
		}
		return nil
	})

	// A pod with two containers: one instance, one address.
	pod := map[string]any{
		"id":      "/duo",
		"scaling": map[string]any{"kind": "fixed", "instances": 1},
		"containers": []any{
			map[string]any{"name": "c1", "resources": map[string]any{"cpus": 0.1, "mem": 32}, "exec": map[string]any{"command": map[string]any{"shell": "sleep 1000"}}},
			map[string]any{"name": "c2", "resources": map[string]any{"cpus": 0.1, "mem": 32}, "exec": map[string]any{"command": map[string]any{"shell": "sleep 1000"}}},
		},
		"networks": []any{map[string]any{"mode": "container", "name": "weft", "labels": map[string]any{"networks": "blue"}}},
	}
	if code := marathonDo(t, l, http.MethodPost, "/v2/pods", pod, nil); code != http.StatusCreated {
		t.Fatalf("POST /v2/pods: %d", code)
	}
	eventually(t, 30*time.Second, "the pod's one address", func() error {
		var st struct {
			Instances []struct {
				Networks []struct {
					Addresses []string `json:"addresses"`
				} `json:"networks"`
				Containers []any `json:"containers"`
			} `json:"instances"`
		}
		if code := marathonDo(t, l, http.MethodGet, "/v2/pods/duo::status", nil, &st); code != http.StatusOK {
			return fmt.Errorf("pod status: %d", code)
		}
		if len(st.Instances) != 1 || len(st.Instances[0].Containers) != 2 {
			return fmt.Errorf("pod instances: %+v", st.Instances)
		}
		var addrs []string
		for _, n := range st.Instances[0].Networks {
			addrs = append(addrs, n.Addresses...)
		}
		if len(addrs) != 1 || !blue.Contains(netip.MustParseAddr(addrs[0])) {
			return fmt.Errorf("pod addresses %v, want one on blue", addrs)
		}
		if n := portCount(t, l, "blue"); n != 2 {
			return fmt.Errorf("%d ports on blue, want 2 (app + pod)", n)
		}
		return nil
	})

	// Delete both: nothing left on blue.
	if code := marathonDo(t, l, http.MethodDelete, "/v2/apps/sample?force=true", nil, nil); code >= 300 {
		t.Fatalf("delete app: %d", code)
	}
	if code := marathonDo(t, l, http.MethodDelete, "/v2/pods/duo?force=true", nil, nil); code >= 300 {
		t.Fatalf("delete pod: %d", code)
	}
	eventually(t, 30*time.Second, "nothing left on blue", func() error {
		if n := portCount(t, l, "blue"); n != 0 {
			return fmt.Errorf("%d ports on blue", n)
		}
		if r := containerReservations(t, l, "blue"); len(r) != 0 {
			return fmt.Errorf("%d container reservations on blue: %+v", len(r), r)
		}
		return nil
	})
}

// leading asks a mesos-manager's introspect whether it leads.
func leading(url string) (bool, error) {
	resp, err := http.Get(url + "/leader")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var st struct {
		Leading bool `json:"leading"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st.Leading, err
}

// converged checks that every running instance of app has exactly one
// port on network, carrying the instance's task id and the app id, and
// that no other port is left on the network.
func converged(t *testing.T, l *lab.Lab, app, network string, want int) error {
	tasks := appTasks(t, l, app)
	running := map[string]bool{}
	for _, tk := range tasks {
		if tk.State == "TASK_RUNNING" {
			running[tk.ID] = true
		}
	}
	if len(running) != want {
		return fmt.Errorf("%d running instances, want %d", len(running), want)
	}
	ports, _, err := client.ListItems[api.Port](context.Background(), l.Client(), "ports", url.Values{"network": {network}})
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, port := range ports {
		if !running[port.TaskID] || port.AppID != "/"+app {
			return fmt.Errorf("port %s has task %q app %q: not a running instance of /%s", port.Name, port.TaskID, port.AppID, app)
		}
		if seen[port.TaskID] {
			return fmt.Errorf("two ports for task %s", port.TaskID)
		}
		seen[port.TaskID] = true
	}
	if len(seen) != want {
		return fmt.Errorf("%d ports with metadata, want %d", len(seen), want)
	}
	return nil
}

// The mesos-manager keeps port metadata in line with Marathon through a
// crash mid-deployment, a cut event stream mid-deployment, and the death
// of the leader of two replicas.
func TestMesosManagerConverges(t *testing.T) {
	l := upLab(t, 3, time.Second)
	ctx := context.Background()
	if _, err := l.Client().CreateNetwork(ctx, api.Network{Meta: api.Meta{Name: "blue"}, Subnets: []api.Subnet{{CIDR: "10.30.0.0/24"}}}); err != nil {
		t.Fatal(err)
	}
	app := map[string]any{
		"id": "/web", "instances": 4, "cmd": "sleep 1000", "cpus": 0.1, "mem": 32,
		"container": map[string]any{"type": "MESOS"},
		"networks":  []any{map[string]any{"mode": "container", "name": "weft", "labels": map[string]any{"networks": "blue"}}},
	}
	// 1. Kill the manager right after the deployment starts; restart it.
	if code := marathonDo(t, l, http.MethodPost, "/v2/apps", app, nil); code != http.StatusCreated {
		t.Fatalf("POST /v2/apps: %d", code)
	}
	_ = syscall.Kill(l.Manager.PID, syscall.SIGKILL)
	for l.Manager.Alive() {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second) // the deployment goes on without a manager
	listen := strings.TrimPrefix(l.ManagerURL, "http://")
	m1, err := l.StartManager(listen, "manager")
	if err != nil {
		t.Fatal(err)
	}
	defer stopProcess(m1)
	eventually(t, 30*time.Second, "converged after the manager's restart", func() error { return converged(t, l, "web", "blue", 4) })

	// 2. Cut the event stream while scaling up: the resync repairs.
	if code := marathonDo(t, l, http.MethodPut, "/v2/apps/web?force=true", map[string]any{"instances": 6}, nil); code >= 300 {
		t.Fatalf("scale: %d", code)
	}
	resp, err := http.Post(l.MarathonURL+marathonemu.LabCloseStreamsPath, "", nil)
	if err != nil {
		t.Fatalf("cut the event streams: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("cut the event streams: %s", resp.Status)
	}
	eventually(t, 30*time.Second, "converged after the cut stream", func() error { return converged(t, l, "web", "blue", 6) })

	// 3. A second manager: one leader. Kill the leader; the other leads and
	// converges a scale-down.
	m2URL := "http://" + freeAddr(t)
	m2, err := l.StartManager(strings.TrimPrefix(m2URL, "http://"), "manager-2")
	if err != nil {
		t.Fatal(err)
	}
	defer stopProcess(m2)
	var leader, standby string
	var leaderProc lab.Process
	eventually(t, 15*time.Second, "exactly one leader", func() error {
		a, errA := leading(l.ManagerURL)
		b, errB := leading(m2URL)
		if errA != nil || errB != nil {
			return fmt.Errorf("introspect: %v %v", errA, errB)
		}
		if a == b {
			return fmt.Errorf("leading: manager %v, manager-2 %v", a, b)
		}
		leader, standby, leaderProc = l.ManagerURL, m2URL, m1
		if b {
			leader, standby, leaderProc = m2URL, l.ManagerURL, m2
		}
		return nil
	})
	_ = syscall.Kill(leaderProc.PID, syscall.SIGKILL)
	took := time.Now()
	eventually(t, 15*time.Second, "the standby takes over", func() error {
		if ok, err := leading(standby); err != nil || !ok {
			return fmt.Errorf("standby leading %v (%v)", ok, err)
		}
		return nil
	})
	t.Logf("leader %s killed; %s took over in %s", leader, standby, time.Since(took).Round(10*time.Millisecond))
	if code := marathonDo(t, l, http.MethodPut, "/v2/apps/web?force=true", map[string]any{"instances": 2}, nil); code >= 300 {
		t.Fatalf("scale down: %d", code)
	}
	eventually(t, 30*time.Second, "converged under the new leader", func() error { return converged(t, l, "web", "blue", 2) })
}

// freeAddr is a loopback address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func stopProcess(p lab.Process) {
	if p.Alive() {
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
	}
}
