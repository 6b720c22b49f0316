package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/vishvananda/netlink"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/api/client"
	"github.com/weft-sdn/weft/internal/controller"
	"github.com/weft-sdn/weft/internal/dataplane"
	"github.com/weft-sdn/weft/internal/kerneltest"
	"github.com/weft-sdn/weft/internal/lab"
	"github.com/weft-sdn/weft/internal/netns"
	"github.com/weft-sdn/weft/internal/store"
)

// binDir holds weft and weft-cni, built once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(kerneltest.RunWithCommands(m, "weft-e2e-bin-", &binDir, "weft", "weft-cni"))
}

const fabricAddr = "198.18.0.254"

// cluster is a controller (in-process, embedded etcd) reachable from the
// fabric namespace, and weft agents running as processes in node
// namespaces.
type cluster struct {
	t      *testing.T
	prefix string
	dir    string
	lab    *netns.Lab
	etcd   *store.Embedded
	ctrl   *controller.Controller
	url    string // as the agents reach it
	cli    *client.Client
	nodes  []*node
}

type node struct {
	c       *cluster
	name    string
	netns   netns.LabNode
	dir     string
	socket  string
	routers string // router namespace prefix
	cmd     *exec.Cmd
	exited  chan struct{}
	log     *bytes.Buffer
}

func randomPrefix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "we" + hex.EncodeToString(b) + "-"
}

func newCluster(t *testing.T, nodes int) *cluster {
	t.Helper()
	kerneltest.RequireRoot(t)
	ctx := context.Background()
	c := &cluster{t: t, prefix: randomPrefix(), dir: t.TempDir()}
	var err error
	c.lab, err = netns.NewLab(c.prefix, nodes)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.stop()
		}
		if err := c.lab.Close(); err != nil {
			t.Errorf("remove lab namespaces: %v", err)
		}
		for _, name := range mustList(t) {
			if strings.HasPrefix(name, c.prefix) {
				t.Errorf("namespace %s left behind", name)
			}
		}
	})
	// The fabric bridge carries the controller's address.
	if err := netns.Do(netns.Path(c.lab.Fabric), func() error {
		br, err := netlink.LinkByName("br0")
		if err != nil {
			return err
		}
		return netlink.AddrAdd(br, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(fabricAddr), Mask: net.CIDRMask(24, 32)}})
	}); err != nil {
		t.Fatalf("fabric address: %v", err)
	}
	c.etcd, err = store.StartEmbedded(ctx, store.EmbedConfig{DataDir: filepath.Join(c.dir, "etcd"), ClientURL: "http://127.0.0.1:0", UnsafeNoFsync: true})
	if err != nil {
		t.Fatalf("etcd: %v", err)
	}
	t.Cleanup(c.etcd.Close)
	kv, err := c.etcd.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kv.Close() })
	cfg := controller.DefaultConfig()
	cfg.Quarantine = controller.Duration(time.Second)
	c.ctrl, err = controller.NewWithStore(ctx, cfg, kv, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	// One listener in the fabric namespace for the agents, one on the
	// host's loopback for the test.
	var fabricLn net.Listener
	if err := netns.Do(netns.Path(c.lab.Fabric), func() error {
		var err error
		fabricLn, err = net.Listen("tcp", fabricAddr+":0")
		return err
	}); err != nil {
		t.Fatalf("listen in fabric: %v", err)
	}
	hostLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, ln := range []net.Listener{fabricLn, hostLn} {
		srv := &http.Server{Handler: c.ctrl.Server, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
	}
	c.url = "http://" + fabricLn.Addr().String()
	c.cli = client.New("http://"+hostLn.Addr().String(), nil)
	for i, ln := range c.lab.Nodes {
		n := &node{c: c, name: fmt.Sprintf("node%d", i+1), netns: ln, dir: filepath.Join(c.dir, fmt.Sprintf("node%d", i+1))}
		n.socket = filepath.Join(n.dir, "agent.sock")
		n.routers = fmt.Sprintf("%sn%d-", c.prefix, i+1)
		c.nodes = append(c.nodes, n)
		n.start()
	}
	for _, n := range c.nodes {
		n.waitReady()
	}
	return c
}

func mustList(t *testing.T) []string {
	names, err := netns.List("")
	if err != nil {
		t.Fatalf("list namespaces: %v", err)
	}
	return names
}

// start runs `weft agent` inside the node's network namespace. It uses
// nsenter, not `ip netns exec`: the latter also gives the command a private
// mount namespace, where the bind mounts of the router namespaces the agent
// creates would vanish with the agent.
func (n *node) start() {
	t := n.c.t
	t.Helper()
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	n.log = &bytes.Buffer{}
	n.cmd = exec.Command("nsenter", "--net="+n.netns.Path, filepath.Join(binDir, "weft"), "agent",
		"--node-name", n.name,
		"--underlay-ip", n.netns.Underlay.Addr().String(),
		"--controller", n.c.url,
		"--state-dir", filepath.Join(n.dir, "state"),
		"--socket", n.socket,
		"--port-api-listen", "",
		"--router-ns-prefix", n.routers,
		"--spares", "4",
		"--heartbeat-interval", "1s",
		"--log-level", "debug")
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start agent %s: %v", n.name, err)
	}
	n.exited = make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(n.exited) }()
}

func (n *node) stop() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(5 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
	n.cmd = nil
}

func (n *node) kill() {
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
	n.cmd = nil
}

// agentStatus asks the agent's local socket for its status.
func (n *node) agentStatus() (api.AgentStatus, error) {
	return lab.NodeState{AgentSocket: n.socket}.AgentStatus(context.Background())
}

