package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/dataplane"
)

// result020 and result100 are the shapes a runtime reads back.
type result020 struct {
	CNIVersion string `json:"cniVersion"`
	IP4        *struct {
		IP      string `json:"ip"`
		Gateway string `json:"gateway"`
	} `json:"ip4"`
	IP6 *struct {
		IP string `json:"ip"`
	} `json:"ip6"`
}

type result100 struct {
	CNIVersion string `json:"cniVersion"`
	IPs        []struct {
		Address string `json:"address"`
		Gateway string `json:"gateway"`
	} `json:"ips"`
}

func addr(cidr string) string { a, _, _ := strings.Cut(cidr, "/"); return a }

func networkInfo(network string, extra string) string {
	labels := ""
	if network != "" {
		labels = `,"labels":{"labels":[{"key":"networks","value":"` + network + `"}]}`
	}
	ips := `[{"protocol":"IPv4"}]`
	if extra != "" {
		ips = extra
	}
	return `{"ip_addresses":` + ips + labels + `,"name":"weft"}`
}

// Two nodes; containers on blue on each reach each other (ping, TCP both
// ways); red reuses blue's subnet and stays isolated; an explicit address
// is honoured; a container with eth0 on blue and eth1 on red uses both; a
// dual-stack network carries IPv4 and IPv6 across nodes.
func TestVirtualNetworksAcrossNodes(t *testing.T) {
	c := newCluster(t, 2)
	n1, n2 := c.nodes[0], c.nodes[1]
	c.createNetwork("blue", api.Subnet{CIDR: "10.0.0.0/24"})
	c.createNetwork("red", api.Subnet{CIDR: "10.0.0.0/24"})
	c.createNetwork("dual", api.Subnet{CIDR: "10.1.0.0/24"}, api.Subnet{CIDR: "fd00:1::/64"})

	// cniVersion 0.2.0: what Mesos parses, ip4 with a gateway.
	b1 := c.newContainer("b1")
	raw, err := b1.add(t, n1, "eth0", "0.2.0", networkInfo("blue", ""))
	if err != nil {
		t.Fatalf("ADD b1: %v", err)
	}
	var r020 result020
	if err := json.Unmarshal(raw, &r020); err != nil || r020.IP4 == nil || r020.IP4.Gateway != "10.0.0.1" || !strings.HasSuffix(r020.IP4.IP, "/24") {
		t.Fatalf("0.2.0 result: %v %s", err, raw)
	}
	// cniVersion 1.0.0: ips.
	b2 := c.newContainer("b2")
	raw, err = b2.add(t, n2, "eth0", "1.0.0", networkInfo("default-domain:default-project:blue", ""))
	if err != nil {
		t.Fatalf("ADD b2: %v", err)
	}
	var r100 result100
	if err := json.Unmarshal(raw, &r100); err != nil || len(r100.IPs) != 1 || r100.IPs[0].Gateway != "10.0.0.1" {
		t.Fatalf("1.0.0 result: %v %s", err, raw)
	}
	b1IP, b2IP := addr(r020.IP4.IP), addr(r100.IPs[0].Address)

	// Ping and TCP both ways across nodes.
	eventually(t, 10*time.Second, "b1 -> b2", func() error { return b1.ping(t, b2IP) })
	if err := b2.ping(t, b1IP); err != nil {
		t.Fatal(err)
	}
	b1.serveTCP(t, 8080)
	b2.serveTCP(t, 8080)
	if got, err := b1.dialTCP(b2IP, 8080); err != nil || got != "b2" {
		t.Fatalf("TCP b1 -> b2: %q %v", got, err)
	}
	if got, err := b2.dialTCP(b1IP, 8080); err != nil || got != "b1" {
		t.Fatalf("TCP b2 -> b1: %q %v", got, err)
	}

	// Red: r1 takes b1's very address (explicit, honoured), r2 an address
	// blue does not have. Red peers reach each other; blue and red do not
	// reach each other.
	r1 := c.newContainer("r1")
	raw, err = r1.add(t, n2, "eth0", "0.2.0", networkInfo("red", `[{"protocol":"IPv4","ip_address":"`+b1IP+`"}]`))
	if err != nil {
		t.Fatalf("ADD r1 with explicit %s: %v", b1IP, err)
	}
	var rr result020
	if err := json.Unmarshal(raw, &rr); err != nil || rr.IP4 == nil || addr(rr.IP4.IP) != b1IP {
		t.Fatalf("explicit address not honoured: %s", raw)
	}
	r2 := c.newContainer("r2")
	if _, err := r2.add(t, n1, "eth0", "0.2.0", networkInfo("red", `[{"ip_address":"10.0.0.200"}]`)); err != nil {
		t.Fatalf("ADD r2: %v", err)
	}
	eventually(t, 10*time.Second, "r2 -> r1 (red across nodes)", func() error { return r2.ping(t, b1IP) })
	r2.serveTCP(t, 8080)
	r1.serveTCP(t, 8081)
	if got, err := r2.dialTCP(b1IP, 8081); err != nil || got != "r1" {
		t.Fatalf("red TCP r2 -> %s reached %q (%v), want r1", b1IP, got, err)
	}
	if got, err := b2.dialTCP(b1IP, 8080); err != nil || got != "b1" {
		t.Fatalf("blue TCP b2 -> %s reached %q (%v), want b1", b1IP, got, err)
	}
	if err := b2.ping(t, "10.0.0.200"); err == nil {
		t.Fatal("blue b2 reached red's 10.0.0.200")
	}
	if err := r1.ping(t, b2IP); err == nil {
		t.Fatalf("red r1 reached blue's %s", b2IP)
	}

	// Two interfaces on two networks in one container.
	m := c.newContainer("m")
	if _, err := m.add(t, n1, "eth0", "0.2.0", networkInfo("blue", "")); err != nil {
		t.Fatalf("ADD m eth0: %v", err)
	}
	if _, err := m.add(t, n1, "eth1", "0.2.0", networkInfo("red", `[{"ip_address":"10.0.0.201"}]`)); err != nil {
		t.Fatalf("ADD m eth1: %v", err)
	}
	if err := m.ping(t, b2IP); err != nil {
		t.Fatalf("m eth0 (blue): %v", err)
	}
	// m's eth1 address is an explicit one outside node1's red blocks: node2
	// learns its /32 through the watch stream.
	eventually(t, 10*time.Second, "m eth1 (red) -> r1", func() error {
		if out, err := m.exec("ping", "-I", "eth1", "-c", "1", "-W", "1", b1IP); err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	})
	if err := r1.ping(t, "10.0.0.201"); err != nil {
		t.Fatalf("r1 -> m eth1: %v", err)
	}

	// Dual stack across nodes.
	d1, d2 := c.newContainer("d1"), c.newContainer("d2")
	both := `[{"protocol":"IPv4"},{"protocol":"IPv6"}]`
	raw1, err := d1.add(t, n1, "eth0", "0.2.0", networkInfo("dual", both))
	if err != nil {
		t.Fatalf("ADD d1: %v", err)
	}
	raw2, err := d2.add(t, n2, "eth0", "1.0.0", networkInfo("dual", both))
	if err != nil {
		t.Fatalf("ADD d2: %v", err)
	}
	var d1r result020
	var d2r result100
	if err := json.Unmarshal(raw1, &d1r); err != nil || d1r.IP4 == nil || d1r.IP6 == nil {
		t.Fatalf("dual-stack 0.2.0 result: %s", raw1)
	}
	if err := json.Unmarshal(raw2, &d2r); err != nil || len(d2r.IPs) != 2 {
		t.Fatalf("dual-stack 1.0.0 result: %s", raw2)
	}
	for _, ip := range d2r.IPs {
		eventually(t, 10*time.Second, "d1 -> "+ip.Address, func() error { return d1.ping(t, addr(ip.Address)) })
	}
	if err := d2.ping(t, addr(d1r.IP6.IP)); err != nil {
		t.Fatal(err)
	}

	// Ports are recorded in the controller with their addresses.
	eventually(t, 10*time.Second, "ports recorded", func() error {
		l, err := c.cli.List(context.Background(), "ports", map[string][]string{"network": {"blue"}})
		if err != nil {
			return err
		}
		if len(l.Items) != 3 {
			return fmt.Errorf("%d blue ports, want 3 (b1, b2, m)", len(l.Items))
		}
		return nil
	})
}

