package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/controller"
	"github.com/weft-sdn/weft/internal/dockerlab"
	"github.com/weft-sdn/weft/internal/lab"
	"github.com/weft-sdn/weft/internal/netns"
	"github.com/weft-sdn/weft/internal/overlay"
)

// labNode returns the controller's node object.
func labNode(t *testing.T, l *lab.Lab, name string) api.Node {
	t.Helper()
	var n api.Node
	if err := l.Client().GetByFQName(context.Background(), "nodes", name, &n); err != nil {
		t.Fatalf("node %s: %v", name, err)
	}
	return n
}

func overlayOf(n api.Node, name string) api.NodeOverlay {
	for _, o := range n.Overlays {
		if o.Name == name {
			return o
		}
	}
	return api.NodeOverlay{}
}

// nodeRoutes lists the routes of a lab node's namespace.
func nodeRoutes(t *testing.T, n lab.NodeState, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", n.Netns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v in %s: %v\n%s", args, n.Netns, err, out)
	}
	return string(out)
}

// TestOverlayDCOS runs DC/OS's default overlay on a 3-node lab: each node
// holds a /24 of 9.0.0.0/8 split into a /25 Mesos half and a /25 Docker
// half; Mesos tasks on different nodes reach each other (IPv4 on dcos,
// IPv6 on dcos6); a real Docker engine started in node3's namespace gets
// the Docker network of node3's Docker half, and a container on it reaches
// a Mesos task on node1; stopping the engine makes node3's overlay
// FAILED with the reason, starting it recovers; a node deleted through
// /overlay-master/agents/delete returns its VTEP and subnets to the pool
// once and every peer removes its routes.
func TestOverlayDCOS(t *testing.T) {
	l := upLab(t, 3, 10*time.Second)
	ctx := context.Background()

	// Assignments: a /24 per node, halves /25, all OK.
	var node1, node3 api.Node
	eventually(t, 30*time.Second, "overlays OK on every node", func() error {
		for _, n := range l.Nodes {
			node := labNode(t, l, n.Name)
			for _, name := range []string{"dcos", "dcos6"} {
				if o := overlayOf(node, name); o.Status != api.OverlayOK {
					return fmt.Errorf("%s %s: %s %s", n.Name, name, o.Status, o.Error)
				}
			}
		}
		return nil
	})
	for _, n := range l.Nodes {
		node := labNode(t, l, n.Name)
		o := overlayOf(node, "dcos")
		sub, err := netip.ParsePrefix(o.Subnet)
		if err != nil || sub.Bits() != 24 || !netip.MustParsePrefix("9.0.0.0/8").Contains(sub.Addr()) {
			t.Fatalf("%s: dcos subnet %q", n.Name, o.Subnet)
		}
		lo, hi := overlay.Halves(sub)
		if o.MesosBridge == nil || o.MesosBridge.IP != lo.String() || o.DockerBridge == nil || o.DockerBridge.IP != hi.String() || lo.Bits() != 25 {
			t.Fatalf("%s: halves %+v %+v of %s", n.Name, o.MesosBridge, o.DockerBridge, sub)
		}
		switch n.Name {
		case "node1":
			node1 = node
		case "node3":
			node3 = node
		}
	}

	// Mesos tasks on the overlay, across nodes, IPv4 and IPv6.
	m1 := run(t, l, lab.TaskRequest{Name: "m1", Node: "node1", Overlay: "dcos"})
	m2 := run(t, l, lab.TaskRequest{Name: "m2", Node: "node2", Overlay: "dcos"})
	if !netip.MustParsePrefix(overlayOf(node1, "dcos").MesosBridge.IP).Contains(netip.MustParseAddr(m1.IPs[0])) {
		t.Fatalf("m1 %s is outside node1's Mesos half", m1.IPs[0])
	}
	if !reach(l, "m1", "", m2.IPs[0]) || !reach(l, "m2", "", m1.IPs[0]) {
		t.Fatalf("Mesos tasks on dcos do not reach each other: %s <-> %s", m1.IPs[0], m2.IPs[0])
	}
	v1 := run(t, l, lab.TaskRequest{Name: "v1", Node: "node1", Overlay: "dcos6"})
	v3 := run(t, l, lab.TaskRequest{Name: "v3", Node: "node3", Overlay: "dcos6"})
	// New IPv6 addresses are tentative until duplicate address detection
	// is done (a second or two).
	eventually(t, 10*time.Second, "dcos6 tasks reach each other", func() error {
		if !reach(l, "v1", "", strings.Split(v3.IPs[0], "/")[0]) || !reach(l, "v3", "", strings.Split(v1.IPs[0], "/")[0]) {
			return fmt.Errorf("%s <-> %s", v1.IPs, v3.IPs)
		}
		return nil
	})

	// A real Docker engine in node3's namespace, where node3's agent
	// looks for it.
	n3 := l.Nodes[2]
	d, err := dockerlab.Start(ctx, dockerlab.Options{Netns: netns.Path(n3.Netns), Dir: filepath.Dir(n3.DockerSocket())})
	if err != nil {
		t.Fatalf("start dockerd in %s: %v", n3.Netns, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(d.LogPath()); err == nil {
				t.Logf("dockerd log (tail):\n%s", b[max(0, len(b)-4000):])
			}
		}
		if err := d.Cleanup(context.Background()); err != nil {
			t.Errorf("docker cleanup: %v", err)
		}
		if left := d.Processes(); len(left) > 0 {
			t.Errorf("docker processes left: %v", left)
		}
	})
	cli, err := d.Client()
	if err != nil {
		t.Fatal(err)
	}
	dockerHalf := overlayOf(node3, "dcos").DockerBridge.IP
	eventually(t, 30*time.Second, "the dcos Docker network on node3", func() error {
		n, err := cli.NetworkInspect(ctx, "dcos")
		if err != nil {
			return err
		}
		if n.BridgeName() != "d-dcos" || len(n.Subnets) == 0 || n.Subnets[0].String() != dockerHalf {
			return fmt.Errorf("network %+v, want bridge d-dcos on %s", n, dockerHalf)
		}
		return nil
	})
	if err := dockerlab.EnsureImage(ctx, d, ""); err != nil {
		t.Fatal(err)
	}
	id, err := dockerlab.Run(ctx, d, dockerlab.RunOptions{Name: "web", Network: "dcos", Cmd: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	ip, err := dockerlab.ContainerIP(ctx, d, id, "dcos")
	if err != nil || !netip.MustParsePrefix(dockerHalf).Contains(ip) {
		t.Fatalf("container address %s (%v) is outside node3's Docker half %s", ip, err, dockerHalf)
	}
	if out, err := dockerlab.Exec(ctx, d, id, "ping", "-c", "2", "-W", "2", m1.IPs[0]); err != nil {
		t.Fatalf("docker container %s on node3 does not reach Mesos task m1 %s on node1: %v\n%s", ip, m1.IPs[0], err, out)
	}
	if !reach(l, "m1", "", ip.String()) {
		t.Errorf("Mesos task m1 does not reach the docker container %s", ip)
	}

	// The engine stops: node3's overlays fail with the reason; it comes
	// back: they recover.
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "dcos FAILED on node3", func() error {
		o := overlayOf(labNode(t, l, "node3"), "dcos")
		if o.Status != api.OverlayFailed || !strings.Contains(o.Error, "docker engine") {
			return fmt.Errorf("%s %q", o.Status, o.Error)
		}
		return nil
	})
	raw, err := l.Client().OverlayState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := overlay.DecodeState(raw)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := st.Agent(n3.Underlay); !ok || a.Overlays[0].State == nil || a.Overlays[0].State.Status != overlay.StatusFailed ||
		!strings.Contains(a.Overlays[0].State.Error, "docker engine") {
		t.Errorf("/overlay-master/state of node3: %s", raw)
	}
	if err := d.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "dcos OK on node3 again", func() error {
		if o := overlayOf(labNode(t, l, "node3"), "dcos"); o.Status != api.OverlayOK {
			return fmt.Errorf("%s %q", o.Status, o.Error)
		}
		return nil
	})

	// node2 goes (its agent is killed) and is deleted through DC/OS's
	// endpoint: its VTEP and subnets are freed once, and node1 and node3
	// remove their routes, neighbours and FDB entries to it.
	n2 := l.Nodes[1]
	node2 := labNode(t, l, "node2")
	gone2 := overlayOf(node2, "dcos").Subnet
	// The peers route to node2 first (so that the checks below see a
	// removal, not an absence).
	for _, n := range []lab.NodeState{l.Nodes[0], l.Nodes[2]} {
		fdb, _ := exec.Command("bridge", "-n", n.Netns, "fdb", "show", "dev", "vtep1024").CombinedOutput()
		if r, nb := nodeRoutes(t, n, "route"), nodeRoutes(t, n, "neigh", "show", "dev", "vtep1024"); !strings.Contains(r, gone2+" via "+node2.VTEPIP) ||
			!strings.Contains(nb, node2.VTEPIP+" ") || !strings.Contains(string(fdb), node2.VTEPMAC) {
			t.Fatalf("%s has no route, neighbour or FDB entry to node2 before the delete:\n%s\n%s\n%s", n.Name, r, nb, fdb)
		}
	}
	if n2.Agent.Alive() {
		_ = syscall.Kill(n2.Agent.PID, syscall.SIGKILL)
	}
	usage := func() (used int) {
		raw, err := l.Client().OverlayUsage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var u struct {
			Overlays []controller.OverlayUsage `json:"overlays"`
		}
		if err := json.Unmarshal(raw, &u); err != nil {
			t.Fatal(err)
		}
		for _, o := range u.Overlays {
			if o.Name == "dcos" {
				return o.SubnetsUsed
			}
		}
		t.Fatalf("no dcos in /v1/overlays: %s", raw)
		return 0
	}
	before := usage()
	for range 2 { // twice: the second finds nothing to free
		if _, err := l.Client().DeleteOverlayAgents(ctx, []string{n2.Underlay}); err != nil {
			t.Fatal(err)
		}
	}
	if after := usage(); after != before-1 {
		t.Errorf("dcos subnets in use: %d before, %d after the delete; want one freed", before, after)
	}
	for _, n := range []lab.NodeState{l.Nodes[0], l.Nodes[2]} {
		eventually(t, 15*time.Second, n.Name+" drops node2", func() error {
			if r := nodeRoutes(t, n, "route"); strings.Contains(r, gone2) {
				return fmt.Errorf("route to %s still there:\n%s", gone2, r)
			}
			if nb := nodeRoutes(t, n, "neigh", "show", "dev", "vtep1024"); strings.Contains(nb, node2.VTEPIP+" ") {
				return fmt.Errorf("neighbour %s still there:\n%s", node2.VTEPIP, nb)
			}
			fdb, err := exec.Command("bridge", "-n", n.Netns, "fdb", "show", "dev", "vtep1024").CombinedOutput()
			if err != nil {
				return fmt.Errorf("bridge fdb: %v %s", err, fdb)
			}
			if strings.Contains(string(fdb), node2.VTEPMAC) {
				return fmt.Errorf("fdb entry %s still there:\n%s", node2.VTEPMAC, fdb)
			}
			return nil
		})
	}
	// The freed VTEP and subnet go to the next node that registers.
	n, _, err := registerNode(ctx, l, "node9", "198.18.0.99")
	if err != nil {
		t.Fatal(err)
	}
	if got := overlayOf(n, "dcos").Subnet; got != gone2 || n.VTEPIP != node2.VTEPIP {
		t.Errorf("new node got %s %s, want node2's freed %s %s", got, n.VTEPIP, gone2, node2.VTEPIP)
	}
}

