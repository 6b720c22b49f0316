// Package docker is Weft's minimal Docker Engine API client: just what the
// agent needs to give each DC/OS-style overlay its Docker network, the way
// DC/OS's `docker network create --driver=bridge ...` does, and to notice
// when the engine goes away.
//
// Client talks HTTP over the engine's unix socket with the standard library
// only; Fake is an in-memory engine for tests. Both implement Engine, and
// EnsureNetwork works on either: it creates a missing network, keeps a
// matching one, and refuses one whose subnet or bridge differs (ErrMismatch)
// instead of silently reusing it.
package docker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrUnavailable: the engine did not answer (socket missing, connection
	// refused or reset, timeout) or answered its ping with a server error.
	ErrUnavailable = errors.New("docker engine unavailable")
	// ErrNotFound: the engine has no such object (HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrMismatch: a network of that name exists with another subnet or
	// bridge than wanted.
	ErrMismatch = errors.New("docker network mismatch")
)

// Bridge driver options, as `docker network create --opt` takes them.
const (
	OptBridgeName = "com.docker.network.bridge.name"
	OptMasquerade = "com.docker.network.bridge.enable_ip_masquerade"
	OptMTU        = "com.docker.network.driver.mtu"
)

// Engine is what Weft needs of a Docker engine. Client and Fake implement it.
type Engine interface {
	// Ping checks that the engine answers; the error wraps ErrUnavailable
	// when it does not.
	Ping(ctx context.Context) error
	// NetworkInspect returns the network of that exact name (or ID); the
	// error wraps ErrNotFound when there is none.
	NetworkInspect(ctx context.Context, name string) (Network, error)
	// NetworkCreate creates a bridge network and returns its ID.
	NetworkCreate(ctx context.Context, spec NetworkSpec) (string, error)
	// NetworkRemove removes the network; a missing one is not an error.
	NetworkRemove(ctx context.Context, name string) error
}

// NetworkSpec describes a bridge network to create: the equivalent of
//
//	docker network create --driver=bridge --opt=com.docker.network.bridge.name=<BridgeName>
//	  --opt=com.docker.network.bridge.enable_ip_masquerade=<Masquerade>
//	  --opt=com.docker.network.driver.mtu=<MTU> --subnet=<Subnet>
//	  [--ipv6 --subnet=<Subnet6>] <Name>
type NetworkSpec struct {
	Name       string
	BridgeName string // optional; Docker names the bridge br-<id> without it
	MTU        int    // optional (0: the engine's default)
	// Subnet and Subnet6 are the network's IPv4 and IPv6 subnets; at least
	// one must be set. With only Subnet6, the engine picks an IPv4 pool of
	// its own (as for DC/OS's dcos6), which EnsureNetwork does not compare.
	Subnet, Subnet6 netip.Prefix
	// Gateway and Gateway6 are optional; the engine takes the subnet's
	// first address without them.
	Gateway, Gateway6 netip.Addr
	Masquerade        bool
	Labels            map[string]string
}

// Validate checks the spec before it goes to an engine.
func (s NetworkSpec) Validate() error {
	if s.Name == "" {
		return errors.New("docker network spec: empty name")
	}
	if strings.ContainsAny(s.Name, "/ \t\n") {
		return fmt.Errorf("docker network spec: invalid name %q", s.Name)
	}
	if s.MTU < 0 {
		return fmt.Errorf("docker network %s: negative mtu %d", s.Name, s.MTU)
	}
	if !s.Subnet.IsValid() && !s.Subnet6.IsValid() {
		return fmt.Errorf("docker network %s: no subnet", s.Name)
	}
	check := func(p netip.Prefix, gw netip.Addr, v6 bool, what string) error {
		if !p.IsValid() {
			if gw.IsValid() {
				return fmt.Errorf("docker network %s: %s gateway %s without a subnet", s.Name, what, gw)
			}
			return nil
		}
		if p.Addr().Is6() != v6 || p.Addr().Is4In6() {
			return fmt.Errorf("docker network %s: %s subnet %s has the wrong address family", s.Name, what, p)
		}
		if p.Masked() != p {
			return fmt.Errorf("docker network %s: %s subnet %s is not a network address (want %s)", s.Name, what, p, p.Masked())
		}
		if gw.IsValid() && !p.Contains(gw) {
			return fmt.Errorf("docker network %s: gateway %s is outside subnet %s", s.Name, gw, p)
		}
		return nil
	}
	if err := check(s.Subnet, s.Gateway, false, "IPv4"); err != nil {
		return err
	}
	return check(s.Subnet6, s.Gateway6, true, "IPv6")
}

