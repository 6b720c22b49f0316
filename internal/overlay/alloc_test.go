package overlay

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func addrSet(addrs ...string) map[netip.Addr]struct{} {
	m := map[netip.Addr]struct{}{}
	for _, a := range addrs {
		m[mustAddr(a)] = struct{}{}
	}
	return m
}

func prefixSet(prefixes ...string) map[netip.Prefix]struct{} {
	m := map[netip.Prefix]struct{}{}
	for _, p := range prefixes {
		m[mustPrefix(p)] = struct{}{}
	}
	return m
}

func TestMAC(t *testing.T) {
	oui := DefaultDCOS().OUI()
	tests := []struct {
		vtep string
		want string
	}{
		{"44.128.0.1", "70:b3:d5:80:00:01"},
		{"44.128.0.2", "70:b3:d5:80:00:02"},
		{"44.128.15.254", "70:b3:d5:80:0f:fe"},
		{"::ffff:44.128.0.1", "70:b3:d5:80:00:01"},
	}
	for _, tt := range tests {
		if got := MAC(oui, mustAddr(tt.vtep)).String(); got != tt.want {
			t.Errorf("MAC(%s) = %s, want %s", tt.vtep, got, tt.want)
		}
	}
	if MAC(oui, mustAddr("fd01:a::1")) != nil || MAC(oui, netip.Addr{}) != nil || MAC(oui[:2], mustAddr("44.128.0.1")) != nil {
		t.Error("MAC of an IPv6 VTEP, the zero Addr or a short OUI is not nil")
	}
}

// TestMACMatchesNetlinkDump checks the derivation against the MAC of a real
// vtep1024 (dcos-net's netlink dump): {address, <<112, 179, 213, 128, 0, 1>>}
// is 70:b3:d5:80:00:01, the MAC of 44.128.0.1 with DC/OS's OUI. The dump
// also shows the VNI and UDP port Weft defaults to.
func TestMACMatchesNetlinkDump(t *testing.T) {
	data, err := os.ReadFile(fixtures + "overlay/dcos-net/vtep_link.data")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`\{address, <<(\d+), (\d+), (\d+), (\d+), (\d+), (\d+)>>\}`).FindSubmatch(data)
	if m == nil {
		t.Fatal("no {address, <<...>>} line in vtep_link.data")
	}
	var dumped net.HardwareAddr
	for _, b := range m[1:] {
		n, err := strconv.ParseUint(string(b), 10, 8)
		if err != nil {
			t.Fatal(err)
		}
		dumped = append(dumped, byte(n))
	}
	if got := MAC(DefaultDCOS().OUI(), mustAddr("44.128.0.1")); got.String() != dumped.String() {
		t.Errorf("MAC(44.128.0.1) = %s, dump has %s", got, dumped)
	}
	for _, want := range []string{`{ifname, "vtep1024"}`, fmt.Sprintf("{id, %d}", DefaultVNI), fmt.Sprintf("{port, %d}", DefaultVXLANPort)} {
		if !strings.Contains(string(data), want) {
			t.Errorf("dump has no %s", want)
		}
	}
}

