package mesos

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzParseCNIResult checks that the Mesos result parser never panics,
// that a parsed result's addresses follow the §5 rules, and that every
// accepted document is valid JSON the stout writer can re-render.
func FuzzParseCNIResult(f *testing.F) {
	f.Add(bridgeOutput(f))
	for _, s := range []string{
		`{"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.5/24","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0"}]},"dns":{"nameservers":["10.1.0.1"]}}`,
		`{"ip4":{"ip":"9.0.1.7/25"},"ip6":{"ip":"fd01:b::1:8000:2/80"}}`,
		`{"cniVersion":"0.3.1","interfaces":[{"name":"eth0"}],"ips":[{"version":"4","address":"10.1.0.5/24"}]}`,
		`{"ip4":{"ip":"10.0.0.5"}}`,
		`{"ip4":{}}`,
		`{"dns":{"nameservers":"8.8.8.8","search":[["a"],null]}}`,
		`{"cniVersion":"0.3.0","code":11,"msg":"boom"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ParseCNIResult(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		obj, err := DecodeObject(data)
		if err != nil {
			t.Fatal(err)
		}
		out, err := MarshalSorted(obj)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseCNIResult(out)
		if err != nil {
			t.Fatalf("re-rendered %s does not parse: %v", out, err)
		}
		if !reflect.DeepEqual(res, again) {
			t.Fatalf("re-rendering changed the result: %+v vs %+v", res, again)
		}
		addrs, err := res.IPAddresses()
		if err != nil {
			if res.IP4 == nil {
				t.Fatalf("address error without ip4: %v", err)
			}
			return
		}
		n := 0
		if res.IP4 != nil {
			if addrs[0].Protocol != IPv4 {
				t.Fatalf("first address %+v", addrs[0])
			}
			n++
		}
		if res.IP6 != nil && (addrs[n].Protocol != IPv6 || addrs[n].IPAddress != res.IP6.IP) {
			t.Fatalf("IPv6 address %+v, want %q as returned", addrs[n], res.IP6.IP)
		}
	})
}

// FuzzNetworkInfoJSON checks that NetworkInfo decoding never panics and
// that a decoded NetworkInfo survives its protobuf and /state renderings.
func FuzzNetworkInfoJSON(f *testing.F) {
	for _, s := range []string{
		refNetworkInfo,
		`{"ip_addresses":[{"protocol":"IPv4","ip_address":"9.0.2.3"}],"name":"dcos","labels":{"labels":[{"key":"key0","value":"val0"},{"key":"key1","value":"val1"}]}}`,
		`{"ip_addresses":[{"protocol":"IPv4","ip_address":"12.0.1.2"},{"protocol":"IPv6","ip_address":"fd01:b::1:8000:2"}],"name":"dcos6"}`,
		`{"ip_addresses":[{}],"groups":["prod"],"labels":{"labels":[{"key":"k"}]}}`,
		`{"labels":[{"key":"a","value":"b"}],"port_mappings":[{"host_port":1,"container_port":2}]}`,
		`{"port_mappings":[{"host_port":-1,"container_port":1e3}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		strict, serr := ParseNetworkInfo(data)
		var lenient NetworkInfo
		lerr := json.Unmarshal(data, &lenient)
		if serr == nil && (lerr != nil || !reflect.DeepEqual(strict, lenient)) {
			t.Fatalf("strict parse %+v accepted, lenient %+v, %v", strict, lenient, lerr)
		}
		if lerr != nil {
			return
		}
		proto, err := json.Marshal(lenient)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseNetworkInfo(proto)
		if err != nil {
			t.Fatalf("protobuf rendering %s does not parse: %v", proto, err)
		}
		if !reflect.DeepEqual(normalize(back), normalize(lenient)) {
			t.Fatalf("protobuf round trip:\n %+v\n %+v", back, lenient)
		}
		state, err := MarshalStout(lenient.StateObject())
		if err != nil {
			t.Fatal(err)
		}
		var fromState NetworkInfo
		if err := json.Unmarshal(state, &fromState); err != nil {
			t.Fatalf("state rendering %s does not parse: %v", state, err)
		}
		if !reflect.DeepEqual(normalize(fromState), normalize(lenient)) {
			t.Fatalf("state round trip:\n %+v\n %+v", fromState, lenient)
		}
	})
}

// normalize maps the renderings' lossless-but-different forms together:
// an empty protocol is the IPv4 default.
func normalize(n NetworkInfo) NetworkInfo {
	out := n
	out.IPAddresses = nil
	for _, a := range n.IPAddresses {
		if a.Protocol == "" {
			a.Protocol = IPv4
		}
		out.IPAddresses = append(out.IPAddresses, a)
	}
	return out
}
