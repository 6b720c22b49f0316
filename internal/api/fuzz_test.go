package api

import (
	"encoding/json"
	"errors"
	"net/netip"
	"testing"
)

// FuzzDecodeObject feeds arbitrary bodies to every kind's decoder: it must
// never panic, every refusal must be an *Error wrapping ErrInvalid, and an
// accepted object must survive a JSON round trip and validate again
// unchanged (validation is idempotent).
func FuzzDecodeObject(f *testing.F) {
	seeds := []string{
		`{"name":"blue","subnets":[{"cidr":"10.0.0.0/24"}]}`,
		`{"fq_name":"default-domain:default-project:blue","network_kind":"overlay","vni":1024,"subnets":[{"cidr":"9.0.0.0/8","block_prefix":24},{"cidr":"fd01:b::/64","block_prefix":80}]}`,
		`{"name":"x","subnets":[{"cidr":"10.0.0.0/24","gateway":"10.0.0.254"}]}`,
		`{"name":"p","network":"blue","mac":"02:42:ac:11:00:02","ips":[{"address":"10.0.0.5"}],"security_groups":["default-domain:default-project:sg"]}`,
		`{"name":"n1","underlay_ip":"198.18.0.1","vtep_ip":"44.128.0.1","vtep_mac":"70:b3:d5:80:00:01"}`,
		`{"name":"sg","rules":[{"direction":"ingress","protocol":"tcp","port_min":80,"port_max":90,"remote_cidr":"0.0.0.0/0"}]}`,
		`{"name":"np","rules":[{"source":"blue","destination":"any","direction":">"}]}`,
		`{"name":"svc","vip":"11.1.1.1","port":80,"backends":[{"address":"10.0.0.5","port":8080}]}`,
		`{"name":"a:b"}`, `{"name":`, `[]`, `null`, `{"subnets":"x"}`, `{"name":"x","colour":1}`,
		`{"name":"x","subnets":[{"cidr":"::ffff:10.0.0.0/120"}]}`, `{"created_at":"yesterday","name":"d"}`,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, k := range Kinds {
			obj, err := DecodeObject(k, []byte(body))
			if err != nil {
				var ae *Error
				if !errors.As(err, &ae) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("%s: refusal is not an invalid-input *Error: %T %v", k, err, err)
				}
				continue
			}
			b, err := json.Marshal(obj)
			if err != nil {
				t.Fatalf("%s: marshal accepted object: %v", k, err)
			}
			again, err := DecodeObject(k, b)
			if err != nil {
				t.Fatalf("%s: accepted object does not decode again: %v\n%s", k, err, b)
			}
			b2, _ := json.Marshal(again)
			if string(b) != string(b2) {
				t.Fatalf("%s: validation not idempotent:\n%s\n%s", k, b, b2)
			}
		}
	})
}

// FuzzParseSubnet checks CIDR parsing: an accepted subnet is canonical,
// its gateway and last address lie inside it, and the text round-trips.
func FuzzParseSubnet(f *testing.F) {
	for _, s := range []string{"10.0.0.0/24", "10.0.0.5/24", "0.0.0.0/0", "10.0.0.0/31", "fd00::/64", "fd00::/127",
		"::ffff:10.0.0.0/104", "fe80::%eth0/64", " 10.1.0.0/16 ", "1.2.3.4", "10.0.0.0/-1", "2001:db8::/32"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseSubnet(s)
		if err != nil {
			return
		}
		if p != p.Masked() {
			t.Fatalf("%q: accepted non-canonical %s", s, p)
		}
		gw := DefaultGateway(p)
		if !p.Contains(gw) || !p.Contains(LastAddr(p)) || gw == p.Addr() {
			t.Fatalf("%q: gateway %s / last %s not inside %s", s, gw, LastAddr(p), p)
		}
		again, err := ParseSubnet(p.String())
		if err != nil || again != p {
			t.Fatalf("%q: round trip %s -> %v %v", s, p, again, err)
		}
	})
}