func (n *node) waitReady() {
	t := n.c.t
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-n.exited:
			t.Fatalf("agent %s exited:\n%s", n.name, n.log)
		default:
		}
		if st, err := n.agentStatus(); err == nil && st.Ready {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("agent %s not ready after 30 s:\n%s", n.name, n.log)
}

// dump prints the node's data plane as the kernel holds it.
func (n *node) dump() string {
	t := n.c.t
	t.Helper()
	var nd api.Node
	if err := n.c.cli.GetByFQName(context.Background(), "nodes", n.name, &nd); err != nil {
		t.Fatal(err)
	}
	hw, _ := net.ParseMAC(nd.VTEPMAC)
	dp, err := dataplane.NewLinux(dataplane.Config{
		NodeNetns: n.netns.Path, NamePrefix: n.routers, Underlay: n.netns.Underlay.Addr(),
		VTEPIP: netip.MustParseAddr(nd.VTEPIP), VTEPMAC: hw,
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := dp.Dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// settledDump waits until the agent's debounced syncs are done (two dumps
// half a second apart agree) and returns the dump.
func (n *node) settledDump() string {
	prev := n.dump()
	for range 20 {
		time.Sleep(500 * time.Millisecond)
		cur := n.dump()
		if cur == prev {
			return cur
		}
		prev = cur
	}
	n.c.t.Fatalf("data plane of %s does not settle", n.name)
	return ""
}

// cniConfig is a CNI network configuration for weft-cni on node n, with
// the Mesos network_info injected into args as the Mesos isolator does.
func (n *node) cniConfig(version string, networkInfo string) []byte {
	args := ""
	if networkInfo != "" {
		args = `,"args":{"org.apache.mesos":{"network_info":` + networkInfo + `}}`
	}
	ver := ""
	if version != "" {
		ver = `"cniVersion":"` + version + `",`
	}
	return []byte(`{` + ver + `"name":"weft","type":"weft-cni","weft":{"socket":"` + n.socket + `","timeout":"20s"}` + args + `}`)
}

// container is a network namespace attached through libcni.
type container struct {
	name, path, id string
	n              *node
}

func (c *cluster) newContainer(name string) *container {
	c.t.Helper()
	path, err := c.lab.AddContainer(name)
	if err != nil {
		c.t.Fatalf("container %s: %v", name, err)
	}
	return &container{name: name, path: path, id: "cid-" + name}
}

func (c *cluster) cni() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir([]string{binDir}, filepath.Join(c.dir, "cni-cache"), nil)
}

// add runs CNI ADD for ifname; the raw result bytes are returned.
func (ct *container) add(t *testing.T, n *node, ifname, version, networkInfo string) ([]byte, error) {
	t.Helper()
	ct.n = n
	//lint:ignore SA1019 Mesos hands plugins single-plugin configs, not conflists: this is the format under test.
	conf, err := libcni.ConfFromBytes(n.cniConfig(version, networkInfo))
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.c.cni().AddNetwork(context.Background(), conf, &libcni.RuntimeConf{ContainerID: ct.id, NetNS: ct.path, IfName: ifname})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := res.PrintTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), nil
}

func (ct *container) del(t *testing.T, n *node, ifname, netnsPath string) error {
	t.Helper()
	//lint:ignore SA1019 Mesos hands plugins single-plugin configs, not conflists: this is the format under test.
	conf, err := libcni.ConfFromBytes(n.cniConfig("1.0.0", ""))
	if err != nil {
		t.Fatal(err)
	}
	return n.c.cni().DelNetwork(context.Background(), conf, &libcni.RuntimeConf{ContainerID: ct.id, NetNS: netnsPath, IfName: ifname})
}

// exec runs a command inside the container's namespace.
func (ct *container) exec(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", filepath.Base(ct.path)}, args...)...).CombinedOutput()
	return string(out), err
}

func (ct *container) ping(t *testing.T, addr string) error {
	t.Helper()
	cmd := []string{"ping", "-c", "1", "-W", "2", addr}
	if strings.Contains(addr, ":") {
		cmd = []string{"ping", "-6", "-c", "1", "-W", "2", addr}
	}
	out, err := ct.exec(cmd...)
	if err != nil {
		return fmt.Errorf("%s from %s: %v\n%s", strings.Join(cmd, " "), ct.name, err, out)
	}
	return nil
}

// serveTCP listens on port inside the container and answers every
// connection with the container's name.
func (ct *container) serveTCP(t *testing.T, port int) {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(ct.path, func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", ct.name, err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = conn.Write([]byte(ct.name))
			_ = conn.Close()
		}
	}()
}

// dialTCP connects from the container and returns what the server said.
func (ct *container) dialTCP(addr string, port int) (string, error) {
	var got string
	err := netns.Do(ct.path, func() error {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(addr, fmt.Sprint(port)), 2*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(conn)
		got = string(b)
		return err
	})
	return got, err
}

// createNetwork makes a network through the controller API.
func (c *cluster) createNetwork(name string, subnets ...api.Subnet) api.Network {
	c.t.Helper()
	n, err := c.cli.CreateNetwork(context.Background(), api.Network{Meta: api.Meta{Name: name}, Subnets: subnets})
	if err != nil {
		c.t.Fatalf("create network %s: %v", name, err)
	}
	return n
}

// reservations lists the reservations of a network.
func (c *cluster) reservations(network string) []api.IPReservation {
	c.t.Helper()
	out, _, err := client.ListItems[api.IPReservation](context.Background(), c.cli, "ip-reservations", url.Values{"network": {network}})
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// eventually retries fn until it succeeds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = fn(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}