// TestOverlayAgent1Fixture reproduces the two-agent allocation of the
// DC/OS overlay simulation input overlay-agent1.json: the first agent
// (agent-ip) gets VTEP 44.128.0.1 and 192.168.0.0/24, split into a /25
// Mesos half and the Docker half 192.168.0.128/25; the second (agents,
// vteps) 192.168.1.0/24 and 44.128.0.2.
//
// The file is a simulation input, not the modules' wire format, and its
// MACs (70:b3:d5:00:00:01) are not derived from the VTEP address as the
// master derives them (70:b3:d5:80:00:01), so they are not compared.
func TestOverlayAgent1Fixture(t *testing.T) {
	data, err := os.ReadFile(fixtures + "overlay/dcos-mesos-modules/overlay-agent1.json")
	if err != nil {
		t.Fatal(err)
	}
	var sim struct {
		DockerNetwork string            `json:"docker-network"`
		Network       string            `json:"network"`
		AgentIP       string            `json:"agent-ip"`
		VXLAN         string            `json:"vxlan"`
		VXLANIP       string            `json:"vxlan-ip"`
		Agents        map[string]string `json:"agents"`
		VTEPs         map[string]string `json:"vteps"`
	}
	if err := json.Unmarshal(data, &sim); err != nil {
		t.Fatal(err)
	}
	vtepBits := mustPrefix(sim.VXLANIP).Bits()
	cfg := NetworkConfig{
		VTEPSubnet: mustPrefix(sim.VXLANIP).Masked().String(),
		VTEPMACOUI: "70:B3:D5:00:00:00",
		Overlays:   []OverlayInfo{{Name: "overlay", Subnet: "192.168.0.0/16", Prefix: 24}},
	}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if strconv.Itoa(cfg.VNI) != sim.VXLAN {
		t.Errorf("vni %d, fixture %s", cfg.VNI, sim.VXLAN)
	}
	vteps := map[netip.Addr]string{}
	subnets := map[netip.Prefix]string{}
	var second string
	for ip := range sim.Agents {
		second = ip
	}
	for _, agent := range []string{sim.AgentIP, second} {
		vtep, err := VTEPAddr(cfg, vteps)
		if err != nil {
			t.Fatal(err)
		}
		vteps[vtep] = agent
		sub, err := OverlaySubnet(cfg.Overlays[0], subnets)
		if err != nil {
			t.Fatal(err)
		}
		subnets[sub] = agent
		ao := BuildAgentOverlay(cfg, cfg.Overlays[0], vtep, netip.Addr{}, nil, sub, netip.Prefix{}, true, true)
		if agent == sim.AgentIP {
			if ao.Backend.VXLAN.VTEPIP != sim.VXLANIP || ao.Subnet != sim.Network || ao.DockerBridge.IP != sim.DockerNetwork {
				t.Errorf("first agent: vtep %s subnet %s docker %s; fixture %s %s %s",
					ao.Backend.VXLAN.VTEPIP, ao.Subnet, ao.DockerBridge.IP, sim.VXLANIP, sim.Network, sim.DockerNetwork)
			}
			if ao.MesosBridge.IP != "192.168.0.0/25" {
				t.Errorf("first agent's mesos half %s", ao.MesosBridge.IP)
			}
		} else {
			if got := netip.PrefixFrom(vtep, vtepBits).Addr().String(); got != sim.VTEPs[agent] || ao.Subnet != sim.Agents[agent] {
				t.Errorf("second agent: vtep %s subnet %s; fixture %s %s", got, ao.Subnet, sim.VTEPs[agent], sim.Agents[agent])
			}
		}
	}
}

func TestFirstAgentDCOS(t *testing.T) {
	cfg := DefaultDCOS()
	none := map[netip.Addr]struct{}{}
	v4, err := VTEPAddr(cfg, none)
	if err != nil || v4 != mustAddr("44.128.0.1") {
		t.Errorf("VTEPAddr = %s, %v", v4, err)
	}
	v6, err := VTEPAddr6(cfg, none)
	if err != nil || v6 != mustAddr("fd01:a::1") {
		t.Errorf("VTEPAddr6 = %s, %v", v6, err)
	}
	s4, err := OverlaySubnet(cfg.Overlays[0], map[netip.Prefix]bool{})
	if err != nil || s4 != mustPrefix("9.0.0.0/24") {
		t.Errorf("OverlaySubnet(dcos) = %s, %v", s4, err)
	}
	s6, err := OverlaySubnet6(cfg.Overlays[1], map[netip.Prefix]bool{})
	if err != nil || s6 != mustPrefix("fd01:b::/80") {
		t.Errorf("OverlaySubnet6(dcos6) = %s, %v", s6, err)
	}
	// No space of that family: nothing, and no error.
	if p, err := OverlaySubnet6(cfg.Overlays[0], map[netip.Prefix]bool{}); p.IsValid() || err != nil {
		t.Errorf("OverlaySubnet6(dcos) = %s, %v", p, err)
	}
	if p, err := OverlaySubnet(cfg.Overlays[1], map[netip.Prefix]bool{}); p.IsValid() || err != nil {
		t.Errorf("OverlaySubnet(dcos6) = %s, %v", p, err)
	}
	noV6 := cfg
	noV6.VTEPSubnet6 = ""
	if a, err := VTEPAddr6(noV6, none); a.IsValid() || err != nil {
		t.Errorf("VTEPAddr6 without vtep_subnet6 = %s, %v", a, err)
	}
	if _, err := VTEPAddr(NetworkConfig{VTEPSubnet: "bad"}, none); !errors.Is(err, ErrInvalid) {
		t.Errorf("VTEPAddr of a bad config: %v", err)
	}
}

