package emulator

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/weft-sdn/weft/internal/mesos"
)

// fixtures is shared/fixtures, read-only test data.
const fixtures = "../../../../shared/fixtures/"

func TestConfigStoreLoading(t *testing.T) {
	valid := func(name, typ string) string { return `{"name":"` + name + `","type":"` + typ + `"}` }
	tests := []struct {
		name    string
		files   map[string]string
		dirs    []string
		plugins map[string]os.FileMode
		want    map[string]string // network → file
	}{
		{
			name:    "one valid file, any extension",
			files:   map[string]string{"net.whatever": valid("n1", "bridge")},
			plugins: map[string]os.FileMode{"bridge": 0o755},
			want:    map[string]string{"n1": "net.whatever"},
		},
		{
			name: "unparseable files skipped",
			files: map[string]string{
				"a.conf": "not json", "b.conf": `{"name":"x"}`, "c.conf": `{"name":"x","type":7}`,
				"d.conf": `[]`, "e.conf": valid("ok", "bridge"), "f.conf": `{"name":"y","type":"bridge"} trailing`,
			},
			plugins: map[string]os.FileMode{"bridge": 0o755},
			want:    map[string]string{"ok": "e.conf"},
		},
		{
			name:    "duplicate name: the first file (by name) wins",
			files:   map[string]string{"10-a.conf": valid("dup", "bridge"), "20-b.conf": valid("dup", "bridge")},
			plugins: map[string]os.FileMode{"bridge": 0o755},
			want:    map[string]string{"dup": "10-a.conf"},
		},
		{
			name:    "type not on the search path",
			files:   map[string]string{"a.conf": valid("a", "nosuch"), "b.conf": valid("b", "bridge")},
			plugins: map[string]os.FileMode{"bridge": 0o755},
			want:    map[string]string{"b": "b.conf"},
		},
		{
			name:    "plugin without an execute bit",
			files:   map[string]string{"a.conf": valid("a", "noexec")},
			plugins: map[string]os.FileMode{"noexec": 0o644},
			want:    map[string]string{},
		},
		{
			name: "ipam type checked only when ipam is present",
			files: map[string]string{
				"a.conf": `{"name":"a","type":"bridge","ipam":{"type":"nosuch"}}`,
				"b.conf": `{"name":"b","type":"bridge","ipam":{"type":"host-local"}}`,
				"c.conf": `{"name":"c","type":"bridge","ipam":{"subnet":"10.0.0.0/8"}}`,
				"d.conf": `{"name":"d","type":"port-mapper","delegate":{"type":"bridge","ipam":{"type":"nosuch"}}}`,
			},
			plugins: map[string]os.FileMode{"bridge": 0o755, "host-local": 0o755, "port-mapper": 0o755},
			want:    map[string]string{"b": "b.conf", "d": "d.conf"},
		},
		{
			name:    "conflist skipped",
			files:   map[string]string{"a.conflist": `{"cniVersion":"0.4.0","name":"a","plugins":[{"type":"bridge"}]}`},
			plugins: map[string]os.FileMode{"bridge": 0o755},
			want:    map[string]string{},
		},
		{
			name:    "directories ignored",
			files:   map[string]string{"a.conf": valid("a", "bridge")},
			dirs:    []string{"sub.conf"},
			plugins: map[string]os.FileMode{"bridge": 0o755},
			want:    map[string]string{"a": "a.conf"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			confDir, pluginDir := filepath.Join(base, "conf"), filepath.Join(base, "plugins")
			for _, d := range append([]string{confDir, pluginDir}, prefixAll(confDir, tt.dirs)...) {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for name, content := range tt.files {
				if err := os.WriteFile(filepath.Join(confDir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for name, mode := range tt.plugins {
				if err := os.WriteFile(filepath.Join(pluginDir, name), []byte("#!/bin/sh\n"), mode); err != nil {
					t.Fatal(err)
				}
			}
			s, err := newConfigStore(confDir, ":"+filepath.Join(base, "none")+":"+pluginDir+"/", slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			for n, f := range tt.want {
				want[n] = confDir + "/" + f
			}
			if got := s.names(); !reflect.DeepEqual(got, want) {
				t.Errorf("networks = %v, want %v", got, want)
			}
		})
	}
}

func prefixAll(dir string, names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, filepath.Join(dir, n))
	}
	return out
}

func TestConfigStoreReload(t *testing.T) {
	base := t.TempDir()
	confDir, pluginDir := filepath.Join(base, "conf"), filepath.Join(base, "plugins")
	for _, d := range []string{confDir, pluginDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(pluginDir, "bridge"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(file, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(confDir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := newConfigStore(confDir, pluginDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.get("late"); err == nil || err.Error() != "Unknown CNI network 'late'" {
		t.Fatalf("before the file exists: %v", err)
	}
	// A file added after start is found on the miss.
	write("late.conf", `{"name":"late","type":"bridge","mtu":1400}`)
	obj, path, err := s.get("late")
	if err != nil || path != confDir+"/late.conf" || obj["mtu"] != json.Number("1400") {
		t.Fatalf("after adding: %v %s %v", obj, path, err)
	}
	// The cached path is re-read: content changes are seen.
	write("late.conf", `{"name":"late","type":"bridge","mtu":1300}`)
	if obj, _, _ := s.get("late"); obj["mtu"] != json.Number("1300") {
		t.Errorf("content change not seen: %v", obj["mtu"])
	}
	// A cached file whose name changed is dropped and the directory
	// reloaded.
	write("late.conf", `{"name":"renamed","type":"bridge"}`)
	if _, _, err := s.get("late"); err == nil || err.Error() != "Unknown CNI network 'late'" {
		t.Errorf("renamed: %v", err)
	}
	if _, _, err := s.get("renamed"); err != nil {
		t.Errorf("renamed network: %v", err)
	}
	// A cached file that stops validating but still names the network
	// fails only the lookup.
	write("late.conf", `{"name":["renamed"],"type":"bridge"}`)
	if _, _, err := s.get("renamed"); err == nil || err.Error() != "Unknown CNI network 'renamed'" {
		t.Errorf("invalid name: %v", err)
	}
	// A missing config directory fails a reload.
	if err := os.RemoveAll(confDir); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.get("other")
	if want := "Encountered error while loading CNI config during a cache-miss for CNI network 'other': Unable to list the CNI network configuration directory '" + confDir + "'"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("missing dir: %v", err)
	}
}

func TestReadNetworkConfigJSON(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		content, want string
	}{
		{`{"type":"x"}`, "Cannot determine the 'name' of the CNI network for this configuration '"},
		{`{"name":null}`, "Cannot determine the 'name' of the CNI network for this configuration ': Found JSON value of wrong type"},
		{`{"name":"other"}`, "The current CNI configuration network('other') does not match the network name: 'net'"},
	}
	for i, tt := range tests {
		p := filepath.Join(dir, strings.Repeat("x", i+1))
		if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readNetworkConfigJSON("net", p); err == nil || err.Error() != tt.want {
			t.Errorf("%s: %v, want %q", tt.content, err, tt.want)
		}
	}
	_, err := readNetworkConfigJSON("net", filepath.Join(dir, "nope"))
	if err == nil || !strings.HasPrefix(err.Error(), "Failed to read CNI network configuration file: '"+dir+"/nope': ") {
		t.Errorf("missing file: %v", err)
	}
}

// refConfig is the DC/OS overlay configuration of the reference's §3.1
// example, as an operator would write it (no args).
const refConfig = `{
  "name": "dcos",
  "type": "mesos-cni-port-mapper",
  "excludeDevices": ["m-dcos"],
  "chain": "M-DCOS",
  "delegate": {
    "type": "bridge", "bridge": "m-dcos", "isGateway": true, "ipMasq": false, "hairpinMode": true, "mtu": 1420,
    "ipam": {"type": "host-local", "dataDir": "/var/run/dcos/cni/networks", "subnet": "9.0.1.0/25", "routes": [{"dst": "0.0.0.0/0"}]}
  }
}`

// refStdin is the stdin of the reference's §3.1 example (shown there
// pretty-printed).
const refStdin = `{
  "args": {
    "org.apache.mesos": {
      "network_info": {
        "ip_addresses": [{"protocol": "IPv4"}],
        "labels": {"labels": [{"key": "networks", "value": "blue"}]},
        "name": "dcos",
        "port_mappings": [{"container_port": 80, "host_port": 31845, "protocol": "tcp"}]
      }
    }
  },
  "chain": "M-DCOS",
  "delegate": {
    "bridge": "m-dcos", "hairpinMode": true, "ipMasq": false, "isGateway": true, "mtu": 1420,
    "ipam": {"dataDir": "/var/run/dcos/cni/networks", "routes": [{"dst": "0.0.0.0/0"}],
             "subnet": "9.0.1.0/25", "type": "host-local"},
    "type": "bridge"
  },
  "excludeDevices": ["m-dcos"],
  "name": "dcos",
  "type": "mesos-cni-port-mapper"
}`

// goldenRefStdin is the byte-exact line Mesos writes for refStdin: keys
// sorted, compact, '/' escaped by stout.
const goldenRefStdin = `{"args":{"org.apache.mesos":{"network_info":{"ip_addresses":[{"protocol":"IPv4"}],"labels":{"labels":[{"key":"networks","value":"blue"}]},"name":"dcos","port_mappings":[{"container_port":80,"host_port":31845,"protocol":"tcp"}]}}},"chain":"M-DCOS","delegate":{"bridge":"m-dcos","hairpinMode":true,"ipMasq":false,"ipam":{"dataDir":"\/var\/run\/dcos\/cni\/networks","routes":[{"dst":"0.0.0.0\/0"}],"subnet":"9.0.1.0\/25","type":"host-local"},"isGateway":true,"mtu":1420,"type":"bridge"},"excludeDevices":["m-dcos"],"name":"dcos","type":"mesos-cni-port-mapper"}`

// goldenUCRStdin is the stdin for the mesos-mini fixture config.
const goldenUCRStdin = `{"args":{"org.apache.mesos":{"network_info":{"ip_addresses":[{"protocol":"IPv4"}],"labels":{"labels":[{"key":"networks","value":"blue"}]},"name":"mesos-bridge","port_mappings":[{"container_port":80,"host_port":31845,"protocol":"tcp"}]}}},"chain":"UCR-DEFAULT-BRIDGE","delegate":{"bridge":"ucr-br0","forceAddress":false,"hairpinMode":true,"ipMasq":true,"ipam":{"dataDir":"\/var\/run\/mesos\/cni\/networks","routes":[{"dst":"0.0.0.0\/0"}],"subnet":"172.31.254.0\/24","type":"host-local"},"isDefaultGateway":true,"type":"bridge"},"excludeDevices":["ucr-br0"],"name":"mesos-bridge","type":"mesos-cni-port-mapper"}`

// marathonNetworkInfo is what Marathon sends for a UCR app on network
// name with one host-port mapping and a network label.
func marathonNetworkInfo(name string) mesos.NetworkInfo {
	return mesos.NetworkInfo{
		IPAddresses:  []mesos.IPAddress{{Protocol: mesos.IPv4}},
		Name:         name,
		Labels:       mesos.NewLabels("networks", "blue"),
		PortMappings: []mesos.PortMapping{{HostPort: 31845, ContainerPort: 80, Protocol: "tcp"}},
	}
}

func TestInjectNetworkInfo(t *testing.T) {
	dir := t.TempDir()
	refPath := filepath.Join(dir, "dcos.conf")
	if err := os.WriteFile(refPath, []byte(refConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		path   string
		net    string
		golden string
	}{
		{"reference §3.1", refPath, "dcos", goldenRefStdin},
		{"mesos-mini fixture", fixtures + "mesos/mesos-mini/ucr-default-bridge.json", "mesos-bridge", goldenUCRStdin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := readNetworkConfigJSON(tt.net, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := injectNetworkInfo(conf, tt.path, marathonNetworkInfo(tt.net))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.golden {
				t.Errorf("stdin:\n got  %s\n want %s", got, tt.golden)
			}
		})
	}
	// The golden line means the same as the reference's pretty example.
	var a, b any
	if err := json.Unmarshal([]byte(goldenRefStdin), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(refStdin), &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Error("golden stdin differs from the reference example")
	}
}

func TestInjectNetworkInfoArgs(t *testing.T) {
	ni := mesos.NetworkInfo{Name: "n", Groups: []string{"prod"}}
	tests := []struct {
		name, conf, want, wantErr string
	}{
		{"other args kept", `{"name":"n","type":"t","args":{"cni":{"ips":["10.0.0.9"]},"zz":1}}`,
			`{"args":{"cni":{"ips":["10.0.0.9"]},"org.apache.mesos":{"network_info":{"groups":["prod"],"name":"n"}},"zz":1},"name":"n","type":"t"}`, ""},
		{"reserved key", `{"name":"n","type":"t","args":{"org.apache.mesos":{}}}`, "",
			"'org.apache.mesos' in 'args' should not be set in CNI network configuration file. It is reserved by Mesos"},
		{"args not an object", `{"name":"n","type":"t","args":["x"]}`, "",
			"Invalid 'args' found in CNI network configuration file '/etc/cni/n.conf': Found JSON value of wrong type"},
		{"args null", `{"name":"n","type":"t","args":null}`, "",
			"Invalid 'args' found in CNI network configuration file '/etc/cni/n.conf': Found JSON value of wrong type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := mesos.DecodeObject([]byte(tt.conf))
			if err != nil {
				t.Fatal(err)
			}
			got, err := injectNetworkInfo(conf, "/etc/cni/n.conf", ni)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Errorf("got %s, %v\nwant %s", got, err, tt.want)
			}
		})
	}
}

func TestWhich(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p"), nil, 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want string
		ok   bool
	}{
		{dir, dir + "/p", true},
		{dir + "/", dir + "/p", true},
		{"::" + dir + ":", dir + "/p", true},
		{"/nonexistent", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := which("p", tt.path)
		if got != tt.want || ok != tt.ok {
			t.Errorf("which(p, %q) = %q, %v; want %q, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}
