//go:build linux

package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weft-sdn/weft/internal/mesos"
	"github.com/weft-sdn/weft/internal/netns"
)

// addEnv is the exact ADD environment Mesos gives a plugin.
func addEnv(e *labEnv, a *Agent, cid, ifName string) []string {
	return []string{
		"CNI_COMMAND=ADD",
		"CNI_CONTAINERID=" + cid,
		"CNI_IFNAME=" + ifName,
		"CNI_NETNS=" + a.Root() + "/" + cid + "/ns",
		"CNI_PATH=" + e.pluginsPath,
		"PATH=" + os.Getenv("PATH"),
	}
}

// delEnv is the exact DEL environment; CNI_NETNS only with a live handle.
func delEnv(e *labEnv, a *Agent, cid, ifName string, withNetns bool) []string {
	env := []string{"CNI_COMMAND=DEL", "CNI_CONTAINERID=" + cid, "CNI_IFNAME=" + ifName}
	if withNetns {
		env = append(env, "CNI_NETNS="+a.Root()+"/"+cid+"/ns")
	}
	return append(env, "CNI_PATH="+e.pluginsPath, "PATH="+os.Getenv("PATH"))
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// waitExec waits until the task's gate has exec'd its command.
func waitExec(t *testing.T, pid int, argv0 string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.HasPrefix(string(b), argv0+"\x00") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("task %d did not exec %s", pid, argv0)
}

func TestLaunchAttachesAndKillDetaches(t *testing.T) {
	e := newLabEnv(t, "mesos-cni-port-mapper")
	// The read-only mesos-mini fixture directory is the config dir: its
	// agent_environment file does not parse and is skipped.
	a := e.agent(func(c *Config) { c.NetworkCNIConfigDir = fixtures + "mesos/mesos-mini" })
	sub := a.Subscribe()
	defer sub.Close()
	ctx := ctxT(t)

	c, err := a.Launch(ctx, TaskSpec{
		TaskID:       "web.1",
		NetworkInfos: []mesos.NetworkInfo{{IPAddresses: []mesos.IPAddress{{}}}, marathonNetworkInfo("mesos-bridge")},
		Hostname:     "web-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	cid, dir := c.ID, a.Root()+"/"+c.ID
	if c.State != mesos.TaskRunning || !reflect.DeepEqual(c.Networks, []Network{{Name: "mesos-bridge", IfName: "eth0"}}) {
		t.Fatalf("container %+v", c)
	}
	waitExec(t, c.PID, "sleep")

	adds := e.records("ADD", cid)
	if len(adds) != 1 {
		t.Fatalf("%d ADD calls", len(adds))
	}
	add := adds[0]
	if want := addEnv(e, a, cid, "eth0"); !reflect.DeepEqual(add.Env, want) {
		t.Errorf("ADD env:\n got  %q\n want %q", add.Env, want)
	}
	if want := []string{e.pluginPath("mesos-cni-port-mapper")}; !reflect.DeepEqual(add.Argv, want) {
		t.Errorf("ADD argv %q, want %q", add.Argv, want)
	}
	if add.Stdin != goldenUCRStdin {
		t.Errorf("ADD stdin:\n got  %s\n want %s", add.Stdin, goldenUCRStdin)
	}
	if add.Netns != "live" {
		t.Errorf("ADD netns %s", add.Netns)
	}

	// The checkpointed files of §6.2.
	if got := readFile(t, dir+"/mesos-bridge/network.conf"); got != goldenUCRStdin {
		t.Errorf("network.conf = %s", got)
	}
	if got := readFile(t, dir+"/mesos-bridge/eth0/network.info"); got != defaultResult {
		t.Errorf("network.info = %s", got)
	}
	if got := readFile(t, dir+"/hostname"); got != "web-1" {
		t.Errorf("hostname = %q", got)
	}
	if got, want := readFile(t, dir+"/hosts"), "127.0.0.1 localhost\n10.99.0.5 web-1\n"; got != want {
		t.Errorf("hosts = %q, want %q", got, want)
	}
	if got, want := readFile(t, dir+"/resolv.conf"), "search lab.weft\nnameserver 10.99.0.1\n"; got != want {
		t.Errorf("resolv.conf = %q, want %q", got, want)
	}
	handle, err := isNetnsHandle(dir + "/ns")
	if err != nil || !handle || !isMountPoint(t, dir+"/ns") {
		t.Errorf("ns is not a netns bind mount: %v %v", handle, err)
	}
	if nsInode(t, dir+"/ns") != nsInode(t, fmt.Sprintf("/proc/%d/ns/net", c.PID)) {
		t.Error("ns is not the task's network namespace")
	}
	if nsInode(t, "/proc/self/ns/net") == nsInode(t, fmt.Sprintf("/proc/%d/ns/net", c.PID)) {
		t.Error("task runs in the agent's network namespace")
	}

	// Inside the container: hostname, lo, and the bind-mounted files.
	var uname unix.Utsname
	if err := inNamespace(fmt.Sprintf("/proc/%d/ns/uts", c.PID), unix.CLONE_NEWUTS, func() error { return unix.Uname(&uname) }); err != nil {
		t.Fatal(err)
	}
	if got := string(bytes.TrimRight(uname.Nodename[:], "\x00")); got != "web-1" {
		t.Errorf("task hostname %q", got)
	}
	var loUp bool
	if err := netns.Do(dir+"/ns", func() error {
		lo, err := net.InterfaceByName("lo")
		if err == nil {
			loUp = lo.Flags&net.FlagUp != 0
		}
		return err
	}); err != nil || !loUp {
		t.Errorf("lo up in the task's netns: %v %v", loUp, err)
	}
	if haveTools(t, "nsenter", "mount") {
		if got := readFile(t, fmt.Sprintf("/proc/%d/root/etc/hosts", c.PID)); got != "127.0.0.1 localhost\n10.99.0.5 web-1\n" {
			t.Errorf("task's /etc/hosts = %q", got)
		}
		if got := readFile(t, fmt.Sprintf("/proc/%d/root/etc/resolv.conf", c.PID)); got != "search lab.weft\nnameserver 10.99.0.1\n" {
			t.Errorf("task's /etc/resolv.conf = %q", got)
		}
		if host := readFile(t, "/etc/hosts"); strings.Contains(host, "web-1") {
			t.Error("the bind mount leaked into the host's /etc/hosts")
		}
	}

	// Status: IPv4 without prefix, IPv6 as returned, the rest copied.
	want := mesos.NetworkInfo{
		IPAddresses:  []mesos.IPAddress{{Protocol: mesos.IPv4, IPAddress: "10.99.0.5"}, {Protocol: mesos.IPv6, IPAddress: "fd99::5/64"}},
		Name:         "mesos-bridge",
		Labels:       mesos.NewLabels("networks", "blue"),
		PortMappings: []mesos.PortMapping{{HostPort: 31845, ContainerPort: 80, Protocol: "tcp"}},
	}
	cs := c.Status.ContainerStatus
	if cs == nil || cs.ContainerID.Value != cid || cs.ExecutorPID != uint32(c.PID) || !reflect.DeepEqual(cs.NetworkInfos, []mesos.NetworkInfo{want}) {
		t.Errorf("container status %+v", cs)
	}
	for _, state := range []mesos.TaskState{mesos.TaskStarting, mesos.TaskRunning} {
		u := waitFor(t, sub, func(u StatusUpdate) bool { return u.Status.State == state })
		if u.ContainerID != cid || u.Status.TaskID != "web.1" || u.FrameworkID != DefaultFrameworkID {
			t.Errorf("update %+v", u)
		}
	}

	// Kill: SIGKILL, reap, DEL with the same stdin and a live CNI_NETNS.
	k, err := a.Kill(ctx, cid)
	if err != nil {
		t.Fatal(err)
	}
	if k.State != mesos.TaskKilled || !k.Destroyed {
		t.Errorf("after kill: %+v", k)
	}
	dels := e.records("DEL", cid)
	if len(dels) != 1 {
		t.Fatalf("%d DEL calls", len(dels))
	}
	if want := delEnv(e, a, cid, "eth0", true); !reflect.DeepEqual(dels[0].Env, want) {
		t.Errorf("DEL env:\n got  %q\n want %q", dels[0].Env, want)
	}
	if dels[0].Stdin != goldenUCRStdin || dels[0].Netns != "live" {
		t.Errorf("DEL stdin %s netns %s", dels[0].Stdin, dels[0].Netns)
	}
	if exists(dir) {
		t.Error("container directory left behind")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", c.PID)); err == nil {
		t.Error("task process still exists")
	}
	if len(a.Containers()) != 0 {
		t.Errorf("containers left: %+v", a.Containers())
	}
	waitFor(t, sub, func(u StatusUpdate) bool { return u.Status.State == mesos.TaskKilled })
}

// netEnv is an environment with two networks served by test plugins.
func netEnv(t *testing.T) *labEnv {
	e := newLabEnv(t, "weft-test", "weft-fail", "weft-nodns", "host-local")
	e.writeConf("10-net1.conf", bridgeConf("net1", "weft-test"))
	e.writeConf("20-net2.conf", bridgeConf("net2", "weft-nodns"))
	e.writeConf("30-bad.conf", bridgeConf("bad", "weft-fail"))
	e.writeConf("40-bad2.conf", bridgeConf("bad2", "weft-fail"))
	e.setBehaviour("weft-nodns", pluginBehaviours{Add: &pluginBehaviour{Stdout: `{"ip4":{"ip":"10.98.0.7/24"},"dns":{}}`}})
	e.setBehaviour("weft-fail", pluginBehaviours{Add: &pluginBehaviour{Exit: 1, Stdout: `{"cniVersion":"0.3.0","code":11,"msg":"no agent"}`, Stderr: "dial unix: no such file"}})
	return e
}

func TestDelWithoutLiveNetns(t *testing.T) {
	e := netEnv(t)
	a := e.agent()
	ctx := ctxT(t)
	c, err := a.Launch(ctx, TaskSpec{TaskID: "t", NetworkInfos: []mesos.NetworkInfo{{Name: "net1"}}})
	if err != nil {
		t.Fatal(err)
	}
	// As after a reboot: the bind mount is gone, the file stays.
	ns := a.Root() + "/" + c.ID + "/ns"
	if err := unix.Unmount(ns, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Kill(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	dels := e.records("DEL", c.ID)
	if len(dels) != 1 {
		t.Fatalf("%d DEL calls", len(dels))
	}
	if want := delEnv(e, a, c.ID, "eth0", false); !reflect.DeepEqual(dels[0].Env, want) {
		t.Errorf("DEL env:\n got  %q\n want %q", dels[0].Env, want)
	}
	if dels[0].Netns != "unset" {
		t.Errorf("netns %s", dels[0].Netns)
	}
	if exists(a.Root() + "/" + c.ID) {
		t.Error("container directory left behind")
	}
}

func TestDelFailureKeepsDirectory(t *testing.T) {
	e := netEnv(t)
	a := e.agent()
	ctx := ctxT(t)
	c, err := a.Launch(ctx, TaskSpec{TaskID: "t", NetworkInfos: []mesos.NetworkInfo{{Name: "net1"}}})
	if err != nil {
		t.Fatal(err)
	}
	e.setBehaviour("weft-test", pluginBehaviours{Del: &pluginBehaviour{Exit: 1, Stdout: `{"code":11,"msg":"agent down"}`, Stderr: "boom"}})
	_, err = a.Kill(ctx, c.ID)
	want := fmt.Sprintf("The CNI plugin '%s' failed to detach container %s from CNI network 'net1': stdout='{\"code\":11,\"msg\":\"agent down\"}', stderr='boom'",
		e.pluginPath("weft-test"), c.ID)
	if err == nil || err.Error() != want {
		t.Fatalf("kill error:\n got  %v\n want %s", err, want)
	}
	dir := a.Root() + "/" + c.ID
	for _, p := range []string{dir + "/net1/eth0/network.info", dir + "/net1/network.conf", dir + "/ns"} {
		if !exists(p) {
			t.Errorf("%s removed after a failed DEL", p)
		}
	}
	if !isMountPoint(t, dir+"/ns") {
		t.Error("ns unmounted after a failed DEL")
	}
	left := a.Containers()
	if len(left) != 1 || left[0].Error != want || left[0].State != mesos.TaskKilled {
		t.Fatalf("containers %+v", left)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", c.PID)); err == nil {
		t.Error("task process still exists")
	}

	// A later cleanup retries.
	e.setBehaviour("weft-test", pluginBehaviours{})
	if _, err := a.Kill(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if n := len(e.records("DEL", c.ID)); n != 2 {
		t.Errorf("%d DEL calls, want 2", n)
	}
	if exists(dir) || len(a.Containers()) != 0 {
		t.Error("not cleaned up on retry")
	}
}

func TestLaunchFailures(t *testing.T) {
	tests := []struct {
		name     string
		nets     []string
		setup    func(e *labEnv)
		wantErr  func(e *labEnv, a *Agent, cid string) string
		wantAdds int
		wantDels []string // interfaces DEL ran for
	}{
		{
			name:    "unknown network",
			nets:    []string{"net1", "nope"},
			wantErr: func(*labEnv, *Agent, string) string { return "Unknown CNI network 'nope'" },
		},
		{
			name:    "same network twice",
			nets:    []string{"net1", "net2", "net1"},
			wantErr: func(*labEnv, *Agent, string) string { return "Attempted to join CNI network 'net1' multiple times" },
		},
		{
			name: "plugin fails; attached networks are torn down",
			nets: []string{"net1", "bad"},
			wantErr: func(e *labEnv, _ *Agent, cid string) string {
				return fmt.Sprintf("The CNI plugin '%s' failed to attach container %s to CNI network 'bad': stdout='{\"cniVersion\":\"0.3.0\",\"code\":11,\"msg\":\"no agent\"}', stderr='dial unix: no such file'",
					e.pluginPath("weft-fail"), cid)
			},
			wantAdds: 2,
			wantDels: []string{"eth0", "eth1"},
		},
		{
			name: "two plugins fail: messages joined",
			nets: []string{"bad", "bad2"},
			wantErr: func(e *labEnv, _ *Agent, cid string) string {
				msg := func(n string) string {
					return fmt.Sprintf("The CNI plugin '%s' failed to attach container %s to CNI network '%s': stdout='{\"cniVersion\":\"0.3.0\",\"code\":11,\"msg\":\"no agent\"}', stderr='dial unix: no such file'",
						e.pluginPath("weft-fail"), cid, n)
				}
				return msg("bad") + "\n" + msg("bad2")
			},
			wantAdds: 2,
			wantDels: []string{"eth0", "eth1"},
		},
		{
			name: "bare ip4 address",
			nets: []string{"net1"},
			setup: func(e *labEnv) {
				e.setBehaviour("weft-test", pluginBehaviours{Add: &pluginBehaviour{Stdout: `{"ip4":{"ip":"10.99.0.7"}}`}})
			},
			wantErr: func(*labEnv, *Agent, string) string {
				return "Unable to parse the IP address 10.99.0.7 for the container: Unexpected number of '/' detected: 1"
			},
			wantAdds: 1,
			wantDels: []string{"eth0"},
		},
		{
			name: "unparseable output",
			nets: []string{"net1"},
			setup: func(e *labEnv) {
				e.setBehaviour("weft-test", pluginBehaviours{Add: &pluginBehaviour{Stdout: `{"ip4":{"gateway":"10.0.0.1"}}`}})
			},
			wantErr: func(e *labEnv, _ *Agent, _ string) string {
				return fmt.Sprintf("Failed to parse the output of the CNI plugin '%s': Protobuf parse failed: Missing required fields: ip4.ip", e.pluginPath("weft-test"))
			},
			wantAdds: 1,
			wantDels: []string{"eth0"},
		},
		{
			name: "reserved args",
			nets: []string{"reserved"},
			setup: func(e *labEnv) {
				e.writeConf("reserved.conf", `{"name":"reserved","type":"weft-test","args":{"org.apache.mesos":{}}}`)
			},
			wantErr: func(*labEnv, *Agent, string) string {
				return "'org.apache.mesos' in 'args' should not be set in CNI network configuration file. It is reserved by Mesos"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := netEnv(t)
			if tt.setup != nil {
				tt.setup(e)
			}
			a := e.agent()
			var nis []mesos.NetworkInfo
			for _, n := range tt.nets {
				nis = append(nis, mesos.NetworkInfo{Name: n})
			}
			c, err := a.Launch(ctxT(t), TaskSpec{TaskID: "t", NetworkInfos: nis})
			if c.ID == "" {
				t.Fatalf("no container for a failed launch: %v", err)
			}
			if want := tt.wantErr(e, a, c.ID); err == nil || err.Error() != want {
				t.Fatalf("launch error:\n got  %v\n want %s", err, want)
			}
			if c.State != mesos.TaskFailed || c.Status.Reason != mesos.ReasonContainerLaunchFailed ||
				c.Status.Message != "Failed to launch container: "+err.Error() || c.Status.Source != mesos.SourceAgent {
				t.Errorf("status %+v", c.Status)
			}
			if n := len(e.records("ADD", c.ID)); n != tt.wantAdds {
				t.Errorf("%d ADD calls, want %d", n, tt.wantAdds)
			}
			var dels []string
			for _, r := range e.records("DEL", c.ID) {
				for _, kv := range r.Env {
					if v, ok := strings.CutPrefix(kv, "CNI_IFNAME="); ok {
						dels = append(dels, v)
					}
				}
			}
			sortStrings(dels)
			if !reflect.DeepEqual(dels, tt.wantDels) {
				t.Errorf("DEL for %v, want %v", dels, tt.wantDels)
			}
			if exists(a.Root() + "/" + c.ID) {
				t.Error("container directory left behind")
			}
			if c.PID != 0 {
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", c.PID)); err == nil {
					t.Error("task process left behind")
				}
			}
			if len(a.Containers()) != 0 {
				t.Errorf("containers %+v", a.Containers())
			}
		})
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestMultipleNetworksAndDNS(t *testing.T) {
	e := netEnv(t)
	dns := `{"mesos":[{"network_mode":"CNI","network_name":"net2","dns":{"nameservers":["198.51.100.53"],"options":["ndots:2"]}},{"network_mode":"CNI","dns":{"nameservers":["192.0.2.1"]}}]}`
	a := e.agent(func(c *Config) { c.DefaultContainerDNS = dns })
	ctx := ctxT(t)
	c, err := a.Launch(ctx, TaskSpec{TaskID: "t", NetworkInfos: []mesos.NetworkInfo{{Name: "net1", Groups: []string{"prod"}}, {Name: "net2"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Network{{"net1", "eth0"}, {"net2", "eth1"}}; !reflect.DeepEqual(c.Networks, want) {
		t.Errorf("networks %+v", c.Networks)
	}
	for i, n := range []string{"net1", "net2"} {
		adds := e.records("ADD", c.ID)
		found := false
		for _, r := range adds {
			if reflect.DeepEqual(r.Env, addEnv(e, a, c.ID, fmt.Sprintf("eth%d", i))) && strings.Contains(r.Stdin, `"name":"`+n+`"`) {
				found = true
			}
		}
		if !found {
			t.Errorf("no ADD for %s on eth%d", n, i)
		}
	}
	dir := a.Root() + "/" + c.ID
	// Plugin DNS for net1 (it has nameservers), the per-network default for
	// net2 (its plugin returned "dns": {}).
	if got, want := readFile(t, dir+"/resolv.conf"), "search lab.weft\noptions ndots:2\nnameserver 10.99.0.1\nnameserver 198.51.100.53\n"; got != want {
		t.Errorf("resolv.conf = %q, want %q", got, want)
	}
	if got, want := readFile(t, dir+"/hosts"), "127.0.0.1 localhost\n10.99.0.5 "+c.ID+"\n"; got != want {
		t.Errorf("hosts = %q, want %q", got, want)
	}
	nis := c.Status.ContainerStatus.NetworkInfos
	want := []mesos.NetworkInfo{
		{Name: "net1", Groups: []string{"prod"}, IPAddresses: []mesos.IPAddress{{Protocol: mesos.IPv4, IPAddress: "10.99.0.5"}, {Protocol: mesos.IPv6, IPAddress: "fd99::5/64"}}},
		{Name: "net2", IPAddresses: []mesos.IPAddress{{Protocol: mesos.IPv4, IPAddress: "10.98.0.7"}}},
	}
	if !reflect.DeepEqual(nis, want) {
		t.Errorf("network_infos %+v", nis)
	}
	if _, err := a.Kill(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if n := len(e.records("DEL", c.ID)); n != 2 {
		t.Errorf("%d DEL calls", n)
	}
}

func TestHostResolvConfAndReloadOnMiss(t *testing.T) {
	e := netEnv(t)
	a := e.agent()
	ctx := ctxT(t)
	// A configuration written after the agent started.
	e.writeConf("late.conf", bridgeConf("late", "weft-nodns"))
	c, err := a.Launch(ctx, TaskSpec{TaskID: "t", NetworkInfos: []mesos.NetworkInfo{{Name: "late"}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := a.Root() + "/" + c.ID
	if exists(dir + "/resolv.conf") {
		t.Error("resolv.conf written without nameservers")
	}
	host, err := os.ReadFile("/etc/resolv.conf")
	if err == nil {
		if haveTools(t, "nsenter", "mount") {
			if got := readFile(t, fmt.Sprintf("/proc/%d/root/etc/resolv.conf", c.PID)); got != string(host) {
				t.Errorf("task resolv.conf %q, want the host's", got)
			}
		}
	}
	if _, err := a.Kill(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
}

func TestHostNetworkTask(t *testing.T) {
	e := netEnv(t)
	a := e.agent(func(c *Config) { c.AgentIP6 = "2001:db8::1" })
	ctx := ctxT(t)
	c, err := a.Launch(ctx, TaskSpec{TaskID: "host", NetworkInfos: []mesos.NetworkInfo{{IPAddresses: []mesos.IPAddress{{}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Networks) != 0 || exists(a.Root()+"/"+c.ID+"/ns") {
		t.Errorf("host-network task got networks: %+v", c)
	}
	if nsInode(t, "/proc/self/ns/net") != nsInode(t, fmt.Sprintf("/proc/%d/ns/net", c.PID)) {
		t.Error("host-network task not in the agent's netns")
	}
	want := []mesos.NetworkInfo{{IPAddresses: []mesos.IPAddress{{IPAddress: "198.18.0.1"}, {Protocol: mesos.IPv6, IPAddress: "2001:db8::1"}}}}
	if got := c.Status.ContainerStatus.NetworkInfos; !reflect.DeepEqual(got, want) {
		t.Errorf("network_infos %+v, want the agent's address", got)
	}
	if _, err := a.Kill(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if exists(a.Root() + "/" + c.ID) {
		t.Error("directory left behind")
	}
}

func TestTaskExitCleansUp(t *testing.T) {
	tests := []struct {
		cmd     []string
		state   mesos.TaskState
		message string
	}{
		{[]string{"sh", "-c", "exit 3"}, mesos.TaskFailed, "Command exited with status 3"},
		{[]string{"true"}, mesos.TaskFinished, "Command exited with status 0"},
	}
	for _, tt := range tests {
		t.Run(string(tt.state), func(t *testing.T) {
			e := netEnv(t)
			a := e.agent()
			sub := a.Subscribe()
			defer sub.Close()
			c, err := a.Launch(ctxT(t), TaskSpec{TaskID: "t", Command: tt.cmd, NetworkInfos: []mesos.NetworkInfo{{Name: "net1"}}})
			if err != nil {
				t.Fatal(err)
			}
			u := waitFor(t, sub, func(u StatusUpdate) bool { return u.Status.State.Terminal() })
			if u.Status.State != tt.state || u.Status.Message != tt.message {
				t.Errorf("terminal status %+v", u.Status)
			}
			deadline := time.Now().Add(10 * time.Second)
			for exists(a.Root()+"/"+c.ID) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if exists(a.Root() + "/" + c.ID) {
				t.Error("container not cleaned up after its task exited")
			}
			if n := len(e.records("DEL", c.ID)); n != 1 {
				t.Errorf("%d DEL calls", n)
			}
		})
	}
}

func TestRecovery(t *testing.T) {
	e := netEnv(t)
	a := e.agent()
	ctx := ctxT(t)
	gone, err := a.Launch(ctx, TaskSpec{TaskID: "gone", NetworkInfos: []mesos.NetworkInfo{{Name: "net1"}}})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := a.Launch(ctx, TaskSpec{TaskID: "kept", NetworkInfos: []mesos.NetworkInfo{marathonNetworkInfo("net1")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// While the agent is down, one task dies (its pid is reaped), and a
	// container directory without any task record is left as after a
	// reboot (the ns file is no longer a mount).
	killBehindBack(t, gone.PID)
	orphan := "00000000-0000-4000-8000-000000000000"
	odir := a.Root() + "/" + orphan
	if err := os.MkdirAll(odir+"/net1/eth0", 0o755); err != nil {
		t.Fatal(err)
	}
	conf := readFile(t, a.Root()+"/"+kept.ID+"/net1/network.conf")
	for p, content := range map[string]string{odir + "/ns": "", odir + "/net1/network.conf": conf, odir + "/net1/eth0/network.info": defaultResult} {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	b := e.agent()
	sub := b.Subscribe()
	defer sub.Close()
	if err := b.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	// The dead task's container is an unknown orphan: DEL, with CNI_NETNS
	// since its handle still holds the namespace.
	if dels := e.records("DEL", gone.ID); len(dels) != 1 || !reflect.DeepEqual(dels[0].Env, delEnv(e, b, gone.ID, "eth0", true)) {
		t.Errorf("DEL of the dead task: %+v", dels)
	}
	if dels := e.records("DEL", orphan); len(dels) != 1 || !reflect.DeepEqual(dels[0].Env, delEnv(e, b, orphan, "eth0", false)) {
		t.Errorf("DEL of the record-less orphan: %+v", dels)
	}
	for _, cid := range []string{gone.ID, orphan} {
		if exists(b.Root() + "/" + cid) {
			t.Errorf("orphan %s not cleaned up", cid)
		}
	}
	// The live task is kept and reported again.
	cs := b.Containers()
	if len(cs) != 1 || cs[0].ID != kept.ID || !cs[0].Recovered || cs[0].PID != kept.PID {
		t.Fatalf("containers after recovery %+v", cs)
	}
	u := waitFor(t, sub, func(u StatusUpdate) bool { return u.ContainerID == kept.ID && u.Status.State == mesos.TaskRunning })
	want := []mesos.NetworkInfo{{
		IPAddresses:  []mesos.IPAddress{{Protocol: mesos.IPv4, IPAddress: "10.99.0.5"}, {Protocol: mesos.IPv6, IPAddress: "fd99::5/64"}},
		Name:         "net1",
		Labels:       mesos.NewLabels("networks", "blue"),
		PortMappings: []mesos.PortMapping{{HostPort: 31845, ContainerPort: 80, Protocol: "tcp"}},
	}}
	if !reflect.DeepEqual(u.Status.ContainerStatus.NetworkInfos, want) {
		t.Errorf("re-reported network_infos %+v", u.Status.ContainerStatus.NetworkInfos)
	}
	if n := len(e.records("DEL", kept.ID)); n != 0 {
		t.Errorf("live task got %d DEL calls", n)
	}
	if !exists(fmt.Sprintf("/proc/%d", kept.PID)) {
		t.Error("the kept task is not running")
	}
	if _, err := b.Kill(ctx, kept.ID); err != nil {
		t.Fatal(err)
	}
	if n := len(e.records("DEL", kept.ID)); n != 1 {
		t.Errorf("%d DEL calls for the kept task", n)
	}
}

func TestRecoveryFailsOnBadNetworkInfo(t *testing.T) {
	e := netEnv(t)
	a := e.agent()
	cid := "11111111-1111-4111-8111-111111111111"
	dir := a.Root() + "/" + cid + "/net1/eth0"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/network.info", []byte("{truncated"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := a.Recover(ctxT(t))
	want := "Failed to recover CNI network information for the orphaned container " + cid + ": Failed to parse CNI network information file '" + dir + "/network.info': JSON parse failed: "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("recover error:\n got  %v\n want %s…", err, want)
	}
	// Two interfaces for one network is also fatal.
	if err := os.WriteFile(dir+"/network.info", []byte(defaultResult), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(a.Root()+"/"+cid+"/net1/eth1", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := a.Recover(ctxT(t)); err == nil || !strings.HasSuffix(err.Error(), "More than one interfaces detected for network 'net1'") {
		t.Fatalf("recover error: %v", err)
	}
}

func TestHTTPAPI(t *testing.T) {
	e := netEnv(t)
	a := e.agent()
	ctx := ctxT(t)
	sock := filepath.Join(e.base, "agent.sock")
	ln, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := contextWithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Serve(sctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	client := unixClient(sock)

	var c Container
	spec := `{"task_id":"web.1","name":"web","command":["sleep","3600"],"labels":{"labels":[{"key":"HAPROXY_GROUP","value":"external"}]},` +
		`"resources":{"scalars":{"cpus":0.1,"mem":32},"ranges":{"ports":[{"begin":31845,"end":31845}]}},` +
		`"network_infos":[{"name":"net1","labels":{"labels":[{"key":"networks","value":"blue"}]},"ip_addresses":[{"protocol":"IPv4"}]}]}`
	if code := doJSON(t, client, "POST", "/launch", spec, &c); code != 200 || c.State != mesos.TaskRunning {
		t.Fatalf("launch: %d %+v", code, c)
	}
	var failed Container
	if code := doJSON(t, client, "POST", "/launch", `{"task_id":"x","network_infos":[{"name":"nope"}]}`, &failed); code != 200 ||
		failed.State != mesos.TaskFailed || failed.Error != "Unknown CNI network 'nope'" {
		t.Errorf("failed launch: %d %+v", code, failed)
	}
	var apiErr apiError
	if code := doJSON(t, client, "POST", "/launch", `{"task_id":"web.1"}`, &apiErr); code != 409 {
		t.Errorf("duplicate task: %d %+v", code, apiErr)
	}
	if code := doJSON(t, client, "POST", "/launch", `{"name":"no id"}`, &apiErr); code != 400 {
		t.Errorf("no task id: %d", code)
	}
	var list []Container
	if code := doJSON(t, client, "GET", "/containers", "", &list); code != 200 || len(list) != 1 || list[0].ID != c.ID {
		t.Errorf("containers: %d %+v", code, list)
	}

	var state struct {
		ID         string `json:"id"`
		Frameworks []struct {
			ID        string `json:"id"`
			Executors []struct {
				ID    string `json:"id"`
				Tasks []struct {
					ID       string            `json:"id"`
					Labels   json.RawMessage   `json:"labels"`
					Statuses []json.RawMessage `json:"statuses"`
				} `json:"tasks"`
			} `json:"executors"`
			CompletedExecutors []json.RawMessage `json:"completed_executors"`
		} `json:"frameworks"`
		CompletedFrameworks []json.RawMessage `json:"completed_frameworks"`
	}
	if code := doJSON(t, client, "GET", "/state", "", &state); code != 200 {
		t.Fatalf("state: %d", code)
	}
	if len(state.Frameworks) != 1 || len(state.Frameworks[0].Executors) != 1 || len(state.Frameworks[0].CompletedExecutors) != 1 {
		t.Fatalf("state %+v", state)
	}
	var task *struct {
		ID       string            `json:"id"`
		Labels   json.RawMessage   `json:"labels"`
		Statuses []json.RawMessage `json:"statuses"`
	}
	for i := range state.Frameworks[0].Executors {
		for j := range state.Frameworks[0].Executors[i].Tasks {
			task = &state.Frameworks[0].Executors[i].Tasks[j]
		}
	}
	if task == nil || task.ID != "web.1" || string(task.Labels) != `[{"key":"HAPROXY_GROUP","value":"external"}]` {
		t.Fatalf("task %+v", task)
	}
	last := string(task.Statuses[len(task.Statuses)-1])
	if !strings.Contains(last, `"network_infos":[{"labels":[{"key":"networks","value":"blue"}],"ip_addresses":[{"protocol":"IPv4","ip_address":"10.99.0.5"},{"protocol":"IPv6","ip_address":"fd99::5\/64"}],"name":"net1"}]`) {
		t.Errorf("running status in /state: %s", last)
	}

	var killed Container
	if code := doJSON(t, client, "POST", "/kill", `{"container_id":"`+c.ID+`"}`, &killed); code != 200 || killed.State != mesos.TaskKilled {
		t.Errorf("kill: %d %+v", code, killed)
	}
	if code := doJSON(t, client, "POST", "/kill", `{"container_id":"nope"}`, &apiErr); code != 404 {
		t.Errorf("kill unknown: %d", code)
	}
	if code := doJSON(t, client, "GET", "/state", "", &state); code != 200 || len(state.Frameworks) != 0 || len(state.CompletedFrameworks) != 1 {
		t.Errorf("state after kill: %d %+v", code, state)
	}
}

func TestMainServes(t *testing.T) {
	e := netEnv(t)
	sock := filepath.Join(e.base, "main.sock")
	ctx, cancel := contextWithCancel(ctxT(t))
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"--network_cni_config_dir", e.confDir, "--network_cni_plugins_dir", e.pluginsPath,
			"--root", e.root, "--listen", "unix:" + sock, "--hostname", "node1", "--ip", "198.18.0.1", "--log_level", "warn"}, &stdout, &stderr)
	}()
	client := unixClient(sock)
	deadline := time.Now().Add(10 * time.Second)
	for !exists(sock) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	var health map[string]string
	if code := doJSON(t, client, "GET", "/health", "", &health); code != 200 || health["status"] != "ok" {
		t.Errorf("health: %d %v", code, health)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("Main returned %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "listening on "+sock) {
		t.Errorf("stdout %q", stdout.String())
	}
}

func TestRealVethInNodeNetns(t *testing.T) {
	e := newLabEnv(t, "weft-veth", "host-local")
	if !haveTools(t, "ip", "nsenter") {
		t.Skip("ip or nsenter not found")
	}
	node := fmt.Sprintf("weftemu%d-%d", os.Getpid(), envSeq.Add(1))
	if err := netns.NewNamed(node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.DeleteNamed(node); err != nil {
			t.Error(err)
		}
	})
	e.writeConf("veth.conf", bridgeConf("vethnet", "weft-veth"))
	a := e.agent(func(c *Config) { c.NetNS = netns.Path(node) })
	ctx := ctxT(t)
	c, err := a.Launch(ctx, TaskSpec{TaskID: "v", NetworkInfos: []mesos.NetworkInfo{{Name: "vethnet"}}})
	if err != nil {
		t.Fatal(err)
	}
	host := "wv" + c.ID[:8]
	addrsIn := func(path, ifName string) []string {
		t.Helper()
		var out []string
		err := netns.Do(path, func() error {
			ifc, err := net.InterfaceByName(ifName)
			if err != nil {
				return err
			}
			addrs, err := ifc.Addrs()
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
					out = append(out, ipn.String())
				}
			}
			return err
		})
		if err != nil {
			t.Fatalf("%s in %s: %v", ifName, path, err)
		}
		return out
	}
	if got := addrsIn(a.Root()+"/"+c.ID+"/ns", "eth0"); !reflect.DeepEqual(got, []string{"10.99.0.5/24"}) {
		t.Errorf("container eth0 %v", got)
	}
	if got := addrsIn(netns.Path(node), host); !reflect.DeepEqual(got, []string{"10.99.0.1/24"}) {
		t.Errorf("node end %v", got)
	}
	if _, err := net.InterfaceByName(host); err == nil {
		t.Error("the host end was created in the test's own namespace")
	}
	if haveTools(t, "ping") {
		if err := netns.Do(netns.Path(node), func() error {
			return exec.Command("ping", "-c", "1", "-W", "2", "10.99.0.5").Run()
		}); err != nil {
			t.Errorf("ping the container from the node: %v", err)
		}
	}
	if _, err := a.Kill(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := netns.Do(netns.Path(node), func() error {
		if _, err := net.InterfaceByName(host); err == nil {
			return fmt.Errorf("%s still exists", host)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
