package docker

import (
	"context"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestSpecValidate(t *testing.T) {
	ok := dcosSpec()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		mod  func(*NetworkSpec)
		want string
	}{
		"no name":      {func(s *NetworkSpec) { s.Name = "" }, "empty name"},
		"slash":        {func(s *NetworkSpec) { s.Name = "a/b" }, "invalid name"},
		"no subnet":    {func(s *NetworkSpec) { s.Subnet = netip.Prefix{} }, "no subnet"},
		"not masked":   {func(s *NetworkSpec) { s.Subnet = pfx("9.0.1.130/25") }, "not a network address (want 9.0.1.128/25)"},
		"v6 as v4":     {func(s *NetworkSpec) { s.Subnet = pfx("fd01::/64") }, "wrong address family"},
		"v4 as v6":     {func(s *NetworkSpec) { s.Subnet6 = pfx("9.0.2.0/24") }, "wrong address family"},
		"gw outside":   {func(s *NetworkSpec) { s.Gateway = netip.MustParseAddr("9.0.1.1") }, "outside subnet"},
		"gw no subnet": {func(s *NetworkSpec) { s.Gateway6 = netip.MustParseAddr("fd01::1") }, "without a subnet"},
		"negative mtu": {func(s *NetworkSpec) { s.MTU = -1 }, "negative mtu"},
	} {
		s := dcosSpec()
		tc.mod(&s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		if _, err := EnsureNetwork(t.Context(), NewFake(), s); err == nil {
			t.Errorf("%s: EnsureNetwork accepted it", name)
		}
	}
}

func TestCompare(t *testing.T) {
	have := Network{Name: "dcos", Driver: "bridge", Subnets: []netip.Prefix{pfx("9.0.1.128/25")},
		Options: map[string]string{OptBridgeName: "d-dcos", OptMTU: "9000", OptMasquerade: "true"}}
	v6 := Network{Name: "dcos6", Driver: "bridge", EnableIPv6: true,
		Subnets: []netip.Prefix{pfx("172.18.0.0/16"), pfx("fd01:b::/80")}, Options: map[string]string{OptBridgeName: "d-dcos6"}}
	for name, tc := range map[string]struct {
		n    Network
		spec NetworkSpec
		want string // "" for a match
	}{
		"same (mtu and masquerade not compared)": {have, dcosSpec(), ""},
		"other subnet": {have, NetworkSpec{Name: "dcos", BridgeName: "d-dcos", Subnet: pfx("9.0.5.128/25")},
			"docker network dcos exists with subnet 9.0.1.128/25, want 9.0.5.128/25: remove it (docker network rm dcos) or fix the overlay assignment"},
		"other bridge": {have, NetworkSpec{Name: "dcos", BridgeName: "d-x", Subnet: pfx("9.0.1.128/25")},
			"docker network dcos exists with bridge d-dcos, want d-x: remove it (docker network rm dcos) or fix the overlay assignment"},
		"no bridge wanted": {have, NetworkSpec{Name: "dcos", Subnet: pfx("9.0.1.128/25")}, ""},
		"engine-named bridge": {Network{Name: "dcos", Driver: "bridge", Subnets: have.Subnets}, dcosSpec(),
			"docker network dcos exists with bridge (engine-named), want d-dcos: remove it (docker network rm dcos) or fix the overlay assignment"},
		"other driver": {Network{Name: "dcos", Driver: "overlay"}, dcosSpec(),
			"docker network dcos exists with driver overlay, want bridge: remove it (docker network rm dcos) or fix the overlay assignment"},
		"unexpected v6": {Network{Name: "dcos", Driver: "bridge", Subnets: []netip.Prefix{pfx("9.0.1.128/25"), pfx("fd01::/64")}, Options: have.Options}, dcosSpec(),
			"docker network dcos exists with subnet 9.0.1.128/25,fd01::/64, want 9.0.1.128/25: remove it (docker network rm dcos) or fix the overlay assignment"},
		"v6 only, engine v4 pool ignored": {v6, NetworkSpec{Name: "dcos6", BridgeName: "d-dcos6", Subnet6: pfx("fd01:b::/80")}, ""},
		"v6 only, other v6": {v6, NetworkSpec{Name: "dcos6", BridgeName: "d-dcos6", Subnet6: pfx("fd01:c::/80")},
			"docker network dcos6 exists with subnet fd01:b::/80, want fd01:c::/80: remove it (docker network rm dcos6) or fix the overlay assignment"},
	} {
		err := Compare(tc.n, tc.spec)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want || !errors.Is(err, ErrMismatch)):
			t.Errorf("%s: %v\nwant %s", name, err, tc.want)
		}
	}
}

// engines runs a test against the Fake and against the Client talking to a
// fake engine server, so that both behave alike.
func engines(t *testing.T, fn func(t *testing.T, e Engine, down func(bool))) {
	t.Run("fake", func(t *testing.T) {
		f := NewFake()
		fn(t, f, f.SetDown)
	})
	t.Run("client", func(t *testing.T) {
		s := newEngineServer(t)
		fn(t, s.client(t), s.fake.SetDown)
	})
}