func TestLowestFreeAddr(t *testing.T) {
	tests := []struct {
		space string
		used  []string
		want  string
	}{
		{"44.128.0.0/20", nil, "44.128.0.1"},
		{"44.128.0.0/20", []string{"44.128.0.1", "44.128.0.2"}, "44.128.0.3"},
		{"44.128.0.0/20", []string{"44.128.0.1", "44.128.0.3"}, "44.128.0.2"}, // reuse after a free
		{"44.128.0.0/20", []string{"44.128.0.0", "10.0.0.1", "fd01:a::1"}, "44.128.0.1"},
		{"10.0.0.0/30", []string{"10.0.0.1"}, "10.0.0.2"},
		{"fd01:a::/64", nil, "fd01:a::1"},
		{"fd01:a::/64", []string{"fd01:a::1"}, "fd01:a::2"},
		{"fd01:a::/127", nil, "fd01:a::1"},
		{"fd01:a::/64", []string{"fd01:a::ffff"}, "fd01:a::1"},
		{"44.128.0.7/20", nil, "44.128.0.1"}, // host bits are masked
	}
	for _, tt := range tests {
		got, err := LowestFreeAddr(mustPrefix(tt.space), addrSet(tt.used...))
		if err != nil || got.String() != tt.want {
			t.Errorf("LowestFreeAddr(%s, %v) = %s, %v; want %s", tt.space, tt.used, got, err, tt.want)
		}
	}
	if _, err := LowestFreeAddr(netip.Prefix{}, addrSet()); err == nil {
		t.Error("no error for the zero Prefix")
	}
}

func TestLowestFreeAddrExhausted(t *testing.T) {
	tests := []struct {
		space string
		used  []string
		msg   string
	}{
		{"10.0.0.0/30", []string{"10.0.0.1", "10.0.0.2", "10.0.0.0", "10.0.0.3", "10.0.1.1"}, "no free address in 10.0.0.0/30 (2 of 2 in use)"},
		{"10.0.0.0/31", nil, "no free address in 10.0.0.0/31 (0 of 0 in use)"},
		{"10.0.0.1/32", nil, "no free address in 10.0.0.1/32 (0 of 0 in use)"},
		{"fd01:a::/127", []string{"fd01:a::1"}, "no free address in fd01:a::/127 (1 of 1 in use)"},
		{"fd01:a::/128", nil, "no free address in fd01:a::/128 (0 of 0 in use)"},
		{"fd01:a::/126", []string{"fd01:a::1", "fd01:a::2", "fd01:a::3"}, "no free address in fd01:a::/126 (3 of 3 in use)"},
	}
	for _, tt := range tests {
		_, err := LowestFreeAddr(mustPrefix(tt.space), addrSet(tt.used...))
		var ee *ExhaustedError
		if !errors.As(err, &ee) || !errors.Is(err, ErrExhausted) {
			t.Errorf("LowestFreeAddr(%s): %v is not an *ExhaustedError", tt.space, err)
			continue
		}
		if err.Error() != tt.msg {
			t.Errorf("error %q, want %q", err, tt.msg)
		}
	}
	// VTEPAddr names what ran out; a /20 holds 4094 VTEPs.
	cfg := DefaultDCOS()
	used := map[netip.Addr]string{}
	for a := mustAddr("44.128.0.1"); a != mustAddr("44.128.15.255"); a = a.Next() {
		used[a] = "agent"
	}
	_, err := VTEPAddr(cfg, used)
	const want = "no free VTEP address in 44.128.0.0/20 (4094 of 4094 in use)"
	if err == nil || err.Error() != want {
		t.Errorf("VTEPAddr on a full /20: %v, want %q", err, want)
	}
	tiny := NetworkConfig{VTEPSubnet: "10.0.0.0/30", VTEPMACOUI: "70:B3:D5:00:00:00",
		Overlays: []OverlayInfo{{Name: "dcos", Subnet: "9.0.0.0/23", Prefix: 24}}}.WithDefaults()
	if err := tiny.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err = VTEPAddr(tiny, addrSet("10.0.0.1", "10.0.0.2"))
	if err == nil || err.Error() != "no free VTEP address in 10.0.0.0/30 (2 of 2 in use)" {
		t.Errorf("tiny VTEP exhaustion: %v", err)
	}
	_, err = OverlaySubnet(tiny.Overlays[0], prefixSet("9.0.0.0/24", "9.0.1.0/24"))
	if err == nil || err.Error() != "no free /24 subnet in overlay dcos 9.0.0.0/23 (2 of 2 in use)" || !errors.Is(err, ErrExhausted) {
		t.Errorf("tiny subnet exhaustion: %v", err)
	}
	var ee *ExhaustedError
	if errors.As(err, &ee) {
		if ae := ee.APIError(); ae.Code != 409 || !errors.Is(ae, ErrExhausted) {
			t.Errorf("APIError = %+v", ae)
		}
	}
	v6 := DefaultDCOS()
	v6.VTEPSubnet6 = "fd01:a::/126"
	_, err = VTEPAddr6(v6, addrSet("fd01:a::1", "fd01:a::2", "fd01:a::3"))
	if err == nil || err.Error() != "no free VTEP IPv6 address in fd01:a::/126 (3 of 3 in use)" {
		t.Errorf("VTEPAddr6 exhaustion: %v", err)
	}
}

