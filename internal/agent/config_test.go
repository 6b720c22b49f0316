package agent

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(file, []byte(`{"node_name":"from-file","underlay_ip":"198.18.0.7","spares":3,"heartbeat_interval":"2s","dns":{"nameservers":["10.0.0.53"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{name: "defaults with underlay", args: []string{"--underlay-ip", "198.18.0.1", "--node-name", "n1"}, check: func(t *testing.T, c Config) {
			if c.Controller != DefaultController || c.StateDir != DefaultStateDir || c.Socket != DefaultSocket || c.PortAPIListen != ":9091" ||
				c.RouterNSPrefix != "weft-" || c.VXLANPort != 4789 || c.Spares != 8 || time.Duration(c.HeartbeatInterval) != 5*time.Second || c.NodeNetns != "" || c.MaxProcs != 1 {
				t.Fatalf("defaults: %+v", c)
			}
		}},
		{name: "file then flags", args: []string{"--config", file, "--spares", "5", "--port-api-listen", "", "--max-procs", "0"}, check: func(t *testing.T, c Config) {
			if c.NodeName != "from-file" || c.UnderlayIP != "198.18.0.7" || c.Spares != 5 || c.PortAPIListen != "" || c.MaxProcs != 0 ||
				time.Duration(c.HeartbeatInterval) != 2*time.Second || len(c.DNS.Nameservers) != 1 {
				t.Fatalf("config: %+v", c)
			}
		}},
		{name: "overlay config replaces the overlay flags", args: []string{"--underlay-ip", "198.18.0.1", "--node-name", "n1", "--overlay-mtu", "1300", "--docker-timeout", "1s",
			"--overlay-config", writeTemp(t, `{"cni_dir":"/etc/cni","network_config":{"overlay_mtu":1400,"enable_ipv6":false,"docker_bridge":false,"command_timeout":2500}}`)}, check: func(t *testing.T, c Config) {
			if c.CNIDir != "/etc/cni" || c.OverlayMTU != 1400 || c.OverlayIPv6 || c.OverlayRole.DockerBridge || !c.OverlayRole.MesosBridge || !c.OverlayRole.AllocateSubnet ||
				time.Duration(c.DockerTimeout) != 2500*time.Millisecond {
				t.Fatalf("config: %+v", c)
			}
		}},
		{name: "netns needs underlay", args: []string{"--node-netns", "/run/netns/n1", "--node-name", "n1"}, wantErr: "underlay-ip"},
		{name: "bad values", args: []string{"--underlay-ip", "x", "--node-name", "a:b", "--controller", "ftp://x", "--vxlan-port", "0", "--spares", "-1", "--log-level", "loud"},
			wantErr: "node-name"},
		{name: "extra argument", args: []string{"--underlay-ip", "198.18.0.1", "more"}, wantErr: "unexpected argument"},
		{name: "unknown file field", args: []string{"--config", writeTemp(t, `{"nope":1}`)}, wantErr: "nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
	// Every bad value is reported at once.
	_, err := ParseConfig([]string{"--underlay-ip", "x", "--node-name", "a:b", "--controller", "ftp://x", "--vxlan-port", "0", "--spares", "-1", "--max-procs", "-2", "--log-level", "loud"}, io.Discard)
	for _, field := range []string{"node-name", "underlay-ip", "controller", "vxlan-port", "spares", "max-procs", "log-level"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v does not name %s", err, field)
		}
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
