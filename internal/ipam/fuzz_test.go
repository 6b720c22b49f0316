package ipam

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// FuzzParseAddress checks that any address accepted from a client has one
// canonical form that survives the trip through a key.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"10.0.0.1", "0.0.0.0", "255.255.255.255", "fd00::1", "FD00:0::0001",
		"::ffff:10.0.0.1", "fe80::1%eth0", "", " 10.0.0.1", "10.0.0.01",
		"1.2.3", "::", "2001:db8::/32", "10.0.0.1/24", "[::1]", "1::2::3",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseAddress(s)
		if err != nil {
			return
		}
		if !a.IsValid() || a.Zone() != "" {
			t.Fatalf("parseAddress(%q) = %v: invalid or zoned", s, a)
		}
		canon := a.String()
		if strings.ContainsAny(canon, "/%") {
			t.Fatalf("canonical form %q of %q would break the key layout", canon, s)
		}
		b, err := parseAddress(canon)
		if err != nil || b != a || b.String() != canon {
			t.Fatalf("round trip of %q: %v %v", canon, b, err)
		}
		netUUID, name, ok := splitKey(ReservationPrefix, reservationKey("net", a))
		if !ok || netUUID != "net" || name != canon {
			t.Fatalf("key round trip of %s: %q %q %v", a, netUUID, name, ok)
		}
	})
}

// FuzzParseBlockCIDR checks the parsing of block CIDRs (ReleaseBlock input)
// and their key names.
func FuzzParseBlockCIDR(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/26", "10.0.0.64/26", "10.0.0.65/26", "fd00::/122", "fd00::40/122",
		"10.0.0.0/33", "10.0.0.0", "0.0.0.0/0", "::/0", "fe80::%eth0/64", "10.0.0.0/-1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseBlockCIDR(s)
		if err != nil {
			return
		}
		if p.Masked() != p {
			t.Fatalf("parseBlockCIDR(%q) = %s with host bits", s, p)
		}
		name := blockName(p)
		if strings.Contains(name, "/") {
			t.Fatalf("block name %q contains '/'", name)
		}
		q, err := parseBlockName(name)
		if err != nil || q != p {
			t.Fatalf("block name round trip of %s: %v %v", p, q, err)
		}
		if last := lastAddr(p); !p.Contains(last) || last.Compare(p.Addr()) < 0 {
			t.Fatalf("lastAddr(%s) = %s", p, last)
		}
	})
}

// FuzzParseQuarantine checks that no stored quarantine value makes the
// decoder panic, and that accepted records round-trip.
func FuzzParseQuarantine(f *testing.F) {
	for _, s := range []string{
		`{"until":"2030-01-02T03:04:05.123456789Z","owner":"task-1"}`,
		`{"until":"2030-01-02T03:04:05+02:00"}`,
		`{"until":""}`, `{"until":null}`, `{}`, `null`, `[]`, ``, `{"until":"yesterday"}`,
		`{"until":"0001-01-01T00:00:00Z","owner":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := parseQuarantine(b)
		if err != nil {
			return
		}
		if q.Until.IsZero() {
			t.Fatal("accepted a record without time")
		}
		enc, err := q.Until.MarshalJSON()
		if err != nil {
			return // out of range years are not encodable; not ours to fix
		}
		var back time.Time
		if err := back.UnmarshalJSON(enc); err != nil || !back.Equal(q.Until) {
			t.Fatalf("time round trip of %s: %v %v", enc, back, err)
		}
	})
}

func TestCIDRHelpers(t *testing.T) {
	tests := []struct {
		cidr, last, next string
	}{
		{"10.0.0.0/24", "10.0.0.255", "10.0.1.0/24"},
		{"10.0.0.64/26", "10.0.0.127", "10.0.0.128/26"},
		{"10.0.0.5/32", "10.0.0.5", "10.0.0.6/32"},
		{"0.0.0.0/0", "255.255.255.255", ""},
		{"fd00::/64", "fd00::ffff:ffff:ffff:ffff", "fd00:0:0:1::/64"},
		{"fd00::40/122", "fd00::7f", "fd00::80/122"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""},
	}
	for _, tc := range tests {
		p := netip.MustParsePrefix(tc.cidr)
		if got := lastAddr(p).String(); got != tc.last {
			t.Errorf("lastAddr(%s) = %s, want %s", p, got, tc.last)
		}
		next, ok := nextPrefix(p)
		if (tc.next == "") == ok || (ok && next.String() != tc.next) {
			t.Errorf("nextPrefix(%s) = %s %v, want %q", p, next, ok, tc.next)
		}
		r := newNetCache("x").rnd
		for range 100 {
			if a := randomAddr(p, r); !p.Contains(a) {
				t.Fatalf("randomAddr(%s) = %s outside", p, a)
			}
		}
		if got := prefixSize(p); got.BitLen() != p.Addr().BitLen()-p.Bits()+1 {
			t.Errorf("prefixSize(%s) = %s", p, got)
		}
	}
}
