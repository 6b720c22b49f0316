package cni

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types020 "github.com/containernetworking/cni/pkg/types/020"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/weft-sdn/weft/internal/api"
)

func sampleResult(dual bool) api.AttachResult {
	req := api.AttachRequest{ContainerID: "c", IfName: "eth0", Netns: "/var/run/mesos/isolators/network/cni/c/ns"}
	if dual {
		req.Families = []string{"ipv4", "ipv6"}
	}
	return fakeResult(req)
}

// printed renders a result as the plugin prints it and decodes it back.
func printed(t *testing.T, r types.Result) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	if err := r.PrintTo(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("output %s: %v", buf.Bytes(), err)
	}
	return m
}

func TestResultLegacy(t *testing.T) {
	const netns = "/var/run/mesos/isolators/network/cni/c/ns"
	for _, v := range []string{"", "0.1.0", "0.2.0"} {
		t.Run("version "+v, func(t *testing.T) {
			r, err := Result(sampleResult(true), "eth0", netns, v, types.DNS{}, types.DNS{})
			if err != nil {
				t.Fatal(err)
			}
			m := printed(t, r)
			// Mesos' shape: cniVersion 0.2.0, ip4 with CIDR ip and gateway,
			// per-family routes, dns; no interfaces/ips.
			want := map[string]any{
				"cniVersion": "0.2.0",
				"ip4": map[string]any{"ip": "10.32.0.5/12", "gateway": "10.32.0.1",
					"routes": []any{map[string]any{"dst": "0.0.0.0/0", "gw": "10.32.0.1"}}},
				"ip6": map[string]any{"ip": "fd00::5/64", "gateway": "fd00::1",
					"routes": []any{map[string]any{"dst": "::/0", "gw": "fd00::1"}}},
				"dns": map[string]any{"nameservers": []any{"10.32.0.2"}, "search": []any{"mesos"}},
			}
			if !reflect.DeepEqual(m, want) {
				got, _ := json.Marshal(m)
				t.Errorf("result %s", got)
			}
			// And the CNI library reads it as a 0.2.0 result.
			var buf bytes.Buffer
			_ = r.PrintTo(&buf)
			parsed, err := types020.NewResult(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if res := parsed.(*types020.Result); res.IP4 == nil || res.IP4.Gateway.String() != "10.32.0.1" {
				t.Errorf("parsed = %+v", res)
			}
		})
	}
	t.Run("ipv4 only has no ip6", func(t *testing.T) {
		r, err := Result(sampleResult(false), "eth0", netns, "0.2.0", types.DNS{}, types.DNS{})
		if err != nil {
			t.Fatal(err)
		}
		m := printed(t, r)
		if _, ok := m["ip6"]; ok {
			t.Errorf("ip6 present: %v", m)
		}
		if ip4, _ := m["ip4"].(map[string]any); ip4["gateway"] != "10.32.0.1" {
			t.Errorf("ip4 = %v", m["ip4"])
		}
	})
	t.Run("no address", func(t *testing.T) {
		res := sampleResult(false)
		res.IPs = nil
		_, err := Result(res, "eth0", netns, "0.2.0", types.DNS{}, types.DNS{})
		if e := asError(err); e.Code != CodeBadResult || !strings.Contains(e.Msg, "no address") {
			t.Errorf("error = %v", err)
		}
	})
}

func TestResultModern(t *testing.T) {
	const netns = "/var/run/netns/c"
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run("version "+v, func(t *testing.T) {
			r, err := Result(sampleResult(true), "eth0", netns, v, types.DNS{}, types.DNS{})
			if err != nil {
				t.Fatal(err)
			}
			if r.Version() != v {
				t.Errorf("version = %q", r.Version())
			}
			m := printed(t, r)
			if m["cniVersion"] != v {
				t.Errorf("cniVersion = %v", m["cniVersion"])
			}
			if _, ok := m["ip4"]; ok {
				t.Errorf("0.2.0 key ip4 in a %s result", v)
			}
			res, err := types100.GetResult(r)
			if err != nil {
				t.Fatal(err)
			}
			// host end, then the container interface with its sandbox.
			if len(res.Interfaces) != 2 || res.Interfaces[0].Name != "weft93c2c386" || res.Interfaces[0].Sandbox != "" ||
				res.Interfaces[1].Name != "eth0" || res.Interfaces[1].Sandbox != netns || res.Interfaces[1].Mac != "02:93:c2:c3:86:6e" {
				t.Errorf("interfaces = %v", res.Interfaces)
			}
			if len(res.IPs) != 2 {
				t.Fatalf("ips = %v", res.IPs)
			}
			for i, want := range []struct{ addr, gw string }{{"10.32.0.5/12", "10.32.0.1"}, {"fd00::5/64", "fd00::1"}} {
				ip := res.IPs[i]
				if ip.Address.String() != want.addr || ip.Gateway.String() != want.gw || ip.Interface == nil || *ip.Interface != 1 {
					t.Errorf("ips[%d] = %v", i, ip)
				}
			}
			if len(res.Routes) != 2 || res.Routes[0].Dst.String() != "0.0.0.0/0" || res.Routes[0].GW.String() != "10.32.0.1" {
				t.Errorf("routes = %v", res.Routes)
			}
			if !reflect.DeepEqual(res.DNS.Nameservers, []string{"10.32.0.2"}) {
				t.Errorf("dns = %+v", res.DNS)
			}
			switch v {
			case "1.0.0", "1.1.0":
				if _, ok := m["ips"]; !ok {
					t.Errorf("no ips in %v", m)
				}
				if ifs := m["interfaces"].([]any); ifs[1].(map[string]any)["mtu"] != float64(1450) {
					t.Errorf("mtu missing in %v", ifs)
				}
			default:
				if _, err := types040.GetResult(r); err != nil {
					t.Errorf("0.4.0 view: %v", err)
				}
				ips := m["ips"].([]any)
				if ips[0].(map[string]any)["version"] != "4" {
					t.Errorf("ips[0] = %v", ips[0])
				}
			}
		})
	}
	t.Run("no host interface", func(t *testing.T) {
		res := sampleResult(false)
		res.HostIf, res.Interface = "", ""
		r, err := Result(res, "eth1", "", "1.0.0", types.DNS{}, types.DNS{})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := types100.GetResult(r)
		if len(got.Interfaces) != 1 || got.Interfaces[0].Name != "eth1" || got.Interfaces[0].Sandbox != res.Sandbox || *got.IPs[0].Interface != 0 {
			t.Errorf("result = %+v", got)
		}
	})
}