// Options returns the driver options the spec creates the network with.
func (s NetworkSpec) Options() map[string]string {
	o := map[string]string{OptMasquerade: strconv.FormatBool(s.Masquerade)}
	if s.BridgeName != "" {
		o[OptBridgeName] = s.BridgeName
	}
	if s.MTU > 0 {
		o[OptMTU] = strconv.Itoa(s.MTU)
	}
	return o
}

// subnets returns the spec's subnets, IPv4 first.
func (s NetworkSpec) subnets() []netip.Prefix {
	var out []netip.Prefix
	if s.Subnet.IsValid() {
		out = append(out, s.Subnet)
	}
	if s.Subnet6.IsValid() {
		out = append(out, s.Subnet6)
	}
	return out
}

// Network is a network as the engine reports it.
type Network struct {
	ID, Name, Driver string
	Subnets          []netip.Prefix // IPAM.Config[].Subnet, in the engine's order
	Options          map[string]string
	Labels           map[string]string
	EnableIPv6       bool
}

// BridgeName is the network's bridge name option ("" when unset).
func (n Network) BridgeName() string { return n.Options[OptBridgeName] }

// MTU is the network's MTU option (0 when unset or unparsable).
func (n Network) MTU() int {
	mtu, _ := strconv.Atoi(n.Options[OptMTU])
	return mtu
}

// family returns the subnets of one address family.
func family(ps []netip.Prefix, v6 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is6() == v6 {
			out = append(out, p)
		}
	}
	return out
}

// MismatchError says a network exists with other settings than wanted. It
// wraps ErrMismatch.
type MismatchError struct {
	Name string
	What string // "subnet" or "bridge" or "driver"
	Have string
	Want string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("docker network %s exists with %s %s, want %s: remove it (docker network rm %s) or fix the overlay assignment",
		e.Name, e.What, e.Have, e.Want, e.Name)
}

// Unwrap makes errors.Is(err, ErrMismatch) hold.
func (e *MismatchError) Unwrap() error { return ErrMismatch }

// Compare checks an existing network against the spec: driver, bridge name
// and subnets must match. MTU, masquerading and labels are not compared:
// like DC/OS, an existing network is kept as it is in those respects.
// When the spec has no IPv4 subnet, the engine-chosen IPv4 pool is not
// compared either.
func Compare(n Network, spec NetworkSpec) error {
	if n.Driver != "" && n.Driver != "bridge" {
		return &MismatchError{Name: spec.Name, What: "driver", Have: n.Driver, Want: "bridge"}
	}
	if spec.BridgeName != "" && n.BridgeName() != spec.BridgeName {
		have := n.BridgeName()
		if have == "" {
			have = "(engine-named)"
		}
		return &MismatchError{Name: spec.Name, What: "bridge", Have: have, Want: spec.BridgeName}
	}
	have4, have6 := family(n.Subnets, false), family(n.Subnets, true)
	want4, want6 := family(spec.subnets(), false), family(spec.subnets(), true)
	same := slices.Equal(have6, want6)
	if len(want4) > 0 {
		same = same && slices.Equal(have4, want4)
	}
	if !same {
		have := n.Subnets
		if len(want4) == 0 {
			have = have6
		}
		return &MismatchError{Name: spec.Name, What: "subnet", Have: joinPrefixes(have), Want: joinPrefixes(spec.subnets())}
	}
	return nil
}

func joinPrefixes(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "(none)"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// EnsureNetwork makes the engine have the network of the spec: it creates a
// missing one (created is true), keeps a matching one, and returns a
// *MismatchError (wrapping ErrMismatch) for one with another subnet or
// bridge. A network created concurrently by someone else is compared too.
func EnsureNetwork(ctx context.Context, e Engine, spec NetworkSpec) (created bool, err error) {
	if err := spec.Validate(); err != nil {
		return false, err
	}
	n, err := e.NetworkInspect(ctx, spec.Name)
	switch {
	case err == nil:
		return false, Compare(n, spec)
	case !errors.Is(err, ErrNotFound):
		return false, fmt.Errorf("inspect docker network %s: %w", spec.Name, err)
	}
	if _, err := e.NetworkCreate(ctx, spec); err != nil {
		if !IsConflict(err) {
			return false, fmt.Errorf("create docker network %s: %w", spec.Name, err)
		}
		// Lost a race with another creator: judge what is there.
		n, ierr := e.NetworkInspect(ctx, spec.Name)
		if ierr != nil {
			return false, fmt.Errorf("create docker network %s: %w", spec.Name, err)
		}
		return false, Compare(n, spec)
	}
	return true, nil
}
