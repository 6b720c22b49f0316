package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types020 "github.com/containernetworking/cni/pkg/types/020"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/kerneltest"
)

// buildPlugin builds cmd/weft-cni into dir/weft-cni and returns its path.
func buildPlugin(t *testing.T, dir string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	if _, err := exec.LookPath("go"); err != nil {
		kerneltest.Missing(t, "no go command on PATH")
	}
	if err := kerneltest.BuildCommands(dir, ProgramName); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, ProgramName)
}

// copyFile installs the plugin under another name.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// execMesos runs the binary exactly as the Mesos isolator does: stdin is
// the checkpointed config, the environment has no CNI_ARGS.
func execMesos(t *testing.T, bin, cmd, netns string, stdin []byte) (stdout string, status int) {
	t.Helper()
	c := exec.Command(bin)
	c.Env = []string{
		"CNI_COMMAND=" + cmd,
		"CNI_CONTAINERID=5baff64c-d028-47ba-864e-a5ee679fc069.nested",
		"CNI_PATH=" + filepath.Dir(bin),
		"CNI_IFNAME=eth0",
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	}
	if netns != "" {
		c.Env = append(c.Env, "CNI_NETNS="+netns)
	}
	c.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	c.Stdout = &out
	err := c.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exitErr):
		return out.String(), exitErr.ExitCode()
	}
	t.Fatalf("run plugin: %v", err)
	return "", -1
}

// cniErr extracts the CNI error libcni returns.
func cniErr(t *testing.T, err error) *types.Error {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a CNI error", err, err)
	}
	return e
}