func TestResultDNS(t *testing.T) {
	res := sampleResult(false)
	override := types.DNS{Nameservers: []string{"192.168.0.53"}}
	fallback := types.DNS{Nameservers: []string{"8.8.8.8"}, Domain: "fallback.example", Search: []string{"x"}}
	r, err := Result(res, "eth0", "/ns", "1.1.0", override, fallback)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := types100.GetResult(r)
	want := types.DNS{Nameservers: []string{"192.168.0.53"}, Domain: "fallback.example", Search: []string{"mesos"}}
	if !reflect.DeepEqual(got.DNS, want) {
		t.Errorf("dns = %+v, want %+v", got.DNS, want)
	}
}

func TestResultBadAgentAnswers(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(r *api.AttachResult)
		field string
	}{
		{"bare address", func(r *api.AttachResult) { r.IPs[0].Address = "10.32.0.5" }, "ips[0].address"},
		{"bad gateway", func(r *api.AttachResult) { r.IPs[0].Gateway = "gw" }, "ips[0].gateway"},
		{"gateway family", func(r *api.AttachResult) { r.IPs[0].Gateway = "fd00::1" }, "ips[0].gateway"},
		{"4in6", func(r *api.AttachResult) { r.IPs[0].Address = "::ffff:10.32.0.5/108" }, "ips[0].address"},
		{"bad route", func(r *api.AttachResult) { r.Routes[0].Dst = "default" }, "routes[0].dst"},
		{"bad route gw", func(r *api.AttachResult) { r.Routes[0].GW = "x" }, "routes[0].gw"},
		{"bad mac", func(r *api.AttachResult) { r.MAC = "zz" }, "mac"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := sampleResult(false)
			tt.edit(&res)
			_, err := Result(res, "eth0", "/ns", "1.0.0", types.DNS{}, types.DNS{})
			e := asError(err)
			if err == nil || e.Code != CodeBadResult || e.Field != tt.field || !strings.Contains(e.Msg, tt.field) {
				t.Errorf("error = %+v, want code %d naming %q", e, CodeBadResult, tt.field)
			}
		})
	}
}
