package docker

import (
	"os"
	"path/filepath"
	"testing"
)

// The seeds in testdata/network-*.json are answers of the real Debian
// docker.io 20.10.24 engine to GET /v1.41/networks/{name}.
func networkSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "network-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no seeds: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestDecodeRealEngineJSON(t *testing.T) {
	seeds := networkSeeds(t)
	want := map[string]string{
		"network-dcos.json":           "dcos bridge=d-test subnets=9.0.1.128/25 mtu=1420 ipv6=false options=com.docker.network.bridge.enable_ip_masquerade=false,com.docker.network.bridge.name=d-test,com.docker.network.driver.mtu=1420 labels=-\n",
		"network-ipv6.json":           "x6 bridge=d-x6 subnets=9.0.2.0/25,fd01:b::/64 mtu=0 ipv6=true options=com.docker.network.bridge.name=d-x6 labels=-\n",
		"network-labels-gateway.json": "lbl bridge=d-lbl subnets=9.0.3.0/25 mtu=0 ipv6=false options=com.docker.network.bridge.name=d-lbl labels=io.weft.overlay=dcos\n",
		"network-none.json":           "none bridge=- subnets=(none) mtu=0 ipv6=false options=- labels=-\n",
	}
	for name, data := range seeds {
		n, err := DecodeNetwork(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f := NewFake()
		f.Add(n)
		if got := f.Dump(); got != want[name] {
			t.Errorf("%s:\n%s\nwant\n%s", name, got, want[name])
		}
		if len(n.ID) != 64 {
			t.Errorf("%s: id %q", name, n.ID)
		}
	}
	for _, bad := range []string{``, `[]`, `{}`, `{"Name":"x","IPAM":{"Config":[{"Subnet":"9.0.1.0/33"}]}}`, `{"Name":"x","IPAM":{"Config":[{"Subnet":"fe80::%eth0/64"}]}}`} {
		if _, err := DecodeNetwork([]byte(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func FuzzDecodeNetwork(f *testing.F) {
	for _, b := range networkSeeds(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"Name":"x","IPAM":{"Config":[{"Subnet":"9.0.1.130/25"},{}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := DecodeNetwork(data)
		if err != nil {
			return
		}
		if n.Name == "" && n.ID == "" {
			t.Fatal("decoded a network without name and id")
		}
		if n.Options == nil || n.Labels == nil {
			t.Fatal("nil maps")
		}
		for _, p := range n.Subnets {
			if !p.IsValid() || p.Masked() != p {
				t.Fatalf("subnet %v not a valid network prefix", p)
			}
		}
		// Whatever decodes must be comparable and dumpable without panics.
		_ = Compare(n, NetworkSpec{Name: n.Name, Subnet: pfx("9.0.1.128/25")})
		f := NewFake()
		f.Add(n)
		_ = f.Dump()
		_ = n.MTU()
	})
}