// TestLowestFreeAddrHugeSpace checks that the cost follows len(used), not
// the size of the space.
func TestLowestFreeAddrHugeSpace(t *testing.T) {
	used := map[netip.Addr]struct{}{}
	a := mustAddr("fd01:a::1")
	for range 20000 {
		used[a] = struct{}{}
		a = a.Next()
	}
	start := time.Now()
	got, err := LowestFreeAddr(mustPrefix("fd01:a::/64"), used)
	if err != nil || got != a {
		t.Errorf("got %s, %v; want %s", got, err, a)
	}
	got, err = LowestFreeAddr(mustPrefix("::/0"), addrSet("::1"))
	if err != nil || got != mustAddr("::2") {
		t.Errorf("::/0: %s, %v", got, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestLowestFreeSubnet(t *testing.T) {
	tests := []struct {
		space string
		bits  int
		used  []string
		want  string
	}{
		{"9.0.0.0/8", 24, nil, "9.0.0.0/24"},
		{"9.0.0.0/8", 24, []string{"9.0.0.0/24"}, "9.0.1.0/24"},
		{"9.0.0.0/8", 24, []string{"9.0.0.0/24", "9.0.2.0/24"}, "9.0.1.0/24"},
		// Other lengths, unmasked keys and other spaces do not count.
		{"9.0.0.0/8", 24, []string{"9.0.0.0/25", "9.0.0.0/16", "10.0.0.0/24"}, "9.0.0.0/24"},
		{"9.0.0.0/8", 8, nil, "9.0.0.0/8"},
		{"fd01:b::/64", 80, nil, "fd01:b::/80"},
		{"fd01:b::/64", 80, []string{"fd01:b::/80"}, "fd01:b:0:0:1::/80"},
		{"fd01:b::/64", 80, []string{"fd01:b::/80", "fd01:b:0:0:1::/80"}, "fd01:b:0:0:2::/80"},
		{"::/0", 64, []string{"::/64"}, "0:0:0:1::/64"},
		{"::/0", 1, []string{"::/1"}, "8000::/1"},
		{"0.0.0.0/0", 1, []string{"0.0.0.0/1"}, "128.0.0.0/1"},
		{"9.0.0.0/8", 32, []string{"9.0.0.0/32"}, "9.0.0.1/32"},
	}
	for _, tt := range tests {
		got, err := LowestFreeSubnet(mustPrefix(tt.space), tt.bits, prefixSet(tt.used...))
		if err != nil || got.String() != tt.want {
			t.Errorf("LowestFreeSubnet(%s, %d, %v) = %s, %v; want %s", tt.space, tt.bits, tt.used, got, err, tt.want)
		}
	}
	for _, bits := range []int{7, 33, -1} {
		if _, err := LowestFreeSubnet(mustPrefix("9.0.0.0/8"), bits, prefixSet()); err == nil || errors.Is(err, ErrExhausted) {
			t.Errorf("bits %d: %v", bits, err)
		}
	}
	if _, err := LowestFreeSubnet(netip.Prefix{}, 24, prefixSet()); err == nil {
		t.Error("no error for the zero Prefix")
	}
}

func TestLowestFreeSubnetExhausted(t *testing.T) {
	full := func(space string, bits int) map[netip.Prefix]struct{} {
		m := map[netip.Prefix]struct{}{}
		p := mustPrefix(space)
		for a := p.Addr(); ; {
			m[netip.PrefixFrom(a, bits)] = struct{}{}
			next, ok := addPow2(a, a.BitLen()-bits)
			if !ok || !p.Contains(next) {
				return m
			}
			a = next
		}
	}
	tests := []struct {
		space string
		bits  int
		used  map[netip.Prefix]struct{}
		msg   string
	}{
		{"9.0.0.0/8", 24, full("9.0.0.0/8", 24), "no free /24 subnet in 9.0.0.0/8 (65536 of 65536 in use)"},
		{"fd01:b::/64", 80, full("fd01:b::/64", 80), "no free /80 subnet in fd01:b::/64 (65536 of 65536 in use)"},
		{"255.255.255.0/24", 25, full("255.255.255.0/24", 25), "no free /25 subnet in 255.255.255.0/24 (2 of 2 in use)"},
		{"ffff:ffff:ffff:ffff::/64", 65, full("ffff:ffff:ffff:ffff::/64", 65), "no free /65 subnet in ffff:ffff:ffff:ffff::/64 (2 of 2 in use)"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/126", 127, full("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/126", 127), "no free /127 subnet in ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/126 (2 of 2 in use)"},
	}
	for _, tt := range tests {
		_, err := LowestFreeSubnet(mustPrefix(tt.space), tt.bits, tt.used)
		if !errors.Is(err, ErrExhausted) || err.Error() != tt.msg {
			t.Errorf("LowestFreeSubnet(%s, %d): %v, want %q", tt.space, tt.bits, err, tt.msg)
		}
	}
	// The overlay wrapper names the overlay: the full DC/OS dcos overlay.
	_, err := OverlaySubnet(DefaultDCOS().Overlays[0], full("9.0.0.0/8", 24))
	if err == nil || err.Error() != "no free /24 subnet in overlay dcos 9.0.0.0/8 (65536 of 65536 in use)" {
		t.Errorf("dcos exhaustion: %v", err)
	}
}

func TestExhaustedErrorHugeTotals(t *testing.T) {
	tests := []struct {
		e    ExhaustedError
		want string
	}{
		{ExhaustedError{What: "address", Space: mustPrefix("fd01:a::/64"), Total: AddrCapacity(mustPrefix("fd01:a::/64"))}, "(0 of 18446744073709551615 in use)"},
		{ExhaustedError{What: "address", Space: mustPrefix("fd01::/16"), Total: AddrCapacity(mustPrefix("fd01::/16"))}, "(0 of 5192296858534827628530496329220095 in use)"},
		{ExhaustedError{What: "/80 subnet", Space: mustPrefix("fd01::/8"), Bits: 80, Total: Capacity(mustPrefix("fd01::/8"), 80)}, "(0 of 4722366482869645213696 in use)"},
		{ExhaustedError{What: "address", Space: mustPrefix("0.0.0.0/0"), Total: AddrCapacity(mustPrefix("0.0.0.0/0"))}, "(0 of 4294967294 in use)"},
		{ExhaustedError{What: "x", Space: mustPrefix("fd01::/8"), Bits: 3, Total: 1<<64 - 1}, "(0 of 18446744073709551615 in use)"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); !strings.HasSuffix(got, tt.want) {
			t.Errorf("%q does not end with %q", got, tt.want)
		}
	}
}

func TestHalvesAndGateway(t *testing.T) {
	tests := []struct {
		in, mesos, docker, gwMesos, gwDocker string
	}{
		{"9.0.1.0/24", "9.0.1.0/25", "9.0.1.128/25", "9.0.1.1", "9.0.1.129"},
		{"9.0.0.0/24", "9.0.0.0/25", "9.0.0.128/25", "9.0.0.1", "9.0.0.129"},
		{"192.168.0.0/24", "192.168.0.0/25", "192.168.0.128/25", "192.168.0.1", "192.168.0.129"},
		{"9.0.1.0/29", "9.0.1.0/30", "9.0.1.4/30", "9.0.1.1", "9.0.1.5"},
		{"fd01:b:0:0:1::/80", "fd01:b:0:0:1::/81", "fd01:b:0:0:1:8000::/81", "fd01:b:0:0:1::1", "fd01:b:0:0:1:8000:0:1"},
		{"fd01:b::/64", "fd01:b::/65", "fd01:b:0:0:8000::/65", "fd01:b::1", "fd01:b:0:0:8000::1"},
		{"fd01:b::/63", "fd01:b::/64", "fd01:b:0:1::/64", "fd01:b::1", "fd01:b:0:1::1"},
		{"9.0.1.7/24", "9.0.1.0/25", "9.0.1.128/25", "9.0.1.1", "9.0.1.129"},
	}
	for _, tt := range tests {
		m, d := Halves(mustPrefix(tt.in))
		if m != mustPrefix(tt.mesos) || d != mustPrefix(tt.docker) {
			t.Errorf("Halves(%s) = %s, %s; want %s, %s", tt.in, m, d, tt.mesos, tt.docker)
		}
		if g := Gateway(m); g != mustAddr(tt.gwMesos) {
			t.Errorf("Gateway(%s) = %s, want %s", m, g, tt.gwMesos)
		}
		if g := Gateway(d); g != mustAddr(tt.gwDocker) {
			t.Errorf("Gateway(%s) = %s, want %s", d, g, tt.gwDocker)
		}
	}
	if m, d := Halves(mustPrefix("9.0.0.1/32")); m.IsValid() || d.IsValid() {
		t.Error("halves of a /32")
	}
	if m, d := Halves(netip.Prefix{}); m.IsValid() || d.IsValid() {
		t.Error("halves of the zero Prefix")
	}
	if g := Gateway(mustPrefix("9.0.0.1/32")); g.IsValid() {
		t.Errorf("Gateway of a /32 = %s", g)
	}
	if g := Gateway(mustPrefix("::/128")); g.IsValid() {
		t.Errorf("Gateway of a /128 = %s", g)
	}
	if g := Gateway(netip.Prefix{}); g.IsValid() {
		t.Error("Gateway of the zero Prefix")
	}
}

func TestCapacity(t *testing.T) {
	const maxU = ^uint64(0)
	tests := []struct {
		space string
		bits  int
		want  uint64
	}{
		{"9.0.0.0/8", 24, 65536},
		{"fd01:b::/64", 80, 65536},
		{"9.0.0.0/23", 24, 2},
		{"9.0.0.0/8", 8, 1},
		{"9.0.0.0/8", 7, 0},
		{"9.0.0.0/8", 33, 0},
		{"::/0", 63, 1 << 63},
		{"::/0", 64, maxU},
		{"::/0", 128, maxU},
	}
	for _, tt := range tests {
		if got := Capacity(mustPrefix(tt.space), tt.bits); got != tt.want {
			t.Errorf("Capacity(%s, %d) = %d, want %d", tt.space, tt.bits, got, tt.want)
		}
	}
	if Capacity(netip.Prefix{}, 24) != 0 || AddrCapacity(netip.Prefix{}) != 0 {
		t.Error("capacity of the zero Prefix")
	}
	addrs := []struct {
		space string
		want  uint64
	}{
		{"44.128.0.0/20", 4094},
		{"10.0.0.0/30", 2},
		{"10.0.0.0/31", 0},
		{"10.0.0.0/32", 0},
		{"0.0.0.0/0", 1<<32 - 2},
		{"fd01:a::/64", maxU},
		{"fd01:a::/65", 1<<63 - 1},
		{"fd01:a::/127", 1},
		{"fd01:a::/128", 0},
		{"::/0", maxU},
	}
	for _, tt := range addrs {
		if got := AddrCapacity(mustPrefix(tt.space)); got != tt.want {
			t.Errorf("AddrCapacity(%s) = %d, want %d", tt.space, got, tt.want)
		}
	}
}