// registerNode registers a node with the lab's controller.
func registerNode(ctx context.Context, l *lab.Lab, name, underlay string) (api.Node, bool, error) {
	return l.Client().RegisterNode(ctx, api.Node{Meta: api.Meta{Kind: api.KindNode, Name: name}, UnderlayIP: underlay})
}

// TestOverlayWeftCNI runs the overlays with CNI configurations in weft
// mode: weft-cni asks the node's agent, which allocates in the node's
// Mesos half and puts the container on the Mesos bridge.
func TestOverlayWeftCNI(t *testing.T) {
	l := upLab(t, 2, 10*time.Second, func(o *lab.Options) { o.OverlayCNI = "weft" })
	eventually(t, 30*time.Second, "weft-mode CNI configuration on node2", func() error {
		b, err := os.ReadFile(filepath.Join(l.Nodes[1].CNIConfigDir, "dcos6.conf"))
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), `"type":"weft-cni"`) {
			return fmt.Errorf("dcos6.conf: %s", b)
		}
		return nil
	})
	node1 := labNode(t, l, "node1")
	a := run(t, l, lab.TaskRequest{Name: "a", Node: "node1", Overlay: "dcos"})
	b := run(t, l, lab.TaskRequest{Name: "b", Node: "node2", Overlay: "dcos"})
	half := netip.MustParsePrefix(overlayOf(node1, "dcos").MesosBridge.IP)
	if got := netip.MustParseAddr(strings.Split(a.IPs[0], "/")[0]); got != overlay.Gateway(half).Next() {
		t.Errorf("first task on node1 got %s, want the first address after the gateway of %s", got, half)
	}
	if !reach(l, "a", "", strings.Split(b.IPs[0], "/")[0]) || !reach(l, "b", "", strings.Split(a.IPs[0], "/")[0]) {
		t.Fatalf("weft-mode tasks on dcos do not reach each other: %s <-> %s", a.IPs, b.IPs)
	}
	a6 := run(t, l, lab.TaskRequest{Name: "a6", Node: "node1", Overlay: "dcos6"})
	b6 := run(t, l, lab.TaskRequest{Name: "b6", Node: "node2", Overlay: "dcos6"})
	eventually(t, 10*time.Second, "weft-mode tasks on dcos6 reach each other", func() error {
		if !reach(l, "a6", "", strings.Split(b6.IPs[0], "/")[0]) {
			return fmt.Errorf("%s -> %s", a6.IPs, b6.IPs)
		}
		return nil
	})
	// The ports are at the controller; killing a task releases its port.
	if err := l.KillTask(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the killed task's port is gone", func() error {
		if n := portCount(t, l, controller.OverlayNetworkName("dcos")); n != 1 {
			return fmt.Errorf("%d ports on dcos, want 1", n)
		}
		return nil
	})
}