func TestEndToEnd(t *testing.T) {
	binDir := t.TempDir()
	bin := buildPlugin(t, binDir)
	fa := startFakeAgent(t)
	cni := libcni.NewCNIConfigWithCacheDir([]string{binDir}, t.TempDir(), nil)
	ctx := context.Background()

	// The operator's file: no Mesos args; Mesos injects network_info.
	confFile := func(version string) []byte {
		return []byte(weftConf(version, fa.socket, `,"project":"default-domain:mesos-default"`))
	}
	const networkInfo = `{"ip_addresses":[{"protocol":"IPv4"},{"protocol":"IPv6"}],` +
		`"labels":{"labels":[{"key":"networks","value":"blue"},{"key":"network-subnets","value":"10.32.0.0/12"}]},` +
		`"name":"weft","port_mappings":[{"container_port":80,"host_port":31845,"protocol":"tcp"}]}`

	t.Run("version info", func(t *testing.T) {
		vi, err := cni.GetVersionInfo(ctx, ProgramName)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(vi.SupportedVersions(), SupportedVersions) {
			t.Errorf("supported = %v", vi.SupportedVersions())
		}
	})

	for _, cniVersion := range []string{"-", "0.1.0", "0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run("lifecycle "+cniVersion, func(t *testing.T) {
			stdin := injectMesosArgs(t, confFile(cniVersion), networkInfo)
			//lint:ignore SA1019 Mesos hands plugins single-plugin configs, not conflists: this is the format under test.
			net, err := libcni.ConfFromBytes(stdin)
			if err != nil {
				t.Fatal(err)
			}
			cid := "c" + strings.ReplaceAll(cniVersion, ".", "")
			rt := &libcni.RuntimeConf{ContainerID: cid, NetNS: "/var/run/mesos/isolators/network/cni/" + cid + "/ns", IfName: "eth0"}

			res, err := cni.AddNetwork(ctx, net, rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			req := fa.LastAttach(t)
			want := api.AttachRequest{ContainerID: cid, IfName: "eth0", Netns: rt.NetNS, CNINetwork: "weft",
				Network: "blue", Project: "default-domain:mesos-default", Subnets: []string{"10.32.0.0/12"},
				Families: []string{"ipv4", "ipv6"}, Labels: map[string]string{"networks": "blue", "network-subnets": "10.32.0.0/12"}}
			if !reflect.DeepEqual(req, want) {
				t.Errorf("agent got\n %+v\nwant %+v", req, want)
			}
			if cniVersion == "-" || isLegacyVersion(cniVersion) {
				r, ok := res.(*types020.Result)
				if !ok {
					t.Fatalf("result %T, want a 0.2.0 result", res)
				}
				if r.CNIVersion != "0.2.0" || r.IP4 == nil || r.IP4.IP.String() != "10.32.0.5/12" || r.IP4.Gateway.String() != "10.32.0.1" ||
					r.IP6 == nil || r.IP6.IP.String() != "fd00::5/64" || len(r.IP4.Routes) != 1 {
					t.Errorf("result = %+v", r)
				}
			} else {
				if res.Version() != cniVersion {
					t.Errorf("result version %q", res.Version())
				}
				r, err := types100.GetResult(res)
				if err != nil {
					t.Fatal(err)
				}
				if len(r.IPs) != 2 || r.IPs[0].Address.String() != "10.32.0.5/12" || r.IPs[0].Gateway.String() != "10.32.0.1" ||
					len(r.Interfaces) != 2 || r.Interfaces[*r.IPs[0].Interface].Sandbox != rt.NetNS {
					t.Errorf("result = %+v", r)
				}
			}

			if ok, _ := versionAtLeast(net.Network.CNIVersion, "0.4.0"); ok {
				if err := cni.CheckNetwork(ctx, net, rt); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			// DEL twice: the second finds nothing and still succeeds.
			for i := range 2 {
				if err := cni.DelNetwork(ctx, net, rt); err != nil {
					t.Fatalf("DEL %d: %v", i+1, err)
				}
			}
			if fa.Attached(cid, "eth0") {
				t.Errorf("still attached after DEL")
			}
		})
	}

	t.Run("check after detach fails", func(t *testing.T) {
		//lint:ignore SA1019 Mesos hands plugins single-plugin configs, not conflists: this is the format under test.
		net, _ := libcni.ConfFromBytes(injectMesosArgs(t, confFile("1.0.0"), networkInfo))
		rt := &libcni.RuntimeConf{ContainerID: "chk", NetNS: "/ns/chk", IfName: "eth0"}
		if _, err := cni.AddNetwork(ctx, net, rt); err != nil {
			t.Fatal(err)
		}
		fa.mu.Lock()
		delete(fa.attached, "chk/eth0")
		fa.mu.Unlock()
		e := cniErr(t, cni.CheckNetwork(ctx, net, rt))
		if e.Code != CodeCheckFailed {
			t.Errorf("CHECK error = %+v", e)
		}
		_ = cni.DelNetwork(ctx, net, rt)
	})

	t.Run("status and gc", func(t *testing.T) {
		//lint:ignore SA1019 Mesos hands plugins single-plugin configs, not conflists: this is the format under test.
		list, err := libcni.ConfListFromConf(mustConf(t, confFile("1.1.0")))
		if err != nil {
			t.Fatal(err)
		}
		if err := cni.GetStatusNetworkList(ctx, list); err != nil {
			t.Errorf("STATUS: %v", err)
		}
		fa.SetStatus(api.AgentStatus{Ready: false, Reason: "syncing", Node: "n1"})
		e := cniErr(t, cni.GetStatusNetworkList(ctx, list))
		if e.Code != CodePluginNotAvailable || !strings.Contains(e.Msg, "syncing") {
			t.Errorf("STATUS not ready: %+v", e)
		}
		fa.SetStatus(api.AgentStatus{Ready: true, Node: "n1"})

		for _, cid := range []string{"keep", "drop"} {
			rt := &libcni.RuntimeConf{ContainerID: cid, NetNS: "/ns/" + cid, IfName: "eth0"}
			if _, err := cni.AddNetworkList(ctx, list, rt); err != nil {
				t.Fatal(err)
			}
		}
		// Keep only "keep"; libcni DELs "drop" from its cache and then
		// sends GC with the valid list.
		if err := cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: "keep", IfName: "eth0"}}}); err != nil {
			t.Fatal(err)
		}
		calls := fa.CallsTo(pathGC)
		if len(calls) == 0 {
			t.Fatal("no GC call")
		}
		var req api.GCRequest
		_ = json.Unmarshal(calls[len(calls)-1].Body, &req)
		want := api.GCRequest{CNINetwork: "weft", Valid: []api.DetachRequest{{ContainerID: "keep", IfName: "eth0", CNINetwork: "weft"}}}
		if !reflect.DeepEqual(req, want) {
			t.Errorf("gc = %+v", req)
		}
		if !fa.Attached("keep", "eth0") || fa.Attached("drop", "eth0") {
			t.Errorf("attachments after GC wrong")
		}
	})

	t.Run("mesos exec", func(t *testing.T) {
		// Exactly what Mesos runs and parses (mesos-cni.md §3–§4): no
		// cniVersion, network_info in args, a nested container id.
		stdin := injectMesosArgs(t, confFile("-"), `{"ip_addresses":[{"protocol":"IPv4","ip_address":"10.32.0.77"}],"name":"weft"}`)
		out, status := execMesos(t, bin, "ADD", "/var/run/mesos/isolators/network/cni/x/ns", stdin)
		if status != 0 {
			t.Fatalf("ADD exit %d: %s", status, out)
		}
		var r struct {
			CNIVersion string `json:"cniVersion"`
			IP4        struct {
				IP      string `json:"ip"`
				Gateway string `json:"gateway"`
			} `json:"ip4"`
			IPs any `json:"ips"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		if r.CNIVersion != "0.2.0" || r.IP4.IP != "10.32.0.77/12" || r.IP4.Gateway != "10.32.0.1" || r.IPs != nil {
			t.Errorf("stdout = %s", out)
		}
		if got := fa.LastAttach(t); got.ContainerID != "5baff64c-d028-47ba-864e-a5ee679fc069.nested" || !reflect.DeepEqual(got.IPs, []string{"10.32.0.77"}) {
			t.Errorf("agent got %+v", got)
		}
		// DEL after a reboot: no CNI_NETNS, same stdin; twice.
		for i := range 2 {
			if out, status := execMesos(t, bin, "DEL", "", stdin); status != 0 || out != "" {
				t.Errorf("DEL %d: exit %d: %s", i+1, status, out)
			}
		}
	})

	t.Run("broken json", func(t *testing.T) {
		out, status := execMesos(t, bin, "ADD", "/ns", []byte(`{"name":"weft",`))
		var e errorJSON
		if status != 1 || json.Unmarshal([]byte(out), &e) != nil || e.Code != CodeDecodingFailure || !strings.Contains(e.Msg, "not a JSON object") {
			t.Errorf("exit %d stdout %s", status, out)
		}
	})

	t.Run("agent socket missing", func(t *testing.T) {
		missing := filepath.Join(shortTempDir(t), "agent.sock")
		net := mustConf(t, []byte(weftConf("0.2.0", missing, "")))
		start := time.Now()
		_, err := cni.AddNetwork(ctx, net, &libcni.RuntimeConf{ContainerID: "down", NetNS: "/ns/down", IfName: "eth0"})
		if d := time.Since(start); d > time.Second {
			t.Errorf("ADD took %v, want under 1s", d)
		}
		e := cniErr(t, err)
		if e.Code != CodeTryAgainLater || !strings.Contains(e.Msg, missing) {
			t.Errorf("error = %+v", e)
		}
		// DEL fails too (the agent releases the address), retryably.
		e = cniErr(t, cni.DelNetwork(ctx, net, &libcni.RuntimeConf{ContainerID: "down", IfName: "eth0"}))
		if e.Code != CodeTryAgainLater {
			t.Errorf("DEL error = %+v", e)
		}
	})

	t.Run("installed as contrail-cni-plugin", func(t *testing.T) {
		copyFile(t, bin, filepath.Join(binDir, ContrailProgramName))
		// The fixture's Contrail Mesos config, installed as DC/OS does
		// (type contrail-cni-plugin), told where Weft's agent listens.
		conf := setKeys(t, readFixture(t, fixtureContrailConf), map[string]any{
			"type": ContrailProgramName,
			"name": "contrail-cni-plugin",
			"weft": map[string]any{"socket": fa.socket, "log-file": filepath.Join(t.TempDir(), "contrail.log")},
		})
		stdin := injectMesosArgs(t, conf, `{"ip_addresses":[{"protocol":"IPv4"}],"labels":{"labels":[`+
			`{"key":"networks","value":"blue-network"},{"key":"network-subnets","value":"5.5.5.0/24"},`+
			`{"key":"project-name","value":"default"},{"key":"domain-name","value":"default-domain"}]},"name":"contrail-cni-plugin"}`)
		net := mustConf(t, stdin)
		rt := &libcni.RuntimeConf{ContainerID: "contrail1", NetNS: "/ns/contrail1", IfName: "eth0"}
		res, err := cni.AddNetwork(ctx, net, rt)
		if err != nil {
			t.Fatalf("ADD: %v", err)
		}
		if r, ok := res.(*types020.Result); !ok || r.IP4 == nil || r.IP4.Gateway.String() != "10.32.0.1" {
			t.Errorf("result = %+v", res)
		}
		got := fa.LastAttach(t)
		if got.Network != "blue-network" || got.Project != "default-domain:default" || !reflect.DeepEqual(got.Subnets, []string{"5.5.5.0/24"}) || got.CNINetwork != "contrail-cni-plugin" {
			t.Errorf("agent got %+v", got)
		}
		if err := cni.DelNetwork(ctx, net, rt); err != nil {
			t.Errorf("DEL: %v", err)
		}
		// The Contrail deadline: poll-timeout 1 s × poll-retries 3.
		fa.SetHang(true)
		defer fa.SetHang(false)
		start := time.Now()
		_, err = cni.AddNetwork(ctx, net, rt)
		if e := cniErr(t, err); e.Code != CodeTryAgainLater || !strings.Contains(e.Msg, "within 3s") {
			t.Errorf("hung agent: %+v", e)
		}
		if d := time.Since(start); d < 3*time.Second || d > 6*time.Second {
			t.Errorf("hung ADD took %v, want about 3s", d)
		}
	})
}

func mustConf(t *testing.T, b []byte) *libcni.NetworkConfig {
	t.Helper()
	//lint:ignore SA1019 Mesos hands plugins single-plugin configs, not conflists: this is the format under test.
	net, err := libcni.ConfFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return net
}

// versionAtLeast compares CNI versions; "" is 0.1.0.
func versionAtLeast(v, minimum string) (bool, error) {
	if v == "" {
		v = DefaultCNIVersion
	}
	return version.GreaterThanOrEqualTo(v, minimum)
}