// FuzzParseAddr checks address parsing: accepted addresses are unmapped,
// zone-free and round-trip through their text.
func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "::ffff:10.0.0.1", "fe80::1%eth0", "fd00::1", "256.0.0.1", "", " 10.0.0.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddr(s)
		if err != nil {
			return
		}
		if a.Is4In6() || a.Zone() != "" {
			t.Fatalf("%q: accepted %s", s, a)
		}
		if b, err := netip.ParseAddr(a.String()); err != nil || b != a {
			t.Fatalf("%q: round trip %s", s, a)
		}
	})
}

// FuzzDecodePortSync decodes arbitrary port sync bodies and validates the
// port of every attach item, as the controller does, as sent and as the
// controller completes it (kind port): it must never panic, a refusal
// must be an invalid-input *Error, and a valid port must validate again
// unchanged.
func FuzzDecodePortSync(f *testing.F) {
	seeds := []string{
		`{"attach":[{"port":{"uuid":"00000000-0000-4000-8000-000000000001","name":"c1-eth0","parent":"default-domain:default-project","network":"default-domain:default-project:blue","node":"node1","container_id":"c1","interface":"eth0","mac":"02:42:ac:11:00:02","ips":[{"address":"10.0.0.5","subnet":"10.0.0.0/24","gateway":"10.0.0.1"}],"security_groups":["default-domain:default-project:sg"]},"owner":"c1/eth0","hand_over":[{"ip":"10.0.0.5","from_owner":"spare:node1"}]}],"detach":[{"network":"blue","port":"00000000-0000-4000-8000-000000000002","owner":"c0/eth0","ips":[{"ip":"10.0.0.6"},{"ip":"10.0.0.7","owner":"spare:node1"}]}]}`,
		`{"attach":[{"port":{"kind":"port","fq_name":"default-domain:default-project:p","network":"blue"},"owner":"o"}]}`,
		`{"attach":[{"port":null,"owner":"o"},{"port":{},"owner":""}]}`,
		`{"attach":[{"port":{"kind":"network","name":"a:b","fq_name":"x","network":""}}]}`,
		`{"attach":[{"port":{"name":"p","network":"n","mac":"zz","interface":"0123456789abcdefg","ips":[{"address":"::ffff:10.0.0.1","subnet":"x","gateway":"y"}]}}]}`,
		`{"attach":[{"port":{"name":"p","network":"n","labels":{"":"x"}}}]}`,
		`{"detach":[{"network":"","owner":"","ips":[{"ip":""}]}]}`,
		`{"attach":{}}`, `{"attach":[`, `{"colour":1}`, `[]`, `null`, `{} {}`, ``,
		// Found by this target: NormalizeNames accepts a parent with empty
		// segments and builds fq_name "::p", which Validate then refuses.
		`{"attach":[{"port":{"name":"p","parent":":","network":"blue"},"owner":"o"}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req PortSyncRequest
		if err := DecodeStrict(body, &req); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("refusal is not an invalid-input *Error: %T %v", err, err)
			}
			return
		}
		for i, a := range req.Attach {
			if a.Port == nil {
				continue
			}
			asKind := *a.Port
			asKind.Kind = KindPort
			for _, p := range []*Port{a.Port, &asKind} {
				err := Validate(p)
				if err != nil {
					var ae *Error
					if !errors.As(err, &ae) || !errors.Is(err, ErrInvalid) {
						t.Fatalf("attach[%d]: refusal is not an invalid-input *Error: %T %v", i, err, err)
					}
					continue
				}
				b, err := json.Marshal(p)
				if err != nil {
					t.Fatalf("attach[%d]: marshal valid port: %v", i, err)
				}
				if err := Validate(p); err != nil {
					t.Fatalf("attach[%d]: valid port no longer validates: %v\n%s", i, err, b)
				}
				if b2, _ := json.Marshal(p); string(b) != string(b2) {
					t.Fatalf("attach[%d]: validation not idempotent:\n%s\n%s", i, b, b2)
				}
			}
		}
	})
}
