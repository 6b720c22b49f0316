package kernelnet

import "testing"

func TestSysctlString(t *testing.T) {
	for _, tc := range []struct {
		s    Sysctl
		want string
	}{
		{Sysctl{Key: "ipv4/ip_forward", Value: "1"}, "sysctl net.ipv4.ip_forward=1"},
		{Sysctl{Key: "ipv6/conf/all/forwarding", Value: "0", Optional: true}, "sysctl net.ipv6.conf.all.forwarding=0"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.s, got, tc.want)
		}
	}
}