// DEL is idempotent; failed ADDs leave no link, route or reservation.
func TestDeleteIdempotentAndFailedAddLeavesNothing(t *testing.T) {
	c := newCluster(t, 1)
	n := c.nodes[0]
	c.createNetwork("blue", api.Subnet{CIDR: "10.0.0.0/24"})
	c.createNetwork("tiny", api.Subnet{CIDR: "10.5.0.0/30"}) // one host address

	// DEL of a container never seen, twice, and with a netns that is gone.
	ghost := &container{name: "ghost", id: "never-added", path: "/run/netns/" + c.prefix + "gone"}
	for range 2 {
		if err := ghost.del(t, n, "eth0", ghost.path); err != nil {
			t.Fatalf("DEL of unknown container: %v", err)
		}
	}
	a := c.newContainer("a")
	if _, err := a.add(t, n, "eth0", "0.2.0", networkInfo("blue", "")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := a.del(t, n, "eth0", a.path); err != nil {
			t.Fatalf("DEL: %v", err)
		}
	}
	b := c.newContainer("b")
	if _, err := b.add(t, n, "eth0", "0.2.0", networkInfo("blue", "")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "delete", filepath.Base(b.path)).CombinedOutput(); err != nil {
		t.Fatalf("delete netns: %v %s", err, out)
	}
	if err := b.del(t, n, "eth0", b.path); err != nil {
		t.Fatalf("DEL with its netns gone: %v", err)
	}
	if err := b.del(t, n, "eth0", ""); err != nil {
		t.Fatalf("DEL without CNI_NETNS: %v", err)
	}

	// The one address of tiny goes to t1; t2 finds the network exhausted.
	t1 := c.newContainer("t1")
	if _, err := t1.add(t, n, "eth0", "0.2.0", networkInfo("tiny", "")); err != nil {
		t.Fatalf("ADD t1 on tiny: %v", err)
	}
	before, resBefore := n.settledDump(), c.reservations("tiny")
	failures := []struct {
		name, info, want string
	}{
		{"exhausted", networkInfo("tiny", ""), "tiny"},
		{"unknown network", networkInfo("green", ""), "green"},
		{"address outside", networkInfo("blue", `[{"ip_address":"10.9.9.9"}]`), "10.9.9.9"},
		{"address taken", networkInfo("tiny", `[{"ip_address":"10.5.0.2"}]`), "10.5.0.2"},
	}
	for _, f := range failures {
		x := c.newContainer("x-" + strings.ReplaceAll(f.name, " ", "-"))
		_, err := x.add(t, n, "eth0", "0.2.0", f.info)
		if err == nil || !strings.Contains(err.Error(), f.want) {
			t.Errorf("%s: ADD error %v, want one naming %q", f.name, err, f.want)
		}
		if out, _ := x.exec("ip", "-o", "link", "show"); strings.Contains(out, "eth0") {
			t.Errorf("%s: eth0 left in the container: %s", f.name, out)
		}
	}
	if after := n.dump(); after != before {
		t.Errorf("failed ADDs changed the data plane:\n--- before\n%s\n--- after\n%s", before, after)
	}
	if resAfter := c.reservations("tiny"); len(resAfter) != len(resBefore) {
		t.Errorf("failed ADDs changed tiny's reservations: %d -> %d", len(resBefore), len(resAfter))
	}

	// Broken JSON on stdin: a CNI error, nothing attached.
	cmd := exec.Command(filepath.Join(binDir, "weft-cni"))
	cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=broken", "CNI_NETNS=" + t1.path, "CNI_IFNAME=eth1", "CNI_PATH=" + binDir}
	cmd.Stdin = strings.NewReader(`{"cniVersion":"0.2.0","name":"weft","type":"weft-cni",`)
	out, err := cmd.Output()
	var cniErr struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}
	if err == nil || json.Unmarshal(out, &cniErr) != nil || cniErr.Code == 0 || cniErr.Msg == "" {
		t.Fatalf("broken JSON: err %v, stdout %s", err, out)
	}
	if after := n.dump(); after != before {
		t.Errorf("broken JSON changed the data plane:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

// The agent killed with SIGKILL during a continuous ping between two
// containers on different nodes: no ping is lost; after a restart the data
// plane is identical and a new container attaches.
func TestAgentKilledDuringPing(t *testing.T) {
	c := newCluster(t, 2)
	n1, n2 := c.nodes[0], c.nodes[1]
	c.createNetwork("blue", api.Subnet{CIDR: "10.0.0.0/24"})
	a, b := c.newContainer("a"), c.newContainer("b")
	if _, err := a.add(t, n1, "eth0", "0.2.0", networkInfo("blue", "")); err != nil {
		t.Fatal(err)
	}
	raw, err := b.add(t, n2, "eth0", "0.2.0", networkInfo("blue", ""))
	if err != nil {
		t.Fatal(err)
	}
	var rb result020
	_ = json.Unmarshal(raw, &rb)
	bIP := addr(rb.IP4.IP)
	eventually(t, 10*time.Second, "a -> b", func() error { return a.ping(t, bIP) })
	before := n1.settledDump()

	ping := exec.Command("ip", "netns", "exec", filepath.Base(a.path), "ping", "-i", "0.02", "-c", "200", "-W", "1", bIP)
	var pingOut strings.Builder
	ping.Stdout, ping.Stderr = &pingOut, &pingOut
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(800 * time.Millisecond)
	n1.kill()
	time.Sleep(1200 * time.Millisecond) // pings keep flowing with no agent
	n1.start()
	n1.waitReady()
	if err := ping.Wait(); err != nil {
		t.Fatalf("ping: %v\n%s", err, pingOut.String())
	}
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(pingOut.String())
	if m == nil || m[1] != m[2] || m[1] != "200" {
		t.Fatalf("pings lost while the agent was down and restarting (match %q):\n%s\nagent log:\n%s", m, pingOut.String(), n1.log)
	}
	if after := n1.settledDump(); after != before {
		t.Fatalf("restart changed the data plane:\n--- before\n%s\n--- after\n%s", before, after)
	}
	x := c.newContainer("x")
	if _, err := x.add(t, n1, "eth0", "0.2.0", networkInfo("blue", "")); err != nil {
		t.Fatalf("ADD after restart: %v", err)
	}
	if err := x.ping(t, bIP); err != nil {
		t.Fatal(err)
	}
	t.Logf("agent down for 1.2 s during 200 pings at 20 ms: %s", strings.TrimSpace(m[0]))
}

// DEL answers once the interface is out of service; destroying it and
// releasing the address come after. An agent SIGKILLed right after the
// answer finishes both after its restart, from its journal.
func TestDeleteThenAgentKilled(t *testing.T) {
	c := newCluster(t, 1)
	n := c.nodes[0]
	c.createNetwork("blue", api.Subnet{CIDR: "10.0.0.0/24"})
	a := c.newContainer("a")
	raw, err := a.add(t, n, "eth0", "0.2.0", networkInfo("blue", ""))
	if err != nil {
		t.Fatal(err)
	}
	var r result020
	if err := json.Unmarshal(raw, &r); err != nil || r.IP4 == nil {
		t.Fatalf("result: %v %s", err, raw)
	}
	ip, host := addr(r.IP4.IP), dataplane.HostIfName(a.id, "eth0")
	if err := a.del(t, n, "eth0", a.path); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	n.kill()
	n.start()
	n.waitReady()
	eventually(t, 10*time.Second, "interface destroyed and address released after the restart", func() error {
		if d := n.dump(); strings.Contains(d, host) {
			return fmt.Errorf("%s still in the data plane:\n%s", host, d)
		}
		for _, res := range c.reservations("blue") {
			if res.Address == ip && !strings.HasPrefix(res.Owner, "spare:") {
				return fmt.Errorf("%s still reserved by %s", ip, res.Owner)
			}
		}
		return nil
	})
	if out, _ := a.exec("ip", "-o", "link", "show"); strings.Contains(out, "eth0") {
		t.Errorf("eth0 left in the container: %s", out)
	}
}