func TestEnsureNetworkEngines(t *testing.T) {
	engines(t, func(t *testing.T, e Engine, down func(bool)) {
		ctx := t.Context()
		spec6 := NetworkSpec{Name: "dcos6", BridgeName: "d-dcos6", MTU: 1420, Subnet6: pfx("fd01:b::/80")}
		for _, s := range []NetworkSpec{dcosSpec(), spec6} {
			if created, err := EnsureNetwork(ctx, e, s); err != nil || !created {
				t.Fatalf("%s: %v %v", s.Name, created, err)
			}
			if created, err := EnsureNetwork(ctx, e, s); err != nil || created {
				t.Fatalf("%s again: %v %v", s.Name, created, err)
			}
		}
		n, err := e.NetworkInspect(ctx, "dcos6")
		if err != nil || !n.EnableIPv6 || !slices.Contains(n.Subnets, pfx("fd01:b::/80")) {
			t.Fatalf("dcos6: %+v %v", n, err)
		}
		down(true)
		if err := e.Ping(ctx); !errors.Is(err, ErrUnavailable) {
			t.Errorf("ping while down: %v", err)
		}
		if _, err := EnsureNetwork(ctx, e, dcosSpec()); !errors.Is(err, ErrUnavailable) {
			t.Errorf("ensure while down: %v", err)
		}
		down(false)
		if err := e.Ping(ctx); err != nil {
			t.Errorf("ping after recovery: %v", err)
		}
		if created, err := EnsureNetwork(ctx, e, dcosSpec()); err != nil || created {
			t.Errorf("ensure after recovery: %v %v", created, err)
		}
		if err := e.NetworkRemove(ctx, "dcos"); err != nil {
			t.Fatal(err)
		}
		if err := e.NetworkRemove(ctx, "dcos"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.NetworkInspect(ctx, "dcos"); !errors.Is(err, ErrNotFound) {
			t.Errorf("inspect removed: %v", err)
		}
	})
}

// racingEngine creates the network "behind the back" of EnsureNetwork
// between its inspect and its create.
type racingEngine struct {
	*Fake
	theirs NetworkSpec
}

func (r racingEngine) NetworkCreate(ctx context.Context, spec NetworkSpec) (string, error) {
	if _, err := r.Fake.NetworkCreate(ctx, r.theirs); err != nil {
		return "", err
	}
	return r.Fake.NetworkCreate(ctx, spec)
}

func TestEnsureNetworkLostRace(t *testing.T) {
	ctx := t.Context()
	same := racingEngine{NewFake(), dcosSpec()}
	if created, err := EnsureNetwork(ctx, same, dcosSpec()); err != nil || created {
		t.Errorf("same spec raced: %v %v", created, err)
	}
	theirs := dcosSpec()
	theirs.Subnet = pfx("9.0.5.128/25")
	other := racingEngine{NewFake(), theirs}
	if _, err := EnsureNetwork(ctx, other, dcosSpec()); !errors.Is(err, ErrMismatch) {
		t.Errorf("other spec raced: %v", err)
	}
}

func TestFakeMismatchAndFailures(t *testing.T) {
	ctx := t.Context()
	f := NewFake()
	f.Add(Network{Name: "dcos", Subnets: []netip.Prefix{pfx("9.0.5.128/25")}, Options: map[string]string{OptBridgeName: "d-dcos"}})
	_, err := EnsureNetwork(ctx, f, dcosSpec())
	const want = "docker network dcos exists with subnet 9.0.5.128/25, want 9.0.1.128/25: remove it (docker network rm dcos) or fix the overlay assignment"
	if !errors.Is(err, ErrMismatch) || err.Error() != want {
		t.Fatalf("err = %v", err)
	}
	boom := errors.New("boom")
	f.Fail("NetworkCreate", boom)
	if _, err := EnsureNetwork(ctx, f, NetworkSpec{Name: "x", Subnet: pfx("9.0.9.0/24")}); !errors.Is(err, boom) {
		t.Errorf("injected failure: %v", err)
	}
	f.Fail("NetworkCreate", nil)
	if _, err := EnsureNetwork(ctx, f, NetworkSpec{Name: "x", Subnet: pfx("9.0.9.0/24")}); err != nil {
		t.Errorf("after clearing: %v", err)
	}
	wantCalls := []string{"NetworkInspect dcos", "NetworkInspect x", "NetworkCreate x", "NetworkInspect x", "NetworkCreate x"}
	if got := f.Calls(); !slices.Equal(got, wantCalls) {
		t.Errorf("calls = %q, want %q", got, wantCalls)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.Ping(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ping: %v", err)
	}
}

func TestFakeDumpGolden(t *testing.T) {
	ctx := t.Context()
	f := NewFake()
	specs := []NetworkSpec{
		{Name: "dcos6", BridgeName: "d-dcos6", MTU: 1420, Subnet6: pfx("fd01:b::/80")},
		dcosSpec(),
		{Name: "app", BridgeName: "d-app", MTU: 1420, Subnet: pfx("9.1.0.128/25"), Subnet6: pfx("fd02::/80"),
			Masquerade: true, Labels: map[string]string{"io.weft.overlay": "app", "a": "b"}},
		{Name: "plain", Subnet: pfx("9.2.0.0/24")},
	}
	for _, s := range specs {
		if _, err := EnsureNetwork(ctx, f, s); err != nil {
			t.Fatal(err)
		}
	}
	got := f.Dump()
	golden := filepath.Join("testdata", "fake-dump.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("dump:\n%s\nwant:\n%s", got, want)
	}
	// Stable: the same networks made in another order dump the same.
	g := NewFake()
	for _, s := range slices.Backward(specs) {
		if _, err := EnsureNetwork(ctx, g, s); err != nil {
			t.Fatal(err)
		}
	}
	if g.Dump() != got {
		t.Errorf("dump depends on creation order:\n%s", g.Dump())
	}
}
